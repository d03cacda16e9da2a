"""`lakerec submit-args`: what `spark-submit jobs/cli.py <job>` needs from LakeRec's configuration.

A job started by `lakerec <job>` builds its Spark session from conf (lakerec/spark.py). A job started
by `spark-submit` (Airflow's SparkSubmitOperator, a cluster's scheduler) gets a JVM before LakeRec
runs, so the same settings must go on spark-submit's command line: the Delta jars (`spark.jars` from
the local folder, or `spark.jars.packages` where the cluster has a network), the catalog and
warehouse, the Python environment of the driver and the executors, memory. This module is the one
place that turns conf into those arguments; the DAGs (airflow/dags/lakerec_common.py) ask it at run
time, so the DAG and the CLI cannot drift.

    lakerec submit-args --json       {"application": ..., "conf": {...}, "env_vars": {...}}
    lakerec submit-args              the spark-submit command line, for a shell or a cron entry
"""
from __future__ import annotations

import json
import shlex
from pathlib import Path

from lakerec.config import Conf
from lakerec.spark import python_interpreter, session_config

APPLICATION = Path(__file__).resolve().with_name("cli.py")
JOB_ENVIRONMENT = {"HF_HUB_OFFLINE": "1"}      # models come from bundles, never from a hub


def arguments(conf: Conf) -> dict:
    """spark-submit's application, `--conf` settings and the job's environment, from conf.
    The master is not among them: it is the scheduler's (Airflow's `spark_default` connection)."""
    settings = session_config(conf)
    python = python_interpreter(conf)
    settings.setdefault("spark.pyspark.python", python)
    settings.setdefault("spark.pyspark.driver.python", python)
    settings.setdefault("spark.app.name", conf.get("spark.app_name"))
    return {"application": str(APPLICATION), "conf": settings, "env_vars": dict(JOB_ENVIRONMENT)}


def command_line(conf: Conf) -> str:
    args = arguments(conf)
    words = ["spark-submit"]
    for key, value in args["conf"].items():
        words += ["--conf", f"{key}={value}"]
    words.append(args["application"])
    env = " ".join(f"{k}={shlex.quote(v)}" for k, v in args["env_vars"].items())
    return f"{env} {shlex.join(words)} <job> --run-date <date> --conf {shlex.quote(conf.source)}"


def run(conf: Conf, as_json: bool) -> None:
    print(json.dumps(arguments(conf), indent=2) if as_json else command_line(conf))
