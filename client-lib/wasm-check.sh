#!/bin/sh
# Checks (or, with `build`, builds) the client library for the browser with the recipe of
# ../shared/wasm.md (Debian's rustc-web, -Zbuild-std), in its own target dir.
#
#   client-lib/wasm-check.sh [check|build|clippy] [cargo args...]
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
export CARGO_TARGET_DIR=${WASM_TARGET_DIR:-$root/target-wasm}
export PATH=/usr/bin:$PATH RUSTC=/usr/bin/rustc RUSTDOC=/usr/bin/rustdoc RUSTC_BOOTSTRAP=1
cmd=${1:-check}
[ $# -gt 0 ] && shift
cd "$root"
exec cargo "$cmd" -Zbuild-std=std,panic_abort --target wasm32-unknown-unknown \
    -p tidings-client --no-default-features "$@"
