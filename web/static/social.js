// The page's social side (web/src/social.rs does the work): the open chat's presence and
// "typing…", profile names in the chat list and our own profile, status updates (24 h) and
// search over the history. app.js calls setup, entered, chatsShown, chatOpened and onEvent.
import { Event, Request } from "./messages.js";

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);

/** Most conversations remembered as typing at once (each also expires by itself). */
const MAX_TYPING = 256;
/** Most contacts whose presence is remembered (the worker watches at most 1024). */
const MAX_PRESENCE = 1024;

let device = null;
let openChat = () => {};
/** The chats as the list shows them: `{name, user}` or `{name, group}`. */
let chats = [];
/** The open chat's name. */
let openName = null;
/** Presence by user id: `{state, lastSeen}`. */
const presence = new Map();
/** Who types, by conversation (a user id, or a group id): the timer that expires it. */
const typing = new Map();
/** Profile names by user id. */
const profileNames = new Map();

function report(error) {
  byTestId("status").textContent = `${error && error.message || error}`;
}

/** Runs `work` for a submitted form of ours; errors go to the status line. */
function onSubmit(id, work) {
  document.getElementById(id).addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    work().catch(report);
  });
}

function timeText(ms) {
  return new Date(ms).toLocaleString();
}

function presenceText(seen) {
  if (!seen) {
    return "";
  }
  if (seen.state === "online") {
    return "online";
  }
  if (seen.state === "offline") {
    return seen.lastSeen ? `last seen ${timeText(seen.lastSeen)}` : "offline";
  }
  return "";
}

/** The chat header's presence, profile name and "typing…" for the open chat. */
function showHeader() {
  const chat = chats.find((c) => c.name === openName);
  const seen = chat && chat.user ? presence.get(chat.user) : undefined;
  const key = chat ? (chat.user || chat.group) : undefined;
  const profile = chat && chat.user ? profileNames.get(chat.user) : undefined;
  byTestId("chat-profile").textContent = profile && profile !== chat.name ? profile : "";
  const presenceLine = byTestId("chat-presence");
  presenceLine.textContent = presenceText(seen);
  presenceLine.dataset.state = seen ? seen.state : "";
  const typingLine = byTestId("chat-typing");
  typingLine.textContent = key && typing.has(key) ? "typing…" : "";
}

function setTyping(key, on, expiresMs) {
  clearTimeout(typing.get(key));
  typing.delete(key);
  if (on) {
    if (typing.size >= MAX_TYPING) {
      const oldest = typing.keys().next().value;
      clearTimeout(typing.get(oldest));
      typing.delete(oldest);
    }
    typing.set(key, setTimeout(() => {
      typing.delete(key);
      showHeader();
    }, expiresMs));
  }
  showHeader();
}

/** Profile names next to the contacts in the chat list, and in the open chat's header. */
async function showProfiles() {
  const profiles = await device.request(Request.PROFILES);
  profileNames.clear();
  for (const contact of profiles.contacts) {
    if (contact.profile && contact.profile.name) {
      profileNames.set(contact.user, contact.profile.name);
    }
  }
  for (const button of document.querySelectorAll('[data-testid="chat"]')) {
    const chat = chats.find((c) => c.name === button.dataset.name);
    const name = chat && chat.user ? profileNames.get(chat.user) : undefined;
    let label = button.querySelector('[data-testid="chat-profile-name"]');
    if (!name || name === chat.name) {
      if (label) {
        label.remove();
      }
      continue;
    }
    if (!label) {
      label = document.createElement("span");
      label.className = "profile";
      label.dataset.testid = "chat-profile-name";
      button.append(label);
    }
    label.textContent = `(${name})`;
  }
  showHeader();
  return profiles;
}

function statusItem(testid, who, status, extra) {
  const item = document.createElement("li");
  item.dataset.testid = testid;
  item.dataset.id = status.id;
  if (who) {
    item.dataset.poster = who;
  }
  const text = document.createElement("span");
  text.dataset.testid = "status-text";
  text.textContent = status.media ? `media status ${status.text}`.trim() : status.text;
  item.append(`${extra} `, text);
  return item;
}

