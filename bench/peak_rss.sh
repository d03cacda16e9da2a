#!/usr/bin/env bash
# Usage: bench/peak_rss.sh COMMAND...  -- runs COMMAND in its own process group and prints its
# wall time and the peak total RSS of the whole group (Python driver + JVM + Python workers).
set -u
start=$(date +%s.%N)
setsid "$@" &
pid=$!
peak=0
while kill -0 "$pid" 2>/dev/null; do
  rss=$(ps -o rss= -g "$pid" 2>/dev/null | awk '{s+=$1} END {print s+0}')
  [ "$rss" -gt "$peak" ] && peak=$rss
  sleep 1
done
wait "$pid"; rc=$?
end=$(date +%s.%N)
printf 'wall_s=%.1f peak_rss_mib=%d rc=%d cmd=%s\n' "$(echo "$end - $start" | bc)" "$((peak / 1024))" "$rc" "$*" >&2
exit $rc
