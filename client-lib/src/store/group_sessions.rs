//! Read-only views of a device's Megolm sessions for a group (which ones it can open, which
//! one it sends with), so tests and scenarios can check that a key rotated.

use tidings_keys::{GroupOutbound, StoreKey};
use tidings_protocol::GroupId;

use super::{
    ClientStore, StoreError, decode,
    tables::{GROUP_INBOUND, GROUP_OUTBOUND, OutboundGroup},
};

impl ClientStore {
    /// Ids of the sessions of `group` (any sender's) this device holds a key for.
    pub fn group_inbound_session_ids(&self, group: &GroupId) -> Result<Vec<String>, StoreError> {
        let prefix = format!("{group}/");
        self.read(|txn| {
            let mut ids = Vec::new();
            for entry in txn
                .open_table(GROUP_INBOUND)?
                .range::<&str>(prefix.as_str()..)?
            {
                let (key, _) = entry?;
                let key = key.value();
                let Some(rest) = key.strip_prefix(prefix.as_str()) else {
                    break;
                };
                if let Some((_, session_id)) = rest.rsplit_once('/') {
                    ids.push(session_id.to_string());
                }
            }
            Ok(ids)
        })
    }

    /// The id of this device's current sending session in `group`, if it has one
    /// (`store_key` opens it).
    pub fn group_outbound_session_id(
        &self,
        group: &GroupId,
        store_key: &StoreKey,
    ) -> Result<Option<String>, StoreError> {
        self.read(|txn| {
            let Some(bytes) = txn.open_table(GROUP_OUTBOUND)?.get(group.as_bytes())? else {
                return Ok(None);
            };
            let state: OutboundGroup = decode("group_outbound", bytes.value())?;
            let outbound = GroupOutbound::unpickle(&state.pickle, store_key)
                .map_err(|error| StoreError::corrupt("group_outbound", error))?;
            Ok(Some(outbound.session_id()))
        })
    }
}
