// The typed messages between the page (app.js) and the device's Dedicated Worker
// (worker.js): requests with an id and one reply each, and events the worker sends by itself.

/** Requests the page sends (`{id, type, ...}`); the worker replies `{id, ok, value | error}`. */
export const Request = Object.freeze({
  /**
   * `{relay, secure}` (`relay`: the served `/tidings.json`): probe the relay's WebSocket
   * address; replies `{relay, address, answer, exists}` (`exists`: a device is stored here).
   */
  CONNECT: "connect",
  /** `{passphrase}`: a new account, registered at the relay; replies `{user, card}`. */
  CREATE: "create",
  /** `{passphrase}`: open the stored device; replies `{user, card}`. */
  UNLOCK: "unlock",
  /** `{name, card}`: add a contact; replies the chats. */
  ADD_CONTACT: "add-contact",
  /** Replies the chats: contacts `{name, user}`, then groups `{name, group}`. */
  CHATS: "chats",
  /** `{who}` (a contact or group name): replies the conversation, `[message]` (oldest first). */
  HISTORY: "history",
  /** `{who, text}`: queue and send; replies the message. */
  SEND: "send",
  /** `{who}`: mark the conversation read; replies how many messages were marked. */
  MARK_READ: "mark-read",
  /**
   * `{relay}` (the account's home relay; empty: this page's): start linking this browser as
   * a device of an existing account; replies `{code}`, to approve on the account's device.
   */
  LINK_START: "link-start",
  /** `{passphrase}`: wait for the approval, save and register; replies `{user, card}`. */
  LINK_FINISH: "link-finish",
  /** Replies whether this browser holds a device. */
  EXISTS: "exists",
  /** `{name, members}` (contact names): create a group; replies the chats. */
  CREATE_GROUP: "create-group",
  /** `{group, members}` (contact names): add members to a group; replies the chats. */
  ADD_TO_GROUP: "add-to-group",
  /** `{who, sent}`: a key typed in the chat with `who` (`sent`: its line was sent); no reply value. */
  TYPING: "typing",
  /** Replies `{own, contacts: [{name, user, profile}]}` (profile: `{name, about, version}` or null). */
  PROFILES: "profiles",
  /** `{name, about}`: set our profile; replies it. */
  SET_PROFILE: "set-profile",
  /** `{text}`: post a text status to every contact for 24 hours; replies `{id, expiresAt, audience}`. */
  POST_STATUS: "post-status",
  /** Replies the statuses held: `{theirs: [status], mine: [status]}` (fetched first). */
  STATUSES: "statuses",
  /** `{query}`: search the history here; replies `[{id, chat, group, sender, sentAt, parts}]`. */
  SEARCH: "search",
  /**
   * `{who, file, transfer}` (`file`: a picked File): send it, with PROGRESS events under
   * `transfer`; replies the message.
   */
  SEND_FILE: "send-file",
  /**
   * `{message}` (its id): save a received media (PROGRESS events under that id); replies its OPFS path
   * (`tidings-device/media/saved/<blob id>`), which the page reads as a `File`.
   */
  SAVE_MEDIA: "save-media",
});

/** Events the worker sends unasked (`{event, ...}`). */
export const Event = Object.freeze({
  /** `{text}`: what the device is doing, for the status line. */
  STATUS: "status",
  /** `{state, detail}`: the session is `connecting`, `connected` or `disconnected`. */
  LINK: "link",
  /** `{message}`: a message arrived (already stored). */
  MESSAGE: "message",
  /** `{peer, id, status}`: one of our messages moved on (sent, delivered, read, failed). */
  TICK: "tick",
  /** `{group}`: a group was joined or changed (the chat list is due again). */
  GROUP: "group",
  /** `{user, state, lastSeen}`: a contact is `online`, `offline` (last seen, ms) or `hidden`. */
  PRESENCE: "presence",
  /** `{from, group, typing, expiresMs}`: someone started (or stopped) typing to us. */
  TYPING: "typing",
  /** `{user}`: a contact's profile changed (fetched already). */
  PROFILE: "profile",
  /** `{error}`: the worker could not start (the wasm did not load). */
  FAILED: "failed",
  /** `{id, done, total}`: a file going up (`id`: its transfer) or being saved (a message id). */
  PROGRESS: "progress",
});

/** Most requests the page keeps waiting for at once (a stuck worker cannot grow the map). */
const MAX_PENDING = 64;

/** Request/reply over a worker's `postMessage`, with events passed to `onEvent`. */
export class WorkerChannel {
  constructor(worker, onEvent) {
    this.worker = worker;
    this.nextId = 1;
    this.pending = new Map();
    worker.addEventListener("message", (message) => this.receive(message.data, onEvent));
    worker.addEventListener("error", (error) => {
      onEvent({ event: Event.FAILED, error: error.message || "the worker failed" });
    });
  }

  /** Sends `{type, ...fields}`; resolves with the reply's value, rejects with its error. */
  request(type, fields = {}) {
    if (this.pending.size >= MAX_PENDING) {
      return Promise.reject(new Error("too many requests waiting for the device"));
    }
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.worker.postMessage({ id, type, ...fields });
    });
  }

  receive(data, onEvent) {
    if (data && typeof data.id === "number") {
      const waiting = this.pending.get(data.id);
      if (!waiting) {
        return;
      }
      this.pending.delete(data.id);
      if (data.ok) {
        waiting.resolve(data.value);
      } else {
        waiting.reject(new Error(String(data.error)));
      }
    } else if (data && typeof data.event === "string") {
      onEvent(data);
    }
  }
}
