#!/usr/bin/env bash
# Idempotent set-up for LakeRec on a fresh machine; prints the virtual environment's path.
#   1. a virtual environment OUTSIDE the clone, keyed by the hash of constraints.txt
#      (and the Python version), so CI and later runs on this machine reuse it;
#   2. the package installed into it in editable mode (re-done only when pyproject or the clone changes);
#   3. Delta Lake's jars fetched from Maven Central into a local folder (`python -m lakerec.jars fetch`).
# Everything lands under $LAKEREC_HOME (default ~/.cache/lakerec). Progress goes to stderr.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
home=${LAKEREC_HOME:-$HOME/.cache/lakerec}
python=${LAKEREC_PYTHON:-python3}
extras=${LAKEREC_EXTRAS:-cpu,train,test}   # gpu instead of cpu on CUDA executors (pyproject.toml)

pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key=$( { cat "$repo/constraints.txt"; echo "py$pyver extras=$extras"; } | sha256sum | cut -c1-12)
venv="$home/venvs/$key"
log() { echo "[lakerec setup] $*" >&2; }

if [ ! -f "$venv/.complete" ]; then
  log "building virtual environment $venv (first run only; several minutes)"
  rm -rf "$venv"
  mkdir -p "$home/venvs"
  "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  # Install the pinned dependency set, then mark the environment complete.
  "$venv/bin/python" -m pip install -q -c "$repo/constraints.txt" "setuptools" >&2
  "$venv/bin/python" -m pip install -q -c "$repo/constraints.txt" -e "$repo[$extras]" >&2
  touch "$venv/.complete"
fi

# Editable install of *this* clone (cheap); redone when the clone or pyproject.toml changes.
stamp="$repo $(sha256sum "$repo/pyproject.toml" | cut -c1-16)"
if [ "$(cat "$venv/.lakerec-src" 2>/dev/null)" != "$stamp" ]; then
  log "installing lakerec from $repo into $venv"
  "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e "$repo" >&2
  echo "$stamp" > "$venv/.lakerec-src"
fi

LAKEREC_HOME="$home" "$venv/bin/python" -m lakerec.jars fetch >&2
echo "$venv"
