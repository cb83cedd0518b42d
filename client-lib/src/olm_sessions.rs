//! Olm sessions with peer devices: claiming bundles (in batches) for devices this device has
//! no session with yet, verifying them and opening the sessions.

use tidings_protocol::{Address, BoundedVec, ErrorCode, limits::MAX_BATCH_ENVELOPES};

use crate::{
    calls::ClaimBundles,
    client::Client,
    connection::{Connection, ConnectionError},
    error::ClientError,
    store::StoreError,
};

/// Why no session could be opened with a device now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Unreachable {
    /// It has not published keys (yet), or the relay asked to try again later.
    Later(String),
    /// For good: the relay refused, or the bundle did not verify.
    Never(String),
}

/// Devices ready to encrypt to, and those that are not (with why).
#[derive(Debug, Default)]
pub(crate) struct Reach {
    /// Devices with an Olm session.
    pub ready: Vec<Address>,
    /// Devices without one.
    pub unreachable: Vec<(Address, Unreachable)>,
}

/// Makes sure this device has an Olm session with each of `devices`, claiming one bundle per
/// device that has none.
pub(crate) async fn reach(
    client: &Client,
    connection: &Connection,
    devices: Vec<Address>,
) -> Result<Reach, ClientError> {
    let asked = devices.clone();
    let missing = client
        .blocking(move |inner| inner.store.without_session(&asked))
        .await?;
    let mut reach = Reach {
        ready: devices
            .into_iter()
            .filter(|device| !missing.contains(device))
            .collect(),
        unreachable: Vec::new(),
    };
    for chunk in missing.chunks(MAX_BATCH_ENVELOPES) {
        let devices = BoundedVec::new(chunk.to_vec()).map_err(|source| ClientError::TooMany {
            what: "devices to claim keys of",
            source,
        })?;
        let bundles = match connection.call(ClaimBundles { devices }).await {
            Ok(bundles) => bundles,
            Err(ConnectionError::Refused(answer)) => {
                let why = if answer.code.is_transient() {
                    Unreachable::Later(answer.to_string())
                } else {
                    Unreachable::Never(answer.to_string())
                };
                reach
                    .unreachable
                    .extend(chunk.iter().map(|device| (*device, why.clone())));
                continue;
            }
            Err(error) => return Err(error.into()),
        };
        for (device, bundle) in chunk.iter().copied().zip(bundles) {
            let bundle = match bundle {
                Ok(bundle) => bundle,
                Err(answer) => {
                    let why = match answer.code {
                        ErrorCode::NoKeys => Unreachable::Later(format!(
                            "{} has not published keys yet",
                            device.user
                        )),
                        code if code.is_transient() => Unreachable::Later(answer.to_string()),
                        _ => Unreachable::Never(answer.to_string()),
                    };
                    reach.unreachable.push((device, why));
                    continue;
                }
            };
            let installed = client
                .blocking(move |inner| {
                    inner
                        .store
                        .install_outbound(&inner.identity, &device, &bundle)
                })
                .await;
            match installed {
                Ok(()) => reach.ready.push(device),
                Err(ClientError::Store(
                    error @ (StoreError::Crypto(_) | StoreError::Conflict(_)),
                )) => {
                    tracing::warn!(%device, %error, "a device's keys do not verify");
                    reach.unreachable.push((
                        device,
                        Unreachable::Never(format!(
                            "the relay gave keys for {} that do not verify: {error}",
                            device.user
                        )),
                    ));
                }
                Err(error) => return Err(error),
            }
        }
    }
    Ok(reach)
}
