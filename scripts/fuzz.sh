#!/usr/bin/env bash
# Fuzz event decoding for a bounded time (default 60 s): scripts/fuzz.sh [SECONDS]
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and nightly compiler flags: a nightly toolchain,
# or RUSTC_BOOTSTRAP=1 on stable (what this script uses when no nightly is installed).
# The committed seed corpus (fuzz/corpus/decode_event) is read; new inputs land in the ignored
# fuzz/corpus-found/, crashes in fuzz/artifacts/. Copy a crash into the seeds once it is fixed.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
if ! cargo fuzz --help >/dev/null 2>&1; then
  echo "cargo-fuzz is missing: install it with 'cargo install cargo-fuzz'" >&2
  exit 2
fi
toolchain=()
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
  toolchain=(+nightly)
else
  export RUSTC_BOOTSTRAP=1
fi
mkdir -p corpus-found
cargo "${toolchain[@]}" fuzz run decode_event corpus-found corpus/decode_event -- -max_total_time="$seconds" -rss_limit_mb=2048
