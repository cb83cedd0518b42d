#!/bin/sh
# Runs the client library's browser tests (client-lib/tests/browser.rs: redb on OPFS, the
# injected clock and timers) in Debian's headless Chromium, in a Dedicated Worker, through
# chromedriver and wasm-bindgen-test-runner (the recipe of ../shared/wasm.md).
#
#   client-lib/test-in-chromium.sh [test name filter]
#
# Needs (once, as root): apt-get install -y rustc-web cargo-web rust-web-src rust-web-llvm
# lld-22 chromium chromium-driver. Installs nothing globally: wasm-bindgen-cli 0.2.108 (the
# version in Cargo.lock) goes into $WASM_TARGET_DIR/tools on first use (~2 min).
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
export WASM_TARGET_DIR=${WASM_TARGET_DIR:-$root/target-wasm}
export CARGO_TARGET_DIR=$WASM_TARGET_DIR
# Debian's compiler, not rustup's (which has no wasm32 std here).
export PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
tools=$WASM_TARGET_DIR/tools
if [ ! -x "$tools/bin/wasm-bindgen-test-runner" ]; then
    # --debug: builds in half the time (102 s vs 195 s on 2 cores) and writes the same output
    # (4 s instead of 0.8 s per run on the 44 MB module).
    CARGO_TARGET_DIR=$WASM_TARGET_DIR/tools-build cargo install wasm-bindgen-cli \
        --version 0.2.108 --no-default-features --debug --root "$tools"
fi
mkdir -p "$WASM_TARGET_DIR"
webdriver=$WASM_TARGET_DIR/webdriver.json
cat > "$webdriver" <<'JSON'
{"goog:chromeOptions":{"binary":"/usr/bin/chromium","args":["--headless=new","--no-sandbox","--disable-gpu","--disable-dev-shm-usage"]}}
JSON
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=$tools/bin/wasm-bindgen-test-runner
export CHROMEDRIVER=${CHROMEDRIVER:-/usr/bin/chromedriver}
export WASM_BINDGEN_TEST_WEBDRIVER_JSON=$webdriver
export WASM_BINDGEN_TEST_TIMEOUT=${WASM_BINDGEN_TEST_TIMEOUT:-120}
cd "$root"
start=$(date +%s)
cargo test -Zbuild-std=std,panic_abort --target wasm32-unknown-unknown \
    -p tidings-client --no-default-features --test browser -- "$@"
echo "browser tests: $(( $(date +%s) - start )) s (build included)"
