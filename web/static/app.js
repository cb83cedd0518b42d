// The page: starts the device's Dedicated Worker and shows what it reports. The page holds
// no keys and no history; it asks the worker by typed messages (messages.js). Every element a
// test reads has a `data-testid`; `body[data-state]` (loading, welcome, locked, ready,
// failed) and `body[data-link]` (connecting, connected, disconnected) say where the page is.
import { Event, Request, WorkerChannel } from "./messages.js";
import { setupAccount } from "./account.js";
import * as social from "./social.js";
import { setupMedia, showMedia } from "./media.js";

const byTestId = (id) => document.querySelector(`[data-testid="${id}"]`);
const status = byTestId("status");

/** Ticks shown next to our messages. */
const TICKS = { pending: "…", sent: "✓", delivered: "✓✓", read: "✓✓ read", failed: "✗ failed" };

/** Most ticks remembered for messages not shown yet (a tick can beat its message here). */
const MAX_TICKS = 1000;
/** The newest status of our messages, by id. */
const ticks = new Map();

let device = null;
/** The conversation open on the right, by contact name. */
let openChat = null;
/** Chat names by contact user id and by group id (to route incoming messages to a chat). */
let contactsByUser = new Map();
let groupsById = new Map();

function show(state, text) {
  document.body.dataset.state = state;
  if (text !== undefined) {
    status.textContent = text;
  }
  for (const [id, visible] of [["welcome", state === "welcome"], ["locked", state === "locked"],
    ["home", state === "ready"]]) {
    document.getElementById(id).hidden = !visible;
  }
}

function fail(error) {
  show("failed", `failed: ${error && error.message || error}`);
}

function messageItem(message) {
  message.status = ticks.get(message.id) || message.status;
  const item = document.createElement("li");
  item.dataset.testid = "message";
  item.dataset.id = message.id;
  item.dataset.status = message.status;
  item.className = message.outgoing ? "outgoing" : "incoming";
  const text = document.createElement("span");
  text.dataset.testid = "message-text";
  text.textContent = message.text;
  item.append(text);
  showMedia(item, message);
  if (message.outgoing) {
    const tick = document.createElement("span");
    tick.className = "tick";
    tick.dataset.testid = "tick";
    tick.textContent = TICKS[message.status] || "";
    item.append(tick);
  }
  return item;
}

/**
 * Adds a message to the open chat unless it is there already (a message that arrives while
 * the chat's history is being loaded comes both in the history and as an event).
 */
function appendMessage(message) {
  const selector = `[data-testid="message"][data-id="${CSS.escape(message.id)}"]`;
  if (!document.querySelector(selector)) {
    byTestId("messages").append(messageItem(message));
  }
}

function setTick(id, newStatus) {
  ticks.set(id, newStatus);
  if (ticks.size > MAX_TICKS) {
    ticks.delete(ticks.keys().next().value);
  }
  const item = document.querySelector(`[data-testid="message"][data-id="${CSS.escape(id)}"]`);
  if (!item) {
    return;
  }
  item.dataset.status = newStatus;
  const tick = item.querySelector('[data-testid="tick"]');
  if (tick) {
    tick.textContent = TICKS[newStatus] || "";
  }
}

async function showChats(chats) {
  contactsByUser = new Map(chats.filter((c) => c.user).map((c) => [c.user, c.name]));
  groupsById = new Map(chats.filter((c) => c.group).map((c) => [c.group, c.name]));
  const list = byTestId("chat-list");
  list.replaceChildren(...chats.map((contact) => {
    const item = document.createElement("li");
    const button = document.createElement("button");
    button.type = "button";
    button.dataset.testid = "chat";
    button.dataset.name = contact.name;
    button.textContent = contact.group ? `${contact.name} (group)` : contact.name;
    button.className = contact.name === openChat ? "open" : "";
    button.addEventListener("click", () => openConversation(contact.name).catch(fail));
    item.append(button);
    return item;
  }));
  social.chatsShown(chats);
}

