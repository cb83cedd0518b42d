//! Group descriptors on this device: the newest version of each group, and the chain rules
//! a change must pass before it replaces it.

use redb::{ReadableTable, WriteTransaction};
use tidings_protocol::{
    GroupId,
    group::{GroupError, SignedDescriptor},
};

use super::{StoreError, tables::GROUPS};

/// The newest descriptor held for `group`.
pub(super) fn descriptor(
    txn: &WriteTransaction,
    group: &GroupId,
) -> Result<Option<SignedDescriptor>, StoreError> {
    match txn.open_table(GROUPS)?.get(group.as_bytes())? {
        Some(bytes) => SignedDescriptor::decode(bytes.value())
            .map(Some)
            .map_err(|error| StoreError::corrupt("groups", error)),
        None => Ok(None),
    }
}

fn save_descriptor(txn: &WriteTransaction, change: &SignedDescriptor) -> Result<(), StoreError> {
    txn.open_table(GROUPS)?.insert(
        change.descriptor.group.as_bytes(),
        change.encode().as_slice(),
    )?;
    Ok(())
}

/// Applies a change this device made, once the relay accepted it.
pub(super) fn apply_own_change(txn: &WriteTransaction, bytes: &[u8]) -> Result<(), StoreError> {
    let Ok(change) = SignedDescriptor::decode(bytes) else {
        return Ok(());
    };
    let newer = descriptor(txn, &change.descriptor.group)?
        .is_none_or(|known| known.descriptor.version < change.descriptor.version);
    if newer {
        save_descriptor(txn, &change)?;
    }
    Ok(())
}

/// Takes a change someone else made. Every version must follow the one held by the chain
/// rules, and a group is first taken at version 1 (whose id is derived from its creator): a
/// device that missed versions fetches them from its relay first (`Session`), so a version
/// that skips ahead, however well signed, is refused.
pub(super) fn accept_change(
    txn: &WriteTransaction,
    change: &SignedDescriptor,
) -> Result<Result<(), GroupError>, StoreError> {
    let verdict = match descriptor(txn, &change.descriptor.group)? {
        Some(known) if known.descriptor.version >= change.descriptor.version => {
            return Ok(Err(GroupError::Stale {
                got: change.descriptor.version,
                known: known.descriptor.version,
            }));
        }
        Some(known) => change.check_successor(&known),
        None => change.check_genesis(),
    };
    if verdict.is_ok() {
        save_descriptor(txn, change)?;
    }
    Ok(verdict)
}
