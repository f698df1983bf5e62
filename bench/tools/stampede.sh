#!/usr/bin/env bash
# stampede.sh [ROUNDS=5] [N=500]: the peer harness's S4 (N identical requests for one cold URL
# that the origin answers after 200 ms), timed by a low-overhead client (examples/stampede.rs)
# and, in the same round, by the harness's own Python client. Per round, interleaved:
#   origin direct (Rust client), origin direct (harness client),
#   ours fresh (Rust client), ours fresh (harness client)
# "ours fresh" is a new process with a cold cache, as in the harness. Prints one line per run:
# p50/p99 ms and, for ours, the origin hits for the stampede URL during that run.
# Pinning as the harness: clients on CPU 0, ours and the origin on CPU 1. See common.sh.
source "$(dirname "$0")/common.sh"
ROUNDS=${1:-5}; N=${2:-500}
CLIENT=${STAMPEDE_BIN:-$here/../../target/release/examples/stampede}
[ -x "$CLIENT" ] || { echo "build it: cargo build --release --example stampede" >&2; exit 1; }
export BENCH_CACHE=1
SLOT=4
UID_=$(python3 -c "import json; print(json.load(open('tokens/targets.json'))['targets'][$SLOT]['stampede_uid'])")
TOKEN=$(python3 -c "import json; print(json.load(open('tokens/targets.json'))['targets'][$SLOT]['tokens']['stampede'])")
KEY=$(python3 -c "import json; print(json.load(open('tokens/targets.json'))['server_key'])")
URL_PATH=/api/v1/crm/people/$UID_
hits() { grep -c "$UID_" run/origin-access.log 2>/dev/null || echo 0; }
rust() { taskset -c 0 "$CLIENT" "127.0.0.1:$1" "$URL_PATH" "$2" "$N"; }
python() {
  local direct=${3:-}
  rm -f /tmp/stampede-py.jsonl
  taskset -c 0 python3 lib/bench.py stampede --target x --port "$1" --slot "$SLOT" -n "$N" \
    $direct --origin-log run/origin-access.log --out /tmp/stampede-py.jsonl > /dev/null 2>&1
  python3 -c "import json; r=json.loads(open('/tmp/stampede-py.jsonl').readlines()[-1]); \
print(json.dumps({k: r.get(k) for k in ('status_counts','p50_ms','p99_ms')}))"
}
fresh_ours() { taskset -c 1 "$TARGET" > /tmp/ours-stampede.log 2>&1 & wait_ours; }
stop_ours() { kill -INT "$(ours_pid)"; sleep 1; }

origin_start
for r in $(seq 1 "$ROUNDS"); do
  echo "round $r origin-direct rust $(rust 18080 "$KEY")"
  echo "round $r origin-direct python $(python 18080 "" --direct)"
  for client in rust python; do
    fresh_ours
    h0=$(hits)
    if [ $client = rust ]; then out=$(rust "$PORT" "bearer $TOKEN"); else out=$(python "$PORT"); fi
    sleep 0.5
    echo "round $r ours $client $out origin_hits=$(( $(hits) - h0 ))"
    stop_ours
  done
done
origin_stop
