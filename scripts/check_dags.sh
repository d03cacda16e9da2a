#!/usr/bin/env bash
# Load airflow/dags with real Airflow (DagBag) and fail on any import error or a changed task graph.
# Airflow lives in a virtual environment of its own, keyed by a hash of airflow/requirements.txt and
# built on first use, so Airflow's pins never touch LakeRec's environment.
set -euo pipefail
cd "$(dirname "$0")/.."
key=$(sha256sum airflow/requirements.txt | cut -c1-12)
venv="${LAKEREC_VENVS:-$HOME/.cache/lakerec/venvs}/airflow-$key"
if [ ! -f "$venv/.complete" ]; then            # built whole or rebuilt
  echo "building the Airflow check environment $venv (once)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r airflow/requirements.txt
  touch "$venv/.complete"
fi
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
AIRFLOW_HOME="$home" AIRFLOW__CORE__LOAD_EXAMPLES=False PYTHONPATH=airflow/dags \
  "$venv/bin/python" scripts/check_dags.py airflow/dags
