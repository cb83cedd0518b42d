//! How the page sees a media message: its name, size and type as JSON (the bytes come from `Device::saveMedia`).

use serde_json::{Value, json};
use tidings_protocol::media::{MediaKind, MediaMessage};

/// What the page shows of a media message (its bytes come from `saveMedia`).
pub(crate) fn media_json(media: &MediaMessage) -> Value {
    let kind = match media.kind {
        MediaKind::Image => "image",
        MediaKind::Video => "video",
        MediaKind::Audio => "audio",
        MediaKind::File => "file",
    };
    json!({
        "name": media.name,
        "size": media.size,
        "mime": media.mime,
        "kind": kind,
        "caption": media.caption,
    })
}
