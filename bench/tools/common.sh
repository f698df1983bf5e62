# Shared by measure.sh, profile.sh and callgrind.sh: ours alone behind the peer harness's origin,
# with the harness's pinning (load generator on CPU 0, ours and the origin on CPU 1).
# PEERS_DIR: a writable copy of the peer benchmark harness (not part of this repository)
# after one `./run.sh` (it writes run/origin.conf and tokens/). TSV: tokens/valid.tsv (S1/S2) or tokens/bad.tsv (S3).
# CACHE: 1 (S1) or 0 (S2/S3).
set -u
: "${PEERS_DIR:?set PEERS_DIR to a writable copy of the peer harness that has run once}"
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
TARGET="$here/../peer-target.sh"
cd "$PEERS_DIR"
[ -f run/origin.conf ] || { echo "no run/origin.conf: run ./run.sh in $PEERS_DIR once" >&2; exit 1; }
export PORT=18402 CACHE_TTL_S=60 ORIGIN_URL=http://127.0.0.1:18080 \
  JWKS_URL=http://127.0.0.1:18080/.well-known/jwks JWT_ISS=https://demo.outseta.com \
  JWT_AUD=demo.outseta.com UPSTREAM_AUTHORIZATION="Outseta demokey:demosecret"
origin_start() { nginx -c "$PWD/run/origin.conf" -p "$PWD/run/" 2>/dev/null & sleep 0.5; }
origin_stop() { nginx -c "$PWD/run/origin.conf" -p "$PWD/run/" -s stop 2>/dev/null; }
ours_pid() { pgrep -f "serve -c /tmp" | head -1; }
wait_ours() {
  for _ in $(seq 1 200); do curl -s -o /dev/null "http://127.0.0.1:$PORT/" && return 0; sleep 0.3; done
  echo "ours did not start" >&2; return 1
}
