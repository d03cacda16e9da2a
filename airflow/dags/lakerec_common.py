"""Shared pieces of the LakeRec DAGs: every Spark step is `spark-submit jobs/cli.py <job> --run-date
{{ ds }}` through the standard SparkSubmitOperator (connection `spark_default` says where the cluster
is), so a run of the DAG for a logical date - scheduled, retried or backfilled - processes that date.

What spark-submit needs besides the master (the Delta jars, the catalog and warehouse, the Python
environment of the driver and executors, memory) is not written here: at run time each Spark task
asks `lakerec submit-args --json` on the worker, which builds it from the same configuration file
the job reads (jobs/submit.py), so the DAG and the CLI cannot drift. See docs/airflow.md.

Deployment settings come from environment variables of the Airflow workers:
  LAKEREC_CONF   LakeRec configuration file (tables, bundles, Spark settings; see conf/cluster-gpu.yaml)
  LAKEREC_BIN    the `lakerec` command on the Airflow worker (submit arguments, export, promote)
  LAKEREC_APP    optional: jobs/cli.py as the cluster's driver sees it (default: the one `lakerec`
                 runs, right for client mode and for a cluster with LakeRec at the same path)
  LAKEREC_RETRY_DELAY_SECONDS  optional: wait before a failed task is retried (default 600)
"""
from __future__ import annotations

import datetime as dt
import json
import os
import subprocess

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
from airflow.providers.standard.operators.bash import BashOperator

LAKEREC_APP = os.environ.get("LAKEREC_APP", "")
LAKEREC_CONF = os.environ.get("LAKEREC_CONF", "/opt/lakerec/conf/local.yaml")
LAKEREC_BIN = os.environ.get("LAKEREC_BIN", "lakerec")
RETRY_DELAY = dt.timedelta(seconds=int(os.environ.get("LAKEREC_RETRY_DELAY_SECONDS", "600")))
DEFAULT_ARGS = {"owner": "lakerec", "retries": 2, "retry_delay": RETRY_DELAY}
START = dt.datetime(2026, 1, 1)


def submit_arguments() -> dict:
    """`lakerec submit-args --json` for LAKEREC_CONF: application, Spark conf, job environment."""
    cmd = [LAKEREC_BIN, "submit-args", "--json", "--conf", LAKEREC_CONF]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} exited {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout)


class LakeRecSparkSubmitOperator(SparkSubmitOperator):
    """SparkSubmitOperator completed at run time with LakeRec's own Spark settings (submit_arguments).
    Settings given to the operator itself win over LakeRec's."""

    def execute(self, context):
        lakerec = submit_arguments()
        self.conf = {**lakerec["conf"], **(self.conf or {})}
        self.env_vars = {**lakerec["env_vars"], **(self.env_vars or {})}
        self.application = self.application or lakerec["application"]
        return super().execute(context)


def spark_job(task_id: str, *args: str, **overrides) -> SparkSubmitOperator:
    """One LakeRec Spark job for the DAG run's logical date."""
    sets = [x for key, value in overrides.items() for x in ("--set", f"{key}={value}")]
    return LakeRecSparkSubmitOperator(
        task_id=task_id, application=LAKEREC_APP, name=f"lakerec-{task_id}-{{{{ ds }}}}", conn_id="spark_default",
        application_args=[*args, "--run-date", "{{ ds }}", "--conf", LAKEREC_CONF, *sets])


def cli_step(task_id: str, command: str) -> BashOperator:
    """A LakeRec step that needs no Spark (model registry and export)."""
    return BashOperator(task_id=task_id, bash_command=f"{LAKEREC_BIN} {command} --conf {LAKEREC_CONF}",
                        env={"HF_HUB_OFFLINE": "1"}, append_env=True)
