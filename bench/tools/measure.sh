#!/usr/bin/env bash
# measure.sh TSV CACHE [SECONDS]: req/s and CPU µs/request of ours alone (see common.sh).
# OURS_LOG and OURS_BIN pass through to peer-target.sh.
source "$(dirname "$0")/common.sh"
TSV=${1:-tokens/valid.tsv}; export BENCH_CACHE=${2:-0}; SECS=${3:-6}
origin_start
taskset -c 1 "$TARGET" > /tmp/ours.log 2>&1 &
wait_ours
taskset -c 0 wrk -t1 -c64 -d2s -s lib/tokens.lua "http://127.0.0.1:$PORT" -- "$TSV" > /dev/null
PID=$(ours_pid)
read -r U0 S0 < <(awk '{print $14, $15}' "/proc/$PID/stat")
RPS=$(taskset -c 0 wrk -t1 -c64 -d"${SECS}s" -s lib/tokens.lua "http://127.0.0.1:$PORT" -- "$TSV" | awk '/Requests\/sec/{print $2}')
read -r U1 S1 < <(awk '{print $14, $15}' "/proc/$PID/stat")
TICK=$(getconf CLK_TCK)
python3 -c "n=$RPS*$SECS; k=1e6/$TICK/n; print(f'req/s={$RPS:.0f} cpu_us_per_req={($U1-$U0+$S1-$S0)*k:.1f} user={($U1-$U0)*k:.1f} sys={($S1-$S0)*k:.1f}')"
kill -INT "$PID"; sleep 1
origin_stop
