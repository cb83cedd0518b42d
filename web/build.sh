#!/bin/sh
# Builds the browser device (and checks that the shared crates build for the browser) with
# the recipe of ../shared/wasm.md: Debian's rustc-web with -Zbuild-std, then wasm-bindgen.
#
#   web/build.sh [OUT_DIR]      (default: web/pkg)
#
# Needs (once, as root): apt-get install -y rustc-web cargo-web rust-web-src rust-web-llvm
# lld-22 chromium chromium-driver binaryen (binaryen's wasm-opt shrinks the module; without it
# the page is built unoptimized, with a warning; TIDINGS_WASM_OPT=0 skips it on purpose, for
# quicker builds while iterating). wasm-bindgen-cli 0.2.108 (the version in Cargo.lock) is
# installed into $WASM_TARGET_DIR/tools on first use.
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
out=${1:-$root/web/pkg}
export WASM_TARGET_DIR=${WASM_TARGET_DIR:-$root/target-wasm}
export CARGO_TARGET_DIR=$WASM_TARGET_DIR
# Debian's compiler, not rustup's (which has no wasm32 std here).
export PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
# Without reference types the module has one table: Debian's wasm-opt (binaryen 108) rewrites
# the export of wasm-bindgen's second (externref) table to point at the first, and the page
# then fails with "WebAssembly.Table.grow(): failed to grow table".
export CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUSTFLAGS="-C target-feature=-reference-types"
# No line tables in the module: the page cannot use them, and they made the module 44 MB for
# wasm-bindgen and wasm-opt to read (the workspace's release profile keeps them for natives).
export CARGO_PROFILE_RELEASE_DEBUG=false
tools=$WASM_TARGET_DIR/tools
if [ ! -x "$tools/bin/wasm-bindgen" ]; then
    # --debug: builds in half the time (102 s vs 195 s on 2 cores) and writes the same output
    # (4 s instead of 0.8 s per run on the 44 MB module).
    CARGO_TARGET_DIR=$WASM_TARGET_DIR/tools-build cargo install wasm-bindgen-cli \
        --version 0.2.108 --no-default-features --debug --root "$tools"
fi
cd "$root"
build="cargo build --release -Zbuild-std=std,panic_abort --target wasm32-unknown-unknown"
# The shared crates the browser device is made of (protocol without its redb `store`).
$build -p tidings-protocol -p tidings-keys
$build -p tidings-web
mkdir -p "$out"
"$tools/bin/wasm-bindgen" --target web --out-dir "$out" \
    "$WASM_TARGET_DIR/wasm32-unknown-unknown/release/tidings_web.wasm"
# wasm-opt -Oz: the features rustc's wasm32 target emits by default must be allowed.
if [ "${TIDINGS_WASM_OPT:-1}" = 0 ]; then
    echo "build.sh: TIDINGS_WASM_OPT=0: wasm-opt skipped" >&2
elif command -v wasm-opt >/dev/null; then
    wasm-opt -Oz --enable-bulk-memory --enable-mutable-globals --enable-sign-ext \
        --enable-nontrapping-float-to-int --enable-multivalue \
        -o "$out/tidings_web_bg.wasm.opt" "$out/tidings_web_bg.wasm"
    mv "$out/tidings_web_bg.wasm.opt" "$out/tidings_web_bg.wasm"
else
    echo "build.sh: wasm-opt not found (apt-get install binaryen): the wasm is not optimized" >&2
fi
cp "$root/web/static/"* "$out/"
ls -l "$out"
