//! A device whose registration failed is removed from this browser, so none is left half made.

use std::time::Duration;

use libp2p::Multiaddr;
use tidings_client::{Client, browser::opfs, runtime};
use wasm_bindgen::prelude::*;

/// Registers the new account `client` (kept in the OPFS directory `dir`) at `address` within
/// `patience`; if that fails, the device is removed from this browser and the error says so.
pub(crate) async fn register_or_remove(
    client: Client,
    dir: &str,
    address: Multiaddr,
    patience: Duration,
) -> Result<Client, JsError> {
    let outcome = runtime::timeout(patience, client.register(address, None)).await;
    let why = match outcome {
        Ok(Ok(_)) => return Ok(client),
        Ok(Err(error)) => error.to_string(),
        Err(_) => "the relay did not answer in time".to_string(),
    };
    // The store's file must be closed before its directory can go.
    drop(client);
    Err(removed(
        dir,
        &format!("the relay did not register this device ({why})"),
    )
    .await)
}

/// Removes the device in the OPFS directory `dir` and says why, and that the person can
/// start again.
pub(crate) async fn removed(dir: &str, why: &str) -> JsError {
    match opfs::remove_dir(dir).await {
        Ok(()) => JsError::new(&format!(
            "{why}; nothing was kept in this browser: create the account or link again"
        )),
        Err(error) => JsError::new(&format!(
            "{why}; removing the unfinished device failed too ({error})"
        )),
    }
}
