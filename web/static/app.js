// Loads the wasm device, reads the relay's addresses from /tidings.json and probes the
// first WebSocket one: the relay's answer to one client-protocol request is shown.
import init, { probeRelay } from "./tidings_web.js";

const status = document.getElementById("status");

async function main() {
  await init();
  const relay = await (await fetch("tidings.json")).json();
  const secure = location.protocol === "https:";
  const address = relay.addresses.find((a) =>
    secure ? /\/(tls\/ws|wss)\/p2p\//.test(a) : /\/ws\/p2p\//.test(a));
  if (!address) {
    throw new Error("the relay announces no WebSocket address");
  }
  status.textContent = `dialing ${address}`;
  const answer = await probeRelay(address);
  status.textContent = `connected to ${relay.name}: ${answer}`;
  document.body.dataset.probe = "ok";
}

main().catch((error) => {
  status.textContent = `failed: ${error}`;
  document.body.dataset.probe = "failed";
});
