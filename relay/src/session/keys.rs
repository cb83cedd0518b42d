//! `UploadKeys` and `ClaimBundle`: publishing Olm keys and handing them out.

use std::sync::Arc;

use tidings_protocol::{
    Address, ErrorAnswer, ErrorCode, SignedPreKey, UserId,
    client::{Response, UploadKeys},
};

use super::{Answer, Shared};
use crate::{
    federation::{Home, LinkError},
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
pub(super) async fn upload(shared: Arc<Shared>, me: Address, upload: UploadKeys) -> Answer {
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
    let outcome = shared
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

/// Hands out a bundle of `user`, from here or from the user's home relay; the client
/// verifies it against the user id it trusts.
pub(super) async fn claim(shared: Arc<Shared>, user: UserId) -> Answer {
    let no_keys = || {
        ErrorAnswer::new(
            ErrorCode::NoKeys,
            format!("{user} has not published keys yet"),
        )
    };
    match shared
        .store
        .claim_bundle(user)
        .await
        .map_err(storage_answer)?
    {
        ClaimOutcome::Bundle(bundle) => return Ok(Response::Bundle(bundle)),
        ClaimOutcome::NoKeys => return Err(no_keys()),
        ClaimOutcome::UnknownUser => {}
    }
    let remote = match shared
        .directory
        .resolve(user)
        .await
        .map_err(storage_answer)?
    {
        Home::Remote(remote) => remote,
        Home::Local | Home::Unknown => {
            return Err(ErrorAnswer::new(
                ErrorCode::UnknownRecipient,
                format!("no home relay is known for {user}"),
            ));
        }
    };
    match shared
        .links
        .request(&remote, FederationRequest::Claim { user })
        .await
    {
        Ok(FederationResponse::Bundle(bundle)) => Ok(Response::Bundle(bundle)),
        Ok(_) => Err(ErrorAnswer::new(
            ErrorCode::Unavailable,
            "unexpected answer from the home relay",
        )),
        Err(LinkError::Refused(answer)) if answer.code == ErrorCode::NoKeys => Err(no_keys()),
        Err(error) => {
            shared.directory.invalidate(&user);
            Err(ErrorAnswer::new(
                ErrorCode::Unavailable,
                format!("{user}'s home relay: {error}; retry later"),
            ))
        }
    }
}
