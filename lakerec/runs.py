"""The `runs` table: one row per job run with counts and timings, and the one-line summary every
job prints at the end. The row is written `running` when the job starts and replaced by its final
state (succeeded / failed) when it ends, so a run that was killed stays visible: `abandoned_runs`
finds rows still `running` whose process on this host is gone (`lakerec info` lists them)."""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field

from lakerec import logs
from lakerec import __version__
from lakerec.config import Conf
from lakerec.tables import append, replace_slice, table_exists

RUNS_COLUMNS_DOC = {
    "run_id": "unique id of the run",
    "job": "ingest, generate, validate, textualize, ...",
    "run_date": "logical date the job ran for (--run-date)",
    "status": "running (written at start), then succeeded or failed; running for good: the process died",
    "started_at": "start time (UTC)",
    "finished_at": "end time (UTC); null while running",
    "duration_s": "wall time in seconds; null while running",
    "rows_in": "rows read",
    "rows_out": "rows written to the job's main output",
    "rows_quarantined": "rows sent to the quarantine table",
    "metrics": "job-specific metrics as JSON (input table versions, throughput, ...)",
    "error": "error message when status = failed",
    "lakerec_version": "package version that ran the job",
    "conf_source": "configuration file used",
    "host": "machine the job's driver ran on",
    "pid": "process id of the job's driver on that host",
}
WRITE_ATTEMPTS = 5          # a run's final row against concurrent commits to the runs table
RUNS_SCHEMA = (
    "run_id string, job string, run_date date, status string, started_at timestamp, "
    "finished_at timestamp, duration_s double, rows_in bigint, rows_out bigint, "
    "rows_quarantined bigint, metrics string, error string, lakerec_version string, conf_source string, "
    "host string, pid int"
)


@dataclass
class Run:
    job: str
    run_date: dt.date
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:16])
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    metrics: dict = field(default_factory=dict)
    started: float = field(default_factory=time.time)

    @contextlib.contextmanager
    def timed(self, metric: str):
        """Record the wall time of a step as metrics[metric] (seconds)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.metrics[metric] = round(time.perf_counter() - start, 2)

    def summary(self, status: str) -> str:
        extra = " ".join(f"{k}={v}" for k, v in self.metrics.items() if not isinstance(v, (dict, list)))
        return (f"lakerec {self.job} {status}: run_date={self.run_date} run_id={self.run_id} "
                f"in={self.rows_in} out={self.rows_out} quarantined={self.rows_quarantined} "
                f"duration={time.time() - self.started:.1f}s {extra}").rstrip()


@contextlib.contextmanager
def recorded_run(spark, conf: Conf, job: str, run_date: dt.date):
    """Yield a Run; on exit append its row to the runs table and print the summary line.
    A failing job still gets a `failed` row with the error, then the exception propagates."""
    run = Run(job=job, run_date=run_date)
    status, error = "succeeded", None
    _write(spark, conf, run, "running", None)
    try:
        yield run
    except BaseException as exc:
        status, error = "failed", f"{type(exc).__name__}: {exc}"
        raise
    finally:
        _write(spark, conf, run, status, error)
        print(run.summary(status), file=sys.stdout if status == "succeeded" else sys.stderr, flush=True)


def _write(spark, conf: Conf, run: Run, status: str, error: str | None) -> None:
    running = status == "running"
    finished = None if running else time.time()
    row = (run.run_id, run.job, run.run_date, status,
           dt.datetime.fromtimestamp(run.started, dt.timezone.utc).replace(tzinfo=None),
           None if running else dt.datetime.fromtimestamp(finished, dt.timezone.utc).replace(tzinfo=None),
           None if running else round(finished - run.started, 3), int(run.rows_in), int(run.rows_out),
           int(run.rows_quarantined), json.dumps(run.metrics, default=str, sort_keys=True),
           error[:4000] if error else None, __version__, conf.source, socket.gethostname(), os.getpid())
    table = conf.require("tables.runs")
    frame = spark.createDataFrame([row], RUNS_SCHEMA)
    for attempt in range(WRITE_ATTEMPTS):
        try:
            if running or not table_exists(spark, table):
                append(frame, table, RUNS_COLUMNS_DOC)            # a blind append: never in conflict
            else:               # the run's `running` row becomes its final one, in one commit
                replace_slice(frame, table, {"run_id": run.run_id}, [], RUNS_COLUMNS_DOC)
            return
        except Exception as exc:  # never hide the job's own error behind a bookkeeping failure
            # Another job's final row (or `lakerec maintain`) committed first: Delta asks to try again.
            if "Concurrent" in str(exc) and attempt + 1 < WRITE_ATTEMPTS:
                time.sleep(0.5 * (attempt + 1))
                continue
            logs.get(__name__).warning(f"warning: could not record the run in {table}: {exc}")
            return


def abandoned_runs(spark, conf: Conf) -> list[dict]:
    """Runs still marked `running` whose driver process on this host no longer exists (killed, or
    the machine went down). Runs on other hosts cannot be checked from here and are not listed."""
    from pyspark.sql import functions as F

    table = conf.require("tables.runs")
    if not table_exists(spark, table) or "pid" not in spark.table(table).columns:
        return []
    rows = (spark.table(table).where((F.col("status") == "running") & (F.col("host") == socket.gethostname()))
            .select("run_id", "job", "run_date", "started_at", "pid").collect())
    return [{"run_id": r.run_id, "job": r.job, "run_date": str(r.run_date), "started_at": str(r.started_at),
             "pid": r.pid} for r in rows if r.pid is not None and not _alive(r.pid)]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:        # exists, owned by someone else
        return True
    return True
