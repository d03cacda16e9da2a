"""The Airflow DAGs under real Airflow (Airflow 3 and the Spark provider, in an environment of their
own built by scripts/airflow_env.sh): loaded by a DagBag, then run end to end with `airflow dags test`
on a small generated warehouse, every Spark step through `spark-submit` as a deployment runs it
(docs/airflow.md): the weekly DAG trains, exports and promotes a model, the nightly DAG scores three
logical dates with it, and one of its tasks is killed mid-write and retried by Airflow."""
from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from deltalake import DeltaTable

from tests.conftest import DEPLOYMENT_CONF

pytestmark = pytest.mark.airflow
ROOT = Path(__file__).resolve().parent.parent
USERS, ITEMS, TOP_K = 200, 300, 10
DATES = ["2026-11-20", "2026-11-21", "2026-11-22"]     # after the DAGs' start_date, or nothing runs
RETRIED = DATES[1]             # its score task is killed once, mid-write



class Deployment:
    """An Airflow home, a LakeRec configuration and a warehouse, all under one temporary folder."""

    def __init__(self, root: Path, airflow_venv: Path):
        self.root, self.conf = root, root / "lakerec.yaml"
        self.airflow = airflow_venv / "bin" / "airflow"
        self.lakerec = Path(sys.executable).with_name("lakerec")
        wrappers = root / "bin"                # kill_once_spark_submit.py stands in for spark-submit
        wrappers.mkdir()
        (wrappers / "spark-submit").write_text(
            f"#!/bin/sh\nexec {sys.executable} {ROOT / 'tests' / 'kill_once_spark_submit.py'} \"$@\"\n")
        (wrappers / "spark-submit").chmod(0o755)
        self.kill_mark = root / "killed"
        self.env = {
            **os.environ,
            "AIRFLOW_HOME": str(root / "airflow"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_FOLDER": str(ROOT / "airflow" / "dags"),
            "AIRFLOW_CONN_SPARK_DEFAULT": json.dumps({"conn_type": "spark", "host": "local[2]"}),
            "LAKEREC_CONF": str(self.conf), "LAKEREC_BIN": str(self.lakerec), "LAKEREC_RETRY_DELAY_SECONDS": "1",
            "PATH": f"{wrappers}:{self.lakerec.parent}:{os.environ['PATH']}",
            "REAL_SPARK_SUBMIT": str(self.lakerec.with_name("spark-submit")), "KILL_SCORE_OF": RETRIED,
            "KILL_MARK": str(self.kill_mark),
            "KILL_TABLE_DIR": str(root / "warehouse" / "tables" / "recs.db" / "user_recommendations"),
        }

    def run(self, *cmd, timeout=900) -> subprocess.CompletedProcess:
        proc = subprocess.run([str(c) for c in cmd], capture_output=True, text=True, env=self.env, timeout=timeout)
        assert proc.returncode == 0, f"{cmd} exited {proc.returncode}:\n{proc.stdout[-4000:]}{proc.stderr[-4000:]}"
        return proc

    def dags_test(self, dag_id: str, date: str) -> dict:
        """`airflow dags test DAG DATE`; the run's state and each task's state, tries and seconds, read
        from Airflow's metadata database."""
        start = time.monotonic()
        proc = self.run(self.airflow, "dags", "test", dag_id, date)
        with sqlite3.connect(self.root / "airflow" / "airflow.db") as db:
            run_id, state = db.execute(
                "SELECT run_id, state FROM dag_run WHERE dag_id = ? AND logical_date LIKE ? "
                "ORDER BY id DESC LIMIT 1", (dag_id, f"{date}%")).fetchone()
            tasks = {task: {"state": task_state, "tries": tries, "seconds": round(seconds or 0, 1)}
                     for task, task_state, tries, seconds in db.execute(
                         "SELECT task_id, state, try_number, duration FROM task_instance "
                         "WHERE dag_id = ? AND run_id = ?", (dag_id, run_id))}
        result = {"state": state, "tasks": tasks, "seconds": round(time.monotonic() - start, 1)}
        print(f"{dag_id} {date}: {json.dumps(result)}")
        result["log"] = proc.stdout[-6000:] + proc.stderr[-6000:]
        return result

    def recommendations(self):
        return DeltaTable(self.env["KILL_TABLE_DIR"]).to_pandas()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    venv = subprocess.run(["bash", str(ROOT / "scripts" / "airflow_env.sh")], capture_output=True, text=True,
                          timeout=1800)
    assert venv.returncode == 0, venv.stderr[-3000:]
    root = tmp_path_factory.mktemp("airflow_deployment")
    (root / "lakerec.yaml").write_text(DEPLOYMENT_CONF.format(root=root, top_k=TOP_K, driver_memory="2g",
                                                                metastore="{url: null}"))
    deployment = Deployment(root, Path(venv.stdout.strip()))
    deployment.run(deployment.lakerec, "generate", "--users", USERS, "--items", ITEMS, "--run-date", "2026-11-19",
                   "--conf", deployment.conf)
    deployment.run(deployment.airflow, "db", "migrate")
    return deployment


@pytest.fixture(scope="module")
def weekly(deployment):
    return deployment.dags_test("lakerec_weekly", DATES[0])


@pytest.fixture(scope="module")
def nightly(deployment, weekly):
    """The nightly DAG over three logical dates, one after the other, as a backfill runs them."""
    return {date: deployment.dags_test("lakerec_nightly", date) for date in DATES}


def test_dags_load_in_real_airflow():
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "check_dags.sh")], capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "DAGs OK: lakerec_nightly (4 tasks), lakerec_weekly (4 tasks)" in proc.stdout