async function showStatuses() {
  const held = await device.request(Request.STATUSES);
  // Marked with the poster's name in the chat list (`name` may add their profile name).
  const contactName = (status) => (chats.find((c) => c.user === status.poster) || status).name;
  byTestId("status-list").replaceChildren(...held.theirs.map((status) => statusItem(
    "status-item", contactName(status), status, `${status.name} · ${timeText(status.postedAt)}:`)));
  byTestId("my-statuses").replaceChildren(...held.mine.map((status) => statusItem(
    "my-status", null, status, `me (seen by ${status.seenBy} of ${status.audience}):`)));
}

function resultItem(result) {
  const item = document.createElement("li");
  const button = document.createElement("button");
  button.type = "button";
  button.dataset.testid = "search-result";
  button.dataset.chat = result.chat;
  button.dataset.id = result.id;
  const place = result.group ? `#${result.chat} / ${result.sender}` : `${result.chat} · ${result.sender}`;
  button.append(`${place} · ${timeText(result.sentAt)}: `);
  const snippet = document.createElement("span");
  snippet.dataset.testid = "search-snippet";
  for (const part of result.parts) {
    if (part.hit) {
      const mark = document.createElement("mark");
      mark.textContent = part.text;
      snippet.append(mark);
    } else {
      snippet.append(part.text);
    }
  }
  button.append(snippet);
  button.addEventListener("click", () => openChat(result.chat));
  item.append(button);
  return item;
}

/** Hooks our forms up to the worker (once, when the page starts). */
export function setup(channel, hooks) {
  device = channel;
  openChat = hooks.openChat;
  const compose = byTestId("compose");
  compose.addEventListener("input", () => {
    if (openName && compose.value) {
      device.request(Request.TYPING, { who: openName, sent: false }).catch(() => {});
    }
  });
  document.getElementById("compose").addEventListener("submit", () => {
    if (openName) {
      device.request(Request.TYPING, { who: openName, sent: true }).catch(() => {});
    }
  });
  onSubmit("profile", async () => {
    const saved = await device.request(Request.SET_PROFILE, {
      name: byTestId("profile-name").value, about: byTestId("profile-about").value,
    });
    byTestId("profile-name").value = saved.name;
    byTestId("profile-about").value = saved.about;
    document.getElementById("profile").dataset.version = String(saved.version);
    byTestId("status").textContent = "profile saved";
  });
  onSubmit("post-status", async () => {
    const input = byTestId("status-text");
    const posted = await device.request(Request.POST_STATUS, { text: input.value });
    input.value = "";
    byTestId("status").textContent = `status posted to ${posted.audience} contacts`;
    await showStatuses();
  });
  byTestId("refresh-statuses").addEventListener("click", () => showStatuses().catch(report));
  onSubmit("search", async () => {
    const results = await device.request(Request.SEARCH, { query: byTestId("search-query").value });
    const list = byTestId("search-results");
    list.replaceChildren(...results.map(resultItem));
    list.dataset.count = String(results.length);
  });
}

/**
 * The device is open: our profile into its form. Statuses are fetched when asked for
 * (Refresh, or after posting), not here: the session is busy catching up now.
 */
export async function entered() {
  try {
    const profiles = await showProfiles();
    if (profiles.own) {
      byTestId("profile-name").value = profiles.own.name;
      byTestId("profile-about").value = profiles.own.about;
    }
  } catch (error) {
    report(error);
  }
}

/** The chat list was drawn (again) from `list`. */
export function chatsShown(list) {
  chats = list;
  showProfiles().catch(report);
}

/** The chat `name` was opened. */
export function chatOpened(name) {
  openName = name;
  showHeader();
}

/** Takes the worker's social events; whether `message` was one (app.js skips it then). */
export function onEvent(message) {
  if (message.event === Event.PRESENCE) {
    if (!presence.has(message.user) && presence.size >= MAX_PRESENCE) {
      presence.delete(presence.keys().next().value);
    }
    presence.set(message.user, { state: message.state, lastSeen: message.lastSeen });
    showHeader();
    return true;
  }
  if (message.event === Event.TYPING) {
    setTyping(message.group || message.from, message.typing, message.expiresMs);
    return true;
  }
  if (message.event === Event.PROFILE) {
    showProfiles().catch(report);
    return true;
  }
  if (message.event === Event.MESSAGE && message.message) {
    // A message from someone typing ends their "typing…" (as in the CLI's chat view).
    const key = message.message.group || message.message.peer;
    if (typing.has(key)) {
      setTyping(key, false, 0);
    }
  }
  return false;
}
