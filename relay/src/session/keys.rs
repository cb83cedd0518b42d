//! `UploadKeys` and `ClaimBundle`: publishing Olm keys and handing them out.

use std::sync::Arc;

use tidings_protocol::{
    Address, BoundedVec, ErrorAnswer, ErrorCode, SignedPreKey,
    client::{Response, UploadKeys},
};

use super::{Answer, context::ClientContext};
use crate::{
    federation::{Home, HomeAnswer, LookupBudget, ask_home, no_home_yet, unknown_device},
    ingest::storage_answer,
    store::{ClaimOutcome, KeysOutcome},
};
use tidings_protocol::federation::{FederationRequest, FederationResponse};

fn bad_keys(detail: &str) -> ErrorAnswer {
    ErrorAnswer::new(ErrorCode::BadKeys, detail)
}

fn check_prekey(me: &Address, key: &SignedPreKey, fallback: bool) -> Result<(), ErrorAnswer> {
    if key.device != me.device {
        return Err(bad_keys("a prekey names another device"));
    }
    if key.fallback != fallback {
        return Err(bad_keys("one-time and fallback keys are mixed up"));
    }
    key.verify()
        .map_err(|_| bad_keys("a prekey signature does not verify"))
}

/// Verifies every signature, then stores the keys.
pub(super) async fn upload(cx: Arc<ClientContext>, me: Address, upload: UploadKeys) -> Answer {
    cx.disk.admit()?;
    if let Some(identity) = &upload.identity {
        if identity.device != me.device {
            return Err(bad_keys("the identity key names another device"));
        }
        identity
            .verify()
            .map_err(|_| bad_keys("the identity key signature does not verify"))?;
    }
    for key in upload.one_time_keys.iter() {
        check_prekey(&me, key, false)?;
    }
    if let Some(fallback) = &upload.fallback {
        check_prekey(&me, fallback, true)?;
    }
    let outcome = cx
        .store
        .upload_keys(
            me.device,
            upload.identity,
            upload.one_time_keys.into_vec(),
            upload.fallback,
        )
        .await
        .map_err(storage_answer)?;
    match outcome {
        KeysOutcome::Stored { one_time_keys } => Ok(Response::KeysUploaded { one_time_keys }),
        KeysOutcome::NotRegistered => Err(ErrorAnswer::new(
            ErrorCode::NotRegistered,
            "register this device first",
        )),
    }
}

/// Hands out a bundle of device `address`, from here or from the user's home relay; the
/// client verifies it against the user id it trusts.
pub(super) async fn claim(cx: Arc<ClientContext>, me: Address, address: Address) -> Answer {
    let user = address.user;
    let no_keys = || {
        ErrorAnswer::new(
            ErrorCode::NoKeys,
            format!("{user} has not published keys yet"),
        )
    };
    match cx.claims.hand_out(address).await.map_err(storage_answer)? {
        ClaimOutcome::Bundle(bundle) => return Ok(Response::Bundle(bundle)),
        ClaimOutcome::NoKeys => return Err(no_keys()),
        ClaimOutcome::UnknownDevice => return Err(unknown_device(address)),
        ClaimOutcome::UnknownUser => {}
    }
    let request = FederationRequest::Claim {
        device: address,
        requester: me.user,
    };
    match ask_home(&cx.directory, &cx.links, user, request).await {
        Ok(HomeAnswer::Remote(FederationResponse::Bundle(bundle))) => Ok(Response::Bundle(bundle)),
        Ok(HomeAnswer::Local) => Err(no_home_yet(user)),
        Ok(HomeAnswer::Remote(_)) => Err(ErrorAnswer::new(
            ErrorCode::Unavailable,
            "unexpected answer from the home relay",
        )),
        Err(answer) if answer.code == ErrorCode::NoKeys => Err(no_keys()),
        Err(answer) if answer.code == ErrorCode::UnknownRecipient => Err(unknown_device(address)),
        Err(answer) => Err(answer),
    }
}

/// Lookups run at once while resolving a batch claim.
const CLAIM_LOOKUPS_IN_FLIGHT: usize = 32;

/// Hands out bundles of several users: local ones from the store, the rest with one
/// federation request per home relay.
pub(super) async fn claim_many(
    cx: Arc<ClientContext>,
    me: Address,
    wanted: Vec<Address>,
) -> Answer {
    use futures::StreamExt;
    use std::collections::HashMap;

    let mut answers: Vec<Option<Result<tidings_protocol::KeyBundle, ErrorAnswer>>> =
        vec![None; wanted.len()];
    let mut unresolved = Vec::new();
    for (index, address) in wanted.iter().enumerate() {
        let user = address.user;
        match cx.claims.hand_out(*address).await.map_err(storage_answer)? {
            ClaimOutcome::Bundle(bundle) => answers[index] = Some(Ok(*bundle)),
            ClaimOutcome::NoKeys => {
                answers[index] = Some(Err(ErrorAnswer::new(
                    ErrorCode::NoKeys,
                    format!("{user} has not published keys yet"),
                )))
            }
            ClaimOutcome::UnknownDevice => answers[index] = Some(Err(unknown_device(*address))),
            ClaimOutcome::UnknownUser => unresolved.push((index, *address)),
        }
    }
    let budget = Arc::new(LookupBudget::per_request());
    let resolved: Vec<_> = futures::stream::iter(unresolved)
        .map(|(index, address)| {
            let cx = cx.clone();
            let budget = budget.clone();
            async move {
                let home = cx.directory.resolve_within(address.user, &budget).await;
                (index, address, home)
            }
        })
        .buffer_unordered(CLAIM_LOOKUPS_IN_FLIGHT)
        .collect()
        .await;
    let mut by_relay: HashMap<libp2p::PeerId, (crate::federation::Remote, Vec<(usize, Address)>)> =
        HashMap::new();
    for (index, address, home) in resolved {
        match home {
            Ok(Home::Remote(remote)) => by_relay
                .entry(remote.peer)
                .or_insert_with(|| (remote, Vec::new()))
                .1
                .push((index, address)),
            Ok(_) => answers[index] = Some(Err(no_home_yet(address.user))),
            Err(error) => answers[index] = Some(Err(storage_answer(error))),
        }
    }
    for (_, (remote, wanted)) in by_relay {
        let list: Vec<Address> = wanted.iter().map(|(_, address)| *address).collect();
        let request = FederationRequest::ClaimBundles {
            devices: BoundedVec::new(list).unwrap_or_default(),
            requester: me.user,
        };
        match cx.links.request(&remote, request).await {
            Ok(FederationResponse::Bundles { bundles }) if bundles.len() == wanted.len() => {
                for ((index, _), bundle) in wanted.into_iter().zip(bundles.into_vec()) {
                    answers[index] = Some(bundle);
                }
            }
            outcome => {
                let detail = match outcome {
                    Err(error) => format!("home relay: {error}; retry later"),
                    Ok(_) => "unexpected answer from the home relay".into(),
                };
                for (index, address) in wanted {
                    cx.directory.invalidate(&address.user).await;
                    answers[index] = Some(Err(ErrorAnswer::new(
                        ErrorCode::Unavailable,
                        detail.clone(),
                    )));
                }
            }
        }
    }
    let bundles = answers
        .into_iter()
        .map(|answer| {
            answer.unwrap_or_else(|| Err(ErrorAnswer::new(ErrorCode::Unavailable, "not handled")))
        })
        .collect();
    BoundedVec::new(bundles)
        .map(|bundles| Response::Bundles { bundles })
        .map_err(|error| ErrorAnswer::new(ErrorCode::Malformed, error.to_string()))
}
