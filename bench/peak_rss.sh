#!/usr/bin/env bash
# Resident memory of a long command, sampled every 10 s (RL and SFT runs on CPU), and its peak.
#   bash bench/peak_rss.sh LOG -- python -m trainer rl ...
# LOG gets "HH:MM:SS rss_kB" lines; the last line on stderr is "peak MB: N". Sampling every 10 s
# can miss a shorter spike, so the peak is a lower bound.
set -uo pipefail
if [ $# -lt 3 ] || [ "$2" != "--" ]; then
  echo "usage: bash bench/peak_rss.sh LOG -- COMMAND..." >&2
  exit 2
fi
log=$1; shift 2
: > "$log"
"$@" &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  echo "$(date +%T) $(ps -o rss= -p "$pid")" >> "$log"
  sleep 10
done
wait "$pid"; status=$?
echo "peak MB: $(awk '$2 {print int($2/1024)}' "$log" | sort -n | tail -1)" >&2
exit "$status"
