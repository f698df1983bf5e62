#!/usr/bin/env bash
# Wrapper for the peer benchmark harness (the team's peers harness, outside this repository): maps its environment to a
# gateway config and execs the release binary. Name it in TARGET_OURS_CMD by absolute path:
#
#   TARGET_OURS_CMD=/abs/path/to/bench/peer-target.sh ./run.sh
#
# Environment from the harness: PORT, BENCH_CACHE (1|0), CACHE_TTL_S, ORIGIN_URL, JWKS_URL,
# JWT_ISS, JWT_AUD, UPSTREAM_AUTHORIZATION ("Outseta key:secret").
# Optional: OURS_BIN (default: target/release/outseta-gateway beside this script),
# OURS_LOG (default "warn": warnings and errors, no access lines — like the peers, which run
# with nginx's access_log off and no HAProxy log target; "info" adds one access line per
# request, as in production).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${OURS_BIN:-$here/../target/release/outseta-gateway}
: "${PORT:?}" "${ORIGIN_URL:?}" "${JWKS_URL:?}" "${JWT_ISS:?}" "${JWT_AUD:?}" "${UPSTREAM_AUTHORIZATION:?}"
cache=off
if [ "${BENCH_CACHE:-0}" = 1 ]; then cache="${CACHE_TTL_S:-60}s"; fi

creds=${UPSTREAM_AUTHORIZATION#Outseta }
export OUTSETA_API_KEY=${creds%%:*}
export OUTSETA_API_SECRET=${creds#*:}

dir=$(mktemp -d)
cfg=$dir/gateway.toml
cat > "$cfg" <<TOML
[outseta]
upstream = "$ORIGIN_URL"
jwks_url = "$JWKS_URL"
issuer = "$JWT_ISS"
audience = "$JWT_AUD"

[server]
listen = "127.0.0.1:$PORT"
admin_listen = "127.0.0.1:0"

# The origin is not Outseta: the shared budget and the per-user limit must not shape the load.
[upstream_limit]
rate = "1000000/s"
burst = 1000000

[user_limit]
rate = "1000000/s"
burst = 1000000

[[rule]]
name = "read own person"
methods = ["GET"]
path = "/api/v1/crm/people/{uid}"
when = "path.uid == claims.sub"
cache = "$cache"
TOML

export RUST_LOG=${OURS_LOG:-warn}
exec "$bin" serve -c "$cfg" --log-format json
