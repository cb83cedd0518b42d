//! Media from and to the page: a file the page picked is copied into OPFS in bounded pieces, sealed and uploaded with progress; a received one is downloaded, checked and opened into OPFS and handed to the page as a `File`.

use std::path::{Path, PathBuf};

use send_wrapper::SendWrapper;
use serde_json::json;
use tidings_client::{media::Progress, runtime::files};
use tidings_protocol::{EnvelopeId, media::MAX_MEDIA_NAME_BYTES};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;

use crate::device::{DEVICE_DIR, Device, js_error, message_json};

/// Bytes of a picked file held in the worker's memory at a time while it is copied into
/// OPFS (the file itself never sits whole in memory).
const PICK_CHUNK_BYTES: u64 = 1 << 20;

/// Largest file the page sends (the home relay may allow less: its `max_blob_bytes`). It is
/// in OPFS twice while it goes up (the picked copy and the sealed one).
pub const MAX_PAGE_FILE_BYTES: u64 = 1 << 30;

/// Where picked files wait in the device's OPFS directory while they are sealed.
const PICKED_DIR: &str = "media/picked";

/// Where saved media are kept in the device's OPFS directory (by blob id) for the page.
const SAVED_DIR: &str = "media/saved";

/// Progress is reported each time it grows by at least this share of the whole (1/N).
const PROGRESS_STEPS: u64 = 100;

#[wasm_bindgen]
impl Device {
    /// Sends the file `file` (a `File` or `Blob` the page picked) named `name` to `who`:
    /// copied into OPFS a piece at a time, sealed, uploaded, then the message queued and
    /// sent. `on_progress(json)` gets `{kind: "progress", id: transfer, done, total}` as the
    /// upload goes. Returns the message as JSON. Two sends of one name at once: the second
    /// fails while the first is being copied (OPFS locks the file).
    #[wasm_bindgen(js_name = sendFile)]
    pub async fn send_file(
        &self,
        who: String,
        file: web_sys::Blob,
        name: String,
        transfer: String,
        on_progress: js_sys::Function,
    ) -> Result<String, JsError> {
        let size = file.size() as u64;
        if size > MAX_PAGE_FILE_BYTES {
            return Err(JsError::new(&format!(
                "{size} bytes is more than the {MAX_PAGE_FILE_BYTES} a page may send"
            )));
        }
        let path = Path::new(DEVICE_DIR)
            .join(PICKED_DIR)
            .join(picked_name(&name));
        let copied = copy_into_opfs(&file, size, &path).await;
        let sent = match copied {
            Ok(()) => {
                let mut report = reporter(on_progress, transfer);
                self.client
                    .queue_file(&who, &path, None, &mut report)
                    .await
                    .map_err(js_error)
            }
            Err(error) => Err(error),
        };
        // The sealed copy is what goes up (and is kept until it did); this one is done.
        let _ = files::remove_file(&path).await;
        let sent = sent?;
        self.nudge();
        Ok(message_json(&sent.record).to_string())
    }

    /// Saves the media of message `id`: downloaded (with `{kind: "progress", id, done,
    /// total}` to `on_progress`), checked and opened into OPFS once (a second call reuses
    /// it); returns its OPFS path (`tidings-device/media/saved/<blob id>`), from which the
    /// page takes it as a disk-backed `File` to download or show.
    #[wasm_bindgen(js_name = saveMedia)]
    pub async fn save_media(
        &self,
        id: String,
        on_progress: js_sys::Function,
    ) -> Result<String, JsError> {
        let message: EnvelopeId = id
            .trim_start_matches('#')
            .parse()
            .map_err(|_| JsError::new(&format!("{id:?} is not a message id")))?;
        let record = self
            .client
            .store()
            .message(&message)
            .map_err(js_error)?
            .ok_or_else(|| JsError::new(&format!("no message {id} here")))?;
        let media = record
            .media
            .ok_or_else(|| JsError::new(&format!("message {id} is not a media message")))?;
        let target: PathBuf = Path::new(DEVICE_DIR)
            .join(SAVED_DIR)
            .join(media.blob.id.to_string());
        if !matches!(files::size_of(&target).await, Ok(Some(size)) if size == media.size) {
            let report = reporter(on_progress, id);
            self.client
                .save_media(message, &target, report)
                .await
                .map_err(js_error)?;
        }
        Ok(target.to_string_lossy().to_string())
    }
}

/// A progress callback passing `{kind: "progress", id, done, total}` to `on_progress`, at
/// most about [`PROGRESS_STEPS`] times per transfer.
fn reporter(on_progress: js_sys::Function, id: String) -> impl FnMut(Progress) + Send {
    // The worker has one thread: the function never leaves it.
    let on_progress = SendWrapper::new(on_progress);
    let mut shown: Option<u64> = None;
    move |progress: Progress| {
        let step = (progress.total / PROGRESS_STEPS).max(1);
        let due = match shown {
            None => true,
            Some(last) => progress.done == progress.total || progress.done >= last + step,
        };
        if !due || progress.relay_fetching {
            return;
        }
        shown = Some(progress.done);
        let event = json!({
            "kind": "progress",
            "id": id,
            "done": progress.done,
            "total": progress.total,
        });
        let _ = on_progress.call1(&JsValue::NULL, &event.to_string().into());
    }
}

/// A picked file's name as an OPFS entry and a media message carry it: no path separators,
/// not empty, at most [`MAX_MEDIA_NAME_BYTES`].
fn picked_name(name: &str) -> String {
    let clean: String = name
        .chars()
        .map(|c| {
            if matches!(c, '/' | '\\') || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect();
    let clean = clean.trim().trim_start_matches('.');
    let mut end = clean.len().min(MAX_MEDIA_NAME_BYTES);
    while !clean.is_char_boundary(end) {
        end -= 1;
    }
    match &clean[..end] {
        "" => "file".to_string(),
        name => name.to_string(),
    }
}

/// Copies the `size` bytes of `file` into the OPFS file `path`, [`PICK_CHUNK_BYTES`] at a
/// time.
async fn copy_into_opfs(file: &web_sys::Blob, size: u64, path: &Path) -> Result<(), JsError> {
    let mut output = files::create_sync(path).await.map_err(js_error)?;
    let mut done = 0u64;
    while done < size {
        let end = (done + PICK_CHUNK_BYTES).min(size);
        let piece = file
            .slice_with_f64_and_f64(done as f64, end as f64)
            .map_err(|_| JsError::new("the picked file cannot be read"))?;
        let buffer = JsFuture::from(piece.array_buffer())
            .await
            .map_err(|_| JsError::new("the picked file cannot be read"))?;
        let bytes = js_sys::Uint8Array::new(&buffer).to_vec();
        if bytes.len() as u64 != end - done {
            return Err(JsError::new("the picked file changed while it was read"));
        }
        std::io::Write::write_all(&mut output, &bytes).map_err(js_error)?;
        done = end;
    }
    output.sync_all().map_err(js_error)
}
