#!/usr/bin/env bash
# Idempotent set-up of the Airflow environment the DAG tests use; prints its path. Airflow lives in a
# virtual environment of its own, keyed by a hash of airflow/requirements.txt and built on first use,
# so Airflow's pins never touch LakeRec's environment (as on a real deployment, where the Airflow
# workers call LakeRec through `lakerec` and `spark-submit`; docs/airflow.md).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
key=$(sha256sum "$repo/airflow/requirements.txt" | cut -c1-12)
venv="${LAKEREC_HOME:-$HOME/.cache/lakerec}/venvs/airflow-$key"
if [ ! -f "$venv/.complete" ]; then            # built whole or rebuilt
  echo "[lakerec setup] building the Airflow environment $venv (once)" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$repo/airflow/requirements.txt" >&2
  touch "$venv/.complete"
fi
echo "$venv"
