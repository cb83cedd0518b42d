// The browser device's Dedicated Worker: loads the wasm and answers the page's typed
// requests (messages.js). Keys, history and the relay session live here, not in the page.
import init, { Device, probeRelay } from "./tidings_web.js";
import { Event, Request } from "./messages.js";

const ready = init();

/** The relay's WebSocket address (from CONNECT), where a new account registers. */
let relayAddress = null;
/** The open device, once created or unlocked. */
let device = null;
/** A link started from the page, waiting for its approval (account.js). */
let pendingLink = null;

/** The WebSocket address of `relay` (`/tidings.json`) fitting this page's scheme. */
function webSocketAddress(relay, secure) {
  const pattern = secure ? /\/(tls\/ws|wss)\/p2p\// : /\/ws\/p2p\//;
  const address = (relay.addresses || []).find((a) => typeof a === "string" && pattern.test(a));
  if (!address) {
    throw new Error("the relay announces no WebSocket address");
  }
  return address;
}

/** Passes the device's events (JSON text) on to the page. */
function onDeviceEvent(text) {
  const event = JSON.parse(text);
  if (event.kind === "link") {
    self.postMessage({ event: Event.LINK, state: event.state, detail: event.detail });
  } else if (event.kind === "message") {
    self.postMessage({ event: Event.MESSAGE, message: event.message });
  } else if (event.kind === "status") {
    self.postMessage({ event: Event.TICK, peer: event.peer, id: event.id, status: event.status });
  } else if (event.kind === "group") {
    self.postMessage({ event: Event.GROUP, group: event.group });
  } else if (event.kind === "synced") {
    // Contacts or history from another device of this account: the chat list is due again.
    self.postMessage({ event: Event.GROUP, group: null });
  } else if ([Event.PRESENCE, Event.TYPING, Event.PROFILE].includes(event.kind)) {
    const { kind, ...fields } = event;
    self.postMessage({ event: kind, ...fields });
  }
}

/** Starts the opened device's session and describes it for the page. */
function opened(newDevice) {
  device = newDevice;
  device.start(onDeviceEvent);
  return { user: device.userId(), card: device.card() };
}

function openDevice() {
  if (!device) {
    throw new Error("no device is open");
  }
  return device;
}

const handlers = {
  async [Request.CONNECT]({ relay, secure }) {
    relayAddress = webSocketAddress(relay, secure);
    self.postMessage({ event: Event.STATUS, text: `dialing ${relayAddress}` });
    const answer = await probeRelay(relayAddress);
    return { relay: String(relay.name), address: relayAddress, answer, exists: await Device.exists() };
  },
  async [Request.CREATE]({ passphrase }) {
    if (device || !relayAddress) {
      throw new Error("connect first, with no device open");
    }
    return opened(await Device.create(String(passphrase), relayAddress));
  },
  async [Request.UNLOCK]({ passphrase }) {
    if (device) {
      throw new Error("the device is already open");
    }
    return opened(await Device.unlockRegistered(String(passphrase), relayAddress || ""));
  },
  async [Request.ADD_CONTACT]({ name, card }) {
    openDevice().addContact(String(name), String(card));
    return JSON.parse(openDevice().chats());
  },
  async [Request.CHATS]() {
    return JSON.parse(openDevice().chats());
  },
  async [Request.HISTORY]({ who }) {
    return JSON.parse(openDevice().history(String(who)));
  },
  async [Request.SEND]({ who, text }) {
    return JSON.parse(await openDevice().send(String(who), String(text)));
  },
  async [Request.MARK_READ]({ who }) {
    return await openDevice().markRead(String(who));
  },
  async [Request.LINK_START]({ relay }) {
    if (device || pendingLink || !relayAddress) {
      throw new Error("connect first, with no device open and no link waiting");
    }
    pendingLink = await Device.startLink(String(relay || relayAddress));
    return { code: pendingLink.code() };
  },
  async [Request.LINK_FINISH]({ passphrase }) {
    const link = pendingLink;
    pendingLink = null;
    if (!link || device) {
      throw new Error("start a link first");
    }
    return opened(await link.finish(String(passphrase)));
  },
  async [Request.EXISTS]() {
    return await Device.exists();
  },
  async [Request.CREATE_GROUP]({ name, members }) {
    const names = JSON.stringify(Array.from(members || [], String));
    return JSON.parse(await openDevice().createGroup(String(name), names));
  },
  async [Request.ADD_TO_GROUP]({ group, members }) {
    const names = JSON.stringify(Array.from(members || [], String));
    return JSON.parse(await openDevice().addToGroup(String(group), names));
  },
  async [Request.TYPING]({ who, sent }) {
    if (sent) {
      openDevice().typingSent(String(who));
    } else {
      openDevice().typing(String(who));
    }
    return null;
  },
  async [Request.PROFILES]() {
    return JSON.parse(openDevice().profiles());
  },
  async [Request.SET_PROFILE]({ name, about }) {
    return JSON.parse(await openDevice().setProfile(String(name), String(about)));
  },
  async [Request.POST_STATUS]({ text }) {
    return JSON.parse(await openDevice().postStatus(String(text)));
  },
  async [Request.STATUSES]() {
    return JSON.parse(await openDevice().statuses());
  },
  async [Request.SEARCH]({ query }) {
    return JSON.parse(openDevice().search(String(query)));
  },
  async [Request.SEND_FILE]({ who, file, transfer }) {
    if (!(file instanceof Blob)) {
      throw new Error("no file to send");
    }
    const name = String(file.name || "file");
    return JSON.parse(await openDevice().sendFile(String(who), file, name, String(transfer), onProgress));
  },
  async [Request.SAVE_MEDIA]({ message }) {
    return await openDevice().saveMedia(String(message), onProgress);
  },
};

self.addEventListener("message", async ({ data }) => {
  const { id, type } = data || {};
  try {
    await ready;
    const handler = handlers[type];
    if (!handler) {
      throw new Error(`unknown request ${type}`);
    }
    self.postMessage({ id, ok: true, value: await handler(data) });
  } catch (error) {
    self.postMessage({ id, ok: false, error: String(error && error.message || error) });
  }
});

/** Passes a transfer's progress (JSON text from the device) on to the page. */
function onProgress(text) {
  const { id, done, total } = JSON.parse(text);
  self.postMessage({ event: Event.PROGRESS, id, done, total });
}

ready.catch((error) => self.postMessage({ event: Event.FAILED, error: String(error) }));
