#!/usr/bin/env bash
# Wall time and peak memory of `lakerec generate` then `lakerec textualize` on a synthetic
# warehouse of USERS users (default 100000), in a warehouse of its own under $LAKEREC_HOME.
# Usage: bench/generate_textualize.sh [USERS] [ITEMS]
set -euo pipefail
cd "$(dirname "$0")/.."
users=${1:-100000}
items=${2:-$((users / 5))}
venv=$(./scripts/env.sh)
home=${LAKEREC_HOME:-$HOME/.cache/lakerec}
root="$home/bench-warehouse-$users"
rm -rf "$root"
out=bench/results/generate_textualize.md
mkdir -p bench/results
common=(--set "warehouse_root=$root" --run-date 2026-01-01)
{
  echo
  echo "### $(date -u +%F) users=$users items=$items on $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
  echo '```'
  bench/peak_rss.sh "$venv/bin/lakerec" generate --users "$users" --items "$items" --seed 1 "${common[@]}" 2>&1 | grep -E 'succeeded|failed|wall_s'
  bench/peak_rss.sh "$venv/bin/lakerec" textualize "${common[@]}" 2>&1 | grep -E 'succeeded|failed|wall_s'
  echo '```'
} | tee -a "$out"
rm -rf "$root"
