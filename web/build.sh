#!/bin/sh
# Builds the browser device (and checks that the shared crates build for the browser) with
# the recipe of ../shared/wasm.md: Debian's rustc-web with -Zbuild-std, then wasm-bindgen.
#
#   web/build.sh [OUT_DIR]      (default: web/pkg)
#
# Needs (once, as root): apt-get install -y rustc-web cargo-web rust-web-src rust-web-llvm
# lld-22 chromium chromium-driver. wasm-bindgen-cli 0.2.108 (the version in Cargo.lock) is
# installed into $WASM_TARGET_DIR/tools on first use.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/web/pkg}
export WASM_TARGET_DIR=${WASM_TARGET_DIR:-$root/target-wasm}
export CARGO_TARGET_DIR=$WASM_TARGET_DIR
# Debian's compiler, not rustup's (which has no wasm32 std here).
export PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
tools=$WASM_TARGET_DIR/tools
if [ ! -x "$tools/bin/wasm-bindgen" ]; then
    CARGO_TARGET_DIR=$WASM_TARGET_DIR/tools-build cargo install wasm-bindgen-cli \
        --version 0.2.108 --no-default-features --root "$tools"
fi
cd "$root"
build="cargo build --release -Zbuild-std=std,panic_abort --target wasm32-unknown-unknown"
# The shared crates the browser device is made of (protocol without its redb `store`).
$build -p tidings-protocol -p tidings-keys
$build -p tidings-web
mkdir -p "$out"
"$tools/bin/wasm-bindgen" --target web --out-dir "$out" \
    "$WASM_TARGET_DIR/wasm32-unknown-unknown/release/tidings_web.wasm"
cp "$root/web/static/"* "$out/"
ls -l "$out"