async function openConversation(name) {
  openChat = name;
  document.getElementById("chat").hidden = false;
  byTestId("chat-title").textContent = name;
  social.chatOpened(name);
  const history = await device.request(Request.HISTORY, { who: name });
  byTestId("messages").replaceChildren(...history.map(messageItem));
  for (const button of document.querySelectorAll('[data-testid="chat"]')) {
    button.className = button.dataset.name === name ? "open" : "";
  }
  if (history.some((m) => m.status === "received")) {
    await device.request(Request.MARK_READ, { who: name });
  }
}

function onEvent(message) {
  if (social.onEvent(message)) {
    return;
  }
  if (message.event === Event.LINK) {
    document.body.dataset.link = message.state;
    byTestId("link").textContent = message.state;
    status.textContent = message.detail ? `${message.state}: ${message.detail}` : message.state;
  } else if (message.event === Event.MESSAGE) {
    const group = message.message.group;
    const from = group ? groupsById.get(group) : contactsByUser.get(message.message.peer);
    if (from && from === openChat) {
      appendMessage(message.message);
      device.request(Request.MARK_READ, { who: from }).catch(fail);
    }
  } else if (message.event === Event.GROUP) {
    device.request(Request.CHATS).then(showChats).catch(fail);
  } else if (message.event === Event.TICK) {
    setTick(message.id, message.status);
  } else if (message.event === Event.STATUS) {
    status.textContent = message.text;
  } else if (message.event === Event.FAILED) {
    fail(message.error);
  }
}

/** Runs `work` for a submitted form; errors go to the status line, the page stays usable. */
function onSubmit(id, work) {
  document.getElementById(id).addEventListener("submit", (submitted) => {
    submitted.preventDefault();
    work().catch((error) => {
      status.textContent = `${error.message || error}`;
    });
  });
}

async function enter(opened) {
  byTestId("my-card").value = opened.card;
  show("ready", `signed in as ${opened.user}`);
  await showChats(await device.request(Request.CHATS));
  social.entered();
  document.body.dataset.readyMs = String(Math.round(performance.now()));
}

async function main() {
  const worker = new Worker(new URL("worker.js", import.meta.url), { type: "module" });
  device = new WorkerChannel(worker, onEvent);
  const account = setupAccount({ device, show, enter, showChats, openChat: () => openChat, status });
  social.setup(device, { openChat: (name) => openConversation(name).catch(fail) });
  setupMedia(device, appendMessage);
  onSubmit("welcome", async () => {
    const passphrase = byTestId("new-passphrase");
    status.textContent = "creating your account…";
    await enter(await device.request(Request.CREATE, { passphrase: passphrase.value }));
    passphrase.value = "";
  });
  onSubmit("locked", async () => {
    const passphrase = byTestId("passphrase");
    status.textContent = "unlocking…";
    await enter(await device.request(Request.UNLOCK, { passphrase: passphrase.value })
      .catch(account.unlockFailed));
    passphrase.value = "";
  });
  onSubmit("add-contact", async () => {
    const name = byTestId("contact-name");
    const card = byTestId("contact-card");
    await showChats(await device.request(Request.ADD_CONTACT, {
      name: name.value.trim(), card: card.value.trim(),
    }));
    name.value = "";
    card.value = "";
  });
  onSubmit("compose", async () => {
    const input = byTestId("compose");
    const text = input.value;
    if (!openChat || !text) {
      return;
    }
    input.value = "";
    appendMessage(await device.request(Request.SEND, { who: openChat, text }));
  });

  const relay = await (await fetch("tidings.json")).json();
  const connected = await device.request(Request.CONNECT, {
    relay,
    secure: location.protocol === "https:",
  });
  document.body.dataset.probe = "ok";
  document.body.dataset.probeAnswer = connected.answer;
  show(connected.exists ? "locked" : "welcome", `relay ${connected.relay} reached`);
}

main().catch(fail);
