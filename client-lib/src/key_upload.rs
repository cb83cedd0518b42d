//! This device's Olm keys at its home relay: the first upload, and topping up one-time keys.

use crate::{client::Client, connection::Connection, error::ClientError};

/// One-time keys published at registration and on every top-up.
pub(crate) const ONE_TIME_KEY_BATCH: usize = 50;

/// Top up one-time keys on the relay when fewer than this are left.
const ONE_TIME_KEY_LOW_WATER: u32 = 20;

/// Publishes the identity key and first one-time keys if the relay never got them.
pub(crate) async fn publish_keys(
    client: &Client,
    connection: &Connection,
) -> Result<(), ClientError> {
    let upload = client
        .blocking(|inner| {
            inner
                .store
                .keys_to_publish(&inner.identity, ONE_TIME_KEY_BATCH)
        })
        .await?;
    if let Some(upload) = upload {
        connection.call(upload).await?;
        client
            .blocking(|inner| inner.store.set_keys_published())
            .await?;
    }
    Ok(())
}

/// Uploads more one-time keys when the relay holds fewer than the low-water mark.
pub(crate) async fn top_up_keys(
    client: &Client,
    connection: &Connection,
    held: u32,
) -> Result<(), ClientError> {
    if held >= ONE_TIME_KEY_LOW_WATER {
        return Ok(());
    }
    let upload = client
        .blocking(|inner| {
            inner
                .store
                .more_one_time_keys(&inner.identity, ONE_TIME_KEY_BATCH)
        })
        .await?;
    connection.call(upload).await?;
    Ok(())
}
