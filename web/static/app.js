// The page: starts the device's Dedicated Worker and shows what it reports. The page holds
// no keys and no history; it asks the worker by typed messages (messages.js).
import { Event, Request, WorkerChannel } from "./messages.js";

const status = document.querySelector('[data-testid="status"]');

/** Shows the page's state (`body[data-state]`, which the scenario reads) and a status line. */
function show(state, text) {
  document.body.dataset.state = state;
  status.textContent = text;
}

/** The name of the relay that served the page (from `/tidings.json`). */
let relayName = "";

function onEvent(message) {
  if (message.event === Event.LINK) {
    if (message.state === "connected") {
      show("connected", `connected to ${relayName}`);
    } else {
      const state = message.state === "failed" ? "failed" : "offline";
      show(state, `${message.state}: ${message.detail}`);
    }
  } else if (message.event === Event.STATUS) {
    status.textContent = message.text;
  } else if (message.event === Event.FAILED) {
    show("failed", `failed: ${message.error}`);
  }
}

async function main() {
  const worker = new Worker(new URL("worker.js", import.meta.url), { type: "module" });
  const device = new WorkerChannel(worker, onEvent);
  const relay = await (await fetch("tidings.json")).json();
  relayName = String(relay.name);
  const connected = await device.request(Request.CONNECT, {
    relay,
    secure: location.protocol === "https:",
  });
  document.body.dataset.probe = "ok";
  document.body.dataset.probeAnswer = connected.answer;
}

main().catch((error) => show("failed", `failed: ${error.message || error}`));
