#!/bin/sh
# End-to-end check of the browser path, by hand (not in .ci/run yet): a relay on loopback
# with TCP and /ws that serves web/pkg (run web/build.sh first), Debian's headless Chromium
# driven through chromedriver's WebDriver API with curl, and the page's probe of the relay.
# Prints the relay's answer as the page shows it; exits 1 if the page reports no success.
#
#   web/check-in-chromium.sh        (RELAY=path/to/tidings-relay, default target/debug's)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
relay=${RELAY:-$root/target/debug/tidings-relay}
work=$(mktemp -d)
web_port=${WEB_PORT:-18717}
driver_port=${DRIVER_PORT:-19515}
pids=""
cleanup() { for pid in $pids; do kill "$pid" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

"$relay" init --data-dir "$work/relay" --listen /ip4/127.0.0.1/tcp/0 \
    --listen /ip4/127.0.0.1/tcp/0/ws >/dev/null
sed -i "s|^listen = \"\"$|listen = \"127.0.0.1:$web_port\"|; s|^dir = \"web\"$|dir = \"$root/web/pkg\"|" \
    "$work/relay/relay.toml"
"$relay" run --data-dir "$work/relay" >"$work/relay.log" 2>&1 &
pids="$pids $!"
chromedriver --port="$driver_port" >"$work/driver.log" 2>&1 &
pids="$pids $!"
sleep 3

api=http://127.0.0.1:$driver_port
session=$(curl -sf -X POST "$api/session" -H 'content-type: application/json' -d '{"capabilities":
  {"alwaysMatch":{"goog:chromeOptions":{"binary":"/usr/bin/chromium",
  "args":["--headless","--no-sandbox","--disable-gpu","--disable-dev-shm-usage"]}}}}' |
    sed 's/.*"sessionId":"\([^"]*\)".*/\1/')
curl -sf -X POST "$api/session/$session/url" -H 'content-type: application/json' \
    -d "{\"url\":\"http://127.0.0.1:$web_port/\"}" >/dev/null
result=""
for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15; do
    sleep 2
    result=$(curl -sf -X POST "$api/session/$session/execute/sync" \
        -H 'content-type: application/json' -d '{"script":
        "return (document.body.dataset.probe || \"\") + \" \" + document.getElementById(\"status\").textContent",
        "args":[]}')
    case $result in *'"ok '*|*'"failed '*) break ;; esac
done
curl -sf -X DELETE "$api/session/$session" >/dev/null || true
echo "$result"
case $result in *'"ok '*) exit 0 ;; *) exit 1 ;; esac
