// The typed messages between the page (app.js) and the device's Dedicated Worker
// (worker.js): requests with an id and one reply each, and events the worker sends by itself.

/** Requests the page sends (`{id, type, ...}`); the worker replies `{id, ok, value | error}`. */
export const Request = Object.freeze({
  /**
   * `{relay, secure}` (`relay`: the served `/tidings.json`): probe the relay's WebSocket
   * address once, then keep a link to it (its changes come as `LINK` events).
   */
  CONNECT: "connect",
});

/** Events the worker sends unasked (`{event, ...}`). */
export const Event = Object.freeze({
  /** `{text}`: what the device is doing, for the status line. */
  STATUS: "status",
  /** `{state, detail}`: the relay link is `connecting`, `connected`, `disconnected` or `failed`. */
  LINK: "link",
  /** `{error}`: the worker could not start (the wasm did not load). */
  FAILED: "failed",
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
