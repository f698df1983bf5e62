#!/usr/bin/env bash
# profile.sh TSV CACHE [SECONDS]: ours under `perf record -g` (dwarf) with the harness's load;
# read it with `perf report -i /tmp/ours.perf --no-children --sort sym`.
source "$(dirname "$0")/common.sh"
TSV=${1:-tokens/valid.tsv}; export BENCH_CACHE=${2:-0}; SECS=${3:-6}
origin_start
taskset -c 1 perf record -F 2000 -g --call-graph dwarf,16384 -o /tmp/ours.perf "$TARGET" > /tmp/ours.log 2>&1 &
wait_ours
taskset -c 0 wrk -t1 -c64 -d2s -s lib/tokens.lua "http://127.0.0.1:$PORT" -- "$TSV" > /dev/null
taskset -c 0 wrk -t1 -c64 -d"${SECS}s" -s lib/tokens.lua "http://127.0.0.1:$PORT" -- "$TSV" | grep 'Requests/sec'
kill -INT "$(ours_pid)"; sleep 2
origin_stop
