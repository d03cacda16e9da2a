"""Shared pieces of the LakeRec DAGs: every Spark step is `spark-submit jobs/cli.py <job> --run-date
{{ ds }}` through the standard SparkSubmitOperator (connection `spark_default` says where the cluster
is), so a run of the DAG for a logical date - scheduled, retried or backfilled - processes that date.

Deployment settings come from environment variables of the Airflow workers:
  LAKEREC_APP   path of LakeRec's jobs/cli.py as the cluster's driver sees it
  LAKEREC_CONF  LakeRec configuration file (tables, bundles, Spark settings; see conf/cluster-gpu.yaml)
  LAKEREC_BIN   the `lakerec` command on the Airflow worker, for steps without Spark (export, promote)
"""
from __future__ import annotations

import datetime as dt
import os

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.bash import BashOperator

LAKEREC_APP = os.environ.get("LAKEREC_APP", "/opt/lakerec/jobs/cli.py")
LAKEREC_CONF = os.environ.get("LAKEREC_CONF", "/opt/lakerec/conf/local.yaml")
LAKEREC_BIN = os.environ.get("LAKEREC_BIN", "lakerec")
DEFAULT_ARGS = {"owner": "lakerec", "retries": 2, "retry_delay": dt.timedelta(minutes=10)}
START = dt.datetime(2026, 1, 1)


def spark_job(task_id: str, *args: str, **overrides) -> SparkSubmitOperator:
    """One LakeRec Spark job for the DAG run's logical date."""
    sets = [x for key, value in overrides.items() for x in ("--set", f"{key}={value}")]
    return SparkSubmitOperator(
        task_id=task_id, application=LAKEREC_APP, name=f"lakerec-{task_id}-{{{{ ds }}}}", conn_id="spark_default",
        application_args=[*args, "--run-date", "{{ ds }}", "--conf", LAKEREC_CONF, *sets],
        env_vars={"HF_HUB_OFFLINE": "1"})


def cli_step(task_id: str, command: str) -> BashOperator:
    """A LakeRec step that needs no Spark (model registry and export)."""
    return BashOperator(task_id=task_id, bash_command=f"{LAKEREC_BIN} {command} --conf {LAKEREC_CONF}",
                        env={"HF_HUB_OFFLINE": "1"}, append_env=True)
