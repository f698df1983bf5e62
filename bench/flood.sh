#!/usr/bin/env bash
# flood.sh [ARGS...]: the gateway's resident memory and CPU under floods of unique bad tokens,
# unique unsigned tokens, unique users, unique anonymous addresses and unique URLs
# (examples/flood.rs: one process per run, kinds in sequence). Prints a Markdown table: per
# kind, requests/s, status mix, gateway CPU µs per request and peak RSS against the bound
# 64 MiB + [cache] max_size + 20 KiB × connections.
#
#   bench/flood.sh                          # every kind, 15 s each
#   bench/flood.sh --kinds unsigned --seconds 30
#   bench/flood.sh --soak-minutes 30 --rate 1000 --conns 32 --depth 4   # the soak
#
# Pinning: the load generator (and the origin it serves) on CPU 0, the gateway on CPU 1, when
# the machine has two CPUs or more and taskset is present.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --release --bin outseta-gateway --example flood >&2
gateway="$root/target/release/outseta-gateway"
flood="$root/target/release/examples/flood"
if command -v taskset >/dev/null && [ "$(nproc)" -ge 2 ]; then
  wrapper=$(mktemp)
  trap 'rm -f "$wrapper"' EXIT
  printf '#!/bin/sh\nexec taskset -c 1 %q "$@"\n' "$gateway" > "$wrapper"
  chmod +x "$wrapper"
  taskset -c 0 "$flood" --gateway "$wrapper" "$@"
  exit
fi
exec "$flood" --gateway "$gateway" "$@"
