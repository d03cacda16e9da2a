"""A shared Hive metastore for real: a PostgreSQL server started here (Debian's package), LakeRec's
tables named through it, and `lakerec stream` running at the same time as the nightly `score` on one
warehouse, as the product is meant to run (the embedded Derby default admits one process)."""
from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from deltalake import DeltaTable

from tests.conftest import DEPLOYMENT_CONF

pytestmark = pytest.mark.e2e
RUN_DATE, TOP_K, USERS = "2026-11-20", 10, 150


def _postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if not found and os.geteuid() == 0 and shutil.which("apt-get"):      # a fresh machine: Debian's package
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        install = ["apt-get", "install", "-y", "-q", "postgresql"]
        if subprocess.run(install, capture_output=True, env=env).returncode != 0:    # no package lists yet
            subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True, env=env)
            subprocess.run(install, check=True, capture_output=True, env=env)
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert found, "PostgreSQL is not installed (apt-get install postgresql)"
    return Path(found[-1]).parent


@pytest.fixture(scope="module")
def postgres():
    """A throw-away PostgreSQL server on a free port, as the `postgres` user when run as root."""
    bin_dir = _postgres_bin()
    home = Path(tempfile.mkdtemp(prefix="lakerec-pg-"))
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_user:
        shutil.chown(home, "postgres")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]

    def pg(tool, *args):
        proc = subprocess.run([*as_user, str(bin_dir / tool), *args], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, f"{tool}: {proc.stdout}{proc.stderr}"
    pg("initdb", "-D", f"{home}/data", "-A", "trust", "-U", "lakerec")
    pg("pg_ctl", "-D", f"{home}/data", "-l", f"{home}/log", "-w", "start",
       "-o", f"-p {port} -k {home} -c listen_addresses=127.0.0.1")
    try:
        pg("createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "lakerec", "metastore")
        yield port
    finally:
        pg("pg_ctl", "-D", f"{home}/data", "-m", "fast", "stop")
        shutil.rmtree(home, ignore_errors=True)


def test_stream_and_nightly_score_at_once_on_a_postgres_metastore(postgres, tmp_path):
    conf = tmp_path / "lakerec.yaml"
    metastore = f'{{url: "jdbc:postgresql://127.0.0.1:{postgres}/metastore", user: lakerec}}'
    conf.write_text(DEPLOYMENT_CONF.format(root=tmp_path, top_k=TOP_K, driver_memory="1g", metastore=metastore))

    def lakerec(*args):
        return subprocess.Popen([sys.executable, "-m", "jobs.cli", *args, "--run-date", RUN_DATE, "--conf", str(conf)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "HF_HUB_OFFLINE": "1"})

    def done(proc):
        out, err = proc.communicate(timeout=900)
        assert proc.returncode == 0, f"{proc.args[3:5]} exited {proc.returncode}:\n{err[-3000:]}"
        return out

    before_init = lakerec("info")
    _, err = before_init.communicate(timeout=600)
    assert before_init.returncode == 2, err[-3000:]          # no schema yet: one clear line, exit 2
    assert "has no Hive schema yet: run `lakerec metastore-init`" in err.strip().splitlines()[-1]
    # metastore-init twice: the second finds the schema whole and changes nothing
    for args in (["metastore-init"], ["metastore-init"], ["generate", "--users", str(USERS), "--items", "120"], ["train"],
                 ["export", "--model", "champion"], ["textualize"]):
        done(lakerec(*args))
    assert not (tmp_path / "warehouse" / "metastore_db").exists()       # no Derby anywhere

    # the nightly scoring and the stream, two processes, one warehouse, one metastore, same time
    score, stream = lakerec("score"), lakerec("stream")
    done(score)
    done(stream)

    tables = tmp_path / "warehouse" / "tables"
    recs = DeltaTable(str(tables / "recs.db" / "user_recommendations")).to_pandas()
    assert recs["user_id"].nunique() == USERS and recs.groupby("user_id").size().eq(TOP_K).all()
    live = DeltaTable(str(tables / "recs.db" / "user_recommendations_live")).to_pandas()
    assert live["user_id"].nunique() == USERS and not live.duplicated(["user_id", "rank"]).any()
    assert live.dropna(subset=["item_id"]).groupby("user_id").size().eq(TOP_K).all()
    runs = DeltaTable(str(tables / "lakerec.db" / "runs")).to_pandas()
    by_job = runs.set_index("job")
    assert by_job.loc["score", "status"] == by_job.loc["stream", "status"] == "succeeded"
    assert (runs["status"] != "running").all()
    score_run, stream_run = by_job.loc["score"], by_job.loc["stream"]        # they did run at the same time
    assert score_run["started_at"] < stream_run["finished_at"] and stream_run["started_at"] < score_run["finished_at"]
    assert not runs["run_id"].duplicated().any()
