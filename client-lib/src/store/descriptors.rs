//! Group descriptors on this device: the newest version of each group, and the chain rules
//! a change must pass before it replaces it.

use super::at_rest::{AtRest, WriteTxn};
use redb::ReadableTable;
use tidings_protocol::{
    GroupId,
    group::{GroupError, SignedDescriptor},
};

use super::{StoreError, tables::GROUPS};

/// Opens `group`'s sealed row of the groups table.
pub(super) fn open_descriptor(
    at_rest: &AtRest,
    group: &GroupId,
    sealed: &[u8],
) -> Result<SignedDescriptor, StoreError> {
    SignedDescriptor::decode(&at_rest.open("groups", group.as_bytes(), sealed)?)
        .map_err(|error| StoreError::corrupt("groups", error))
}

/// The newest descriptor held for `group`.
pub(super) fn descriptor(
    txn: &WriteTxn<'_>,
    group: &GroupId,
) -> Result<Option<SignedDescriptor>, StoreError> {
    match txn.open_table(GROUPS)?.get(group.as_bytes())? {
        Some(bytes) => open_descriptor(txn.at_rest, group, bytes.value()).map(Some),
        None => Ok(None),
    }
}

fn save_descriptor(txn: &WriteTxn<'_>, change: &SignedDescriptor) -> Result<(), StoreError> {
    let group = change.descriptor.group;
    let sealed = txn
        .at_rest
        .seal("groups", group.as_bytes(), &change.encode())?;
    txn.open_table(GROUPS)?
        .insert(group.as_bytes(), sealed.as_slice())?;
    Ok(())
}

/// Applies a change this device made, once the relay accepted it.
pub(super) fn apply_own_change(txn: &WriteTxn<'_>, bytes: &[u8]) -> Result<(), StoreError> {
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
    txn: &WriteTxn<'_>,
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
