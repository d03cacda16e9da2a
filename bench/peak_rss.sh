#!/usr/bin/env bash
# Usage: bench/peak_rss.sh COMMAND...  -- runs COMMAND in a session of its own and prints its wall
# time, the peak total RSS of the session (Python driver + JVM + Python workers, which pyspark.daemon
# puts in a process group of their own) and the peak RSS
# of the largest single Spark Python worker (a pyspark.daemon process or a worker forked from it).
set -u
start=$(date +%s.%N)
setsid "$@" &
pid=$!
peak=0
worker=0
while kill -0 "$pid" 2>/dev/null; do
  read -r total largest < <(ps -o rss=,args= --sid "$pid" 2>/dev/null |
    awk '{s+=$1} $2 ~ /python/ && /-m pyspark\.(daemon|worker)/ {if ($1>w) w=$1} END {print s+0, w+0}')
  [ "${total:-0}" -gt "$peak" ] && peak=$total
  [ "${largest:-0}" -gt "$worker" ] && worker=$largest
  sleep 1
done
wait "$pid"; rc=$?
end=$(date +%s.%N)
printf 'wall_s=%.1f peak_rss_mib=%d worker_peak_rss_mib=%d rc=%d cmd=%s\n' "$(echo "$end - $start" | bc)" \
  "$((peak / 1024))" "$((worker / 1024))" "$rc" "$*" >&2
exit $rc
