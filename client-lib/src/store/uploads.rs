//! Media in the store: files sealed for sending (reused when sent again) and media
//! messages queued like texts.

use tidings_protocol::{EnvelopeId, Kind, UserId, content::Payload, media::MediaMessage, now_ms};

use super::{
    ClientStore, StoreError, history,
    outbox::enqueue,
    tables::{
        Conversation, Direction, MessageRecord, MessageStatus, OutboxContent, OutboxEntry, UPLOADS,
        UploadRecord,
    },
};

impl ClientStore {
    /// The file with plaintext SHA-256 `digest`, if it was sealed for sending before.
    pub fn upload_record(&self, digest: &[u8; 32]) -> Result<Option<UploadRecord>, StoreError> {
        self.read(|txn| {
            txn.open_table(UPLOADS)?
                .get(digest)?
                .map(|bytes| txn.at_rest.open_record("uploads", digest, bytes.value()))
                .transpose()
        })
    }

    /// Records a file sealed for sending, or that its upload finished.
    pub fn save_upload(&self, digest: &[u8; 32], record: &UploadRecord) -> Result<(), StoreError> {
        self.write(|txn| {
            let sealed = txn.at_rest.seal_record("uploads", digest, record)?;
            txn.open_table(UPLOADS)?.insert(digest, sealed.as_slice())?;
            Ok(())
        })
    }

    /// Records a media message (pending) in a conversation and queues it, in one
    /// transaction. Its text is the caption.
    pub fn queue_media(
        &self,
        me: UserId,
        to: Conversation,
        media: MediaMessage,
    ) -> Result<MessageRecord, StoreError> {
        self.write(|txn| {
            let now = now_ms();
            let (peer, group) = match to {
                Conversation::Direct(user) => (user, None),
                Conversation::Group(group) => (me, Some(group)),
            };
            let record = MessageRecord {
                id: EnvelopeId::new(),
                peer,
                group,
                direction: Direction::Outgoing,
                text: media.caption.clone().unwrap_or_default(),
                sent_at_ms: now,
                stored_at_ms: now,
                status: MessageStatus::Pending,
                media: Some(Box::new(media.clone())),
            };
            history::append(txn, &record)?;
            enqueue(
                txn,
                &OutboxEntry::new(
                    record.id,
                    to,
                    Kind::Message,
                    OutboxContent::Encrypted(Payload::Media {
                        media: Box::new(media),
                    }),
                ),
            )?;
            Ok(record)
        })
    }
}
