#!/usr/bin/env bash
# Load airflow/dags with real Airflow (DagBag) and fail on any import error or a changed task graph.
# Airflow's own environment comes from scripts/airflow_env.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=$(./scripts/airflow_env.sh)
home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
AIRFLOW_HOME="$home" AIRFLOW__CORE__LOAD_EXAMPLES=False PYTHONPATH=airflow/dags \
  "$venv/bin/python" scripts/check_dags.py airflow/dags
