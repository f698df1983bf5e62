#!/usr/bin/env bash
# callgrind.sh TSV CACHE N: user-space instructions of ours for N sequential requests.
# Per-request cost in the steady state: (Ir at N=3500 − Ir at N=1500) / 2000.
source "$(dirname "$0")/common.sh"
TSV=${1:-tokens/valid.tsv}; export BENCH_CACHE=${2:-0}; N=${3:-3500}
bin=${OURS_BIN:-$here/../../target/release/outseta-gateway}
wrapper=$(mktemp)
printf '#!/bin/sh\nexec valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.out "%s" "$@"\n' "$bin" > "$wrapper"
chmod +x "$wrapper"
rm -f /tmp/cg.out*
origin_start
OURS_BIN=$wrapper "$TARGET" > /tmp/cg.log 2>&1 &
wait_ours
python3 - "$TSV" "$N" "$PORT" <<'PY'
import sys, http.client
tsv, n, port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rows = [l.rstrip("\n").split("\t") for l in open(tsv)]
c = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    p, a = rows[i % len(rows)]
    c.request("GET", p, headers={"Authorization": a})
    r = c.getresponse(); r.read()
PY
kill -INT "$(pgrep -f 'valgrind.*serve -c' | head -1)"; sleep 3
origin_stop
rm -f "$wrapper"
callgrind_annotate /tmp/cg.out* 2>/dev/null | grep 'PROGRAM TOTALS'
