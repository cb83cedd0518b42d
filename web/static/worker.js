// The browser device's Dedicated Worker: loads the wasm and answers the page's typed
// requests (messages.js). Keys, history and the relay connection live here, not in the page.
import init, { probeRelay, RelayLink } from "./tidings_web.js";
import { Event, Request } from "./messages.js";

const ready = init();

/** The link to the home relay, once connected (one per worker). */
let link = null;

/** The WebSocket address of `relay` (`/tidings.json`) fitting this page's scheme. */
function webSocketAddress(relay, secure) {
  const pattern = secure ? /\/(tls\/ws|wss)\/p2p\// : /\/ws\/p2p\//;
  const address = (relay.addresses || []).find((a) => typeof a === "string" && pattern.test(a));
  if (!address) {
    throw new Error("the relay announces no WebSocket address");
  }
  return address;
}

const handlers = {
  async [Request.CONNECT]({ relay, secure }) {
    const address = webSocketAddress(relay, secure);
    self.postMessage({ event: Event.STATUS, text: `dialing ${address}` });
    const answer = await probeRelay(address);
    if (link) {
      link.close();
    }
    link = new RelayLink(address, (state, detail) => {
      self.postMessage({ event: Event.LINK, state, detail });
    });
    return { relay: String(relay.name), address, answer };
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

ready.catch((error) => self.postMessage({ event: Event.FAILED, error: String(error) }));
