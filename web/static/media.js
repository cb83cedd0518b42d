// Media in the page: a file attached to the open chat goes up with a progress bar; a media
// message shows its name, size and a Save link (the device downloads, checks and decrypts it,
// then the page offers it as a file; an image is shown too).
import { Event, Request } from "./messages.js";

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

/** Most progress bars followed at once (a transfer's bar is dropped when it ends). */
const MAX_BARS = 64;

/** The worker channel (messages.js) and app.js's way to add a message to the open chat. */
let channel = null;
let appendToChat = null;
let nextTransfer = 1;
/** Progress bars by transfer id (a send) or message id (a save). */
const bars = new Map();

/** A byte count for people: `512 B`, `1.5 KiB`, `12.0 MiB`. */
function humanSize(bytes) {
  if (bytes < 1024) {
    return `${bytes} B`;
  }
  const units = ["KiB", "MiB", "GiB", "TiB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

function follow(id, bar) {
  if (bars.size >= MAX_BARS) {
    bars.delete(bars.keys().next().value);
  }
  bar.value = 0;
  bar.hidden = false;
  bars.set(id, bar);
}

function showProgress({ id, done, total }) {
  const bar = bars.get(id);
  if (bar && total > 0) {
    bar.value = done / total;
  }
}

async function sendFile(file) {
  const who = byTestId("chat-title").textContent;
  const status = byTestId("attach-status");
  if (!who) {
    return;
  }
  const transfer = `send-${nextTransfer++}`;
  follow(transfer, byTestId("attach-progress"));
  status.textContent = `sending ${file.name}…`;
  try {
    const message = await channel.request(Request.SEND_FILE, { who, file, transfer });
    status.textContent = `sent ${file.name}`;
    if (byTestId("chat-title").textContent === who) {
      appendToChat(message);
    }
  } catch (error) {
    status.textContent = `${file.name}: ${error.message || error}`;
  } finally {
    bars.delete(transfer);
  }
}

/** The OPFS file at `path` (`dir/.../name`) as a disk-backed `File`. */
async function opfsFile(path) {
  const names = String(path).split("/");
  const name = names.pop();
  let dir = await navigator.storage.getDirectory();
  for (const part of names) {
    dir = await dir.getDirectoryHandle(part);
  }
  return await (await dir.getFileHandle(name)).getFile();
}

async function saveMedia(id, media, link, bar) {
  link.textContent = "Saving…";
  follow(id, bar);
  try {
    const path = await channel.request(Request.SAVE_MEDIA, { message: id });
    link.dataset.stage = "saved";
    const file = await opfsFile(path);
    const url = URL.createObjectURL(new Blob([file], { type: media.mime }));
    link.href = url;
    link.download = media.name;
    // The saved File itself, for scripts (the scenario hashes it in the page).
    link.savedFile = file;
    link.dataset.ready = "true";
    link.textContent = "Download";
    if (media.kind === "image") {
      const image = document.createElement("img");
      image.dataset.testid = "media-image";
      image.alt = media.name;
      image.src = url;
      link.parentElement.append(image);
    }
    link.click();
  } catch (error) {
    link.textContent = "Save (failed, again?)";
    link.dataset.error = String(error.message || error);
  } finally {
    bars.delete(id);
    bar.hidden = true;
  }
}

/** Adds the media of `message` (if it has some) to its list item. */
export function showMedia(item, message) {
  const media = message.media;
  if (!media) {
    return;
  }
  const box = document.createElement("div");
  box.className = "media";
  box.dataset.testid = "media";
  box.dataset.name = media.name;
  box.dataset.size = String(media.size);
  const label = document.createElement("span");
  label.textContent = `📎 ${media.name} (${humanSize(media.size)}) `;
  const link = document.createElement("a");
  link.href = "#";
  link.dataset.testid = "media-save";
  link.textContent = "Save";
  const bar = document.createElement("progress");
  bar.dataset.testid = "media-progress";
  bar.max = 1;
  bar.hidden = true;
  link.addEventListener("click", (clicked) => {
    if (link.dataset.ready) {
      return;
    }
    clicked.preventDefault();
    if (link.textContent !== "Saving…") {
      saveMedia(message.id, media, link, bar);
    }
  });
  box.append(label, link, bar);
  item.append(box);
}

/** Wires the attach button and progress events; `device` is app.js's worker channel. */
export function setupMedia(device, appendMessage) {
  channel = device;
  appendToChat = appendMessage;
  device.worker.addEventListener("message", ({ data }) => {
    if (data && data.event === Event.PROGRESS) {
      showProgress(data);
    }
  });
  const input = byTestId("attach-file");
  input.addEventListener("change", () => {
    const file = input.files && input.files[0];
    input.value = "";
    if (file) {
      sendFile(file);
    }
  });
}