def test_weekly_dag_trains_exports_promotes_and_maintains(deployment, weekly):
    assert weekly["state"] == "success", weekly["log"]
    assert {t: s["state"] for t, s in weekly["tasks"].items()} == {
        "train": "success", "export": "success", "promote_if_better": "success", "maintain": "success"}
    listing = json.loads(deployment.run(deployment.lakerec, "models", "--json", "--conf", deployment.conf).stdout)
    assert [(r["version"], r["champion"]) for r in listing] == [("v0001", True)]
    from rec_udf.bundle import verify
    assert verify(deployment.root / "bundles" / "v0001" / "fp32").model_version == "v0001"


def test_nightly_dag_leaves_a_complete_slice_for_every_date(deployment, nightly):
    for date, run in nightly.items():
        assert run["state"] == "success", run["log"]
        assert {t: s["state"] for t, s in run["tasks"].items()} == {
            "validate": "success", "textualize": "success", "score": "success", "check_output": "success"}, date
    recs = deployment.recommendations()
    assert sorted(set(recs["run_date"].astype(str))) == DATES
    for date, rows in recs.groupby(recs["run_date"].astype(str)):
        assert rows["user_id"].nunique() == USERS, date
        assert rows.groupby("user_id").size().eq(TOP_K).all(), date            # K rows, none twice
        assert not rows.duplicated(["user_id", "rank"]).any() and set(rows["model_version"]) == {"v0001"}


def test_a_task_killed_mid_write_and_retried_leaves_the_slice_of_a_clean_run(deployment, nightly):
    retried = nightly[RETRIED]["tasks"]["score"]
    assert deployment.kill_mark.read_text() == "killed mid-write\n"      # the first try died while writing
    assert retried["state"] == "success" and retried["tries"] == 2
    assert all(s["tries"] == 1 for d, run in nightly.items() for t, s in run["tasks"].items()
               if (d, t) != (RETRIED, "score"))

    def slice_of(date):
        rows = deployment.recommendations()
        rows = rows[rows["run_date"].astype(str) == date]
        return rows.sort_values(["user_id", "rank"])[["user_id", "rank", "item_id", "score"]].reset_index(drop=True)

    after_retry = slice_of(RETRIED)
    # The same task again on its own, cleanly: the date's slice is replaced by an identical one.
    deployment.run(deployment.airflow, "tasks", "test", "lakerec_nightly", "score", RETRIED)
    clean = slice_of(RETRIED)
    assert len(after_retry) == len(clean) == USERS * TOP_K
    assert after_retry[["user_id", "rank", "item_id"]].equals(clean[["user_id", "rank", "item_id"]])
    assert (after_retry["score"] - clean["score"]).abs().max() < 1e-5
