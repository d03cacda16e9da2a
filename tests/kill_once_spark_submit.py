"""Stands in for `spark-submit` on PATH in tests/test_airflow_dags.py: passes every call through to the
real one, except the first `score` of the date in KILL_SCORE_OF, which it kills (SIGKILL to the whole
process group: spark-submit, the driver, its Python workers) as soon as a data file of that date
appears in the recommendations table's folder, i.e. mid-write, and then exits 137 as a killed task
would. Airflow then retries the task."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

real, date = os.environ["REAL_SPARK_SUBMIT"], os.environ["KILL_SCORE_OF"]
mark, table = Path(os.environ["KILL_MARK"]), Path(os.environ["KILL_TABLE_DIR"])
args = sys.argv[1:]
if "score" not in args or date not in args or mark.exists():
    os.execv(real, [real, *args])

mark.write_text("killed\n")
proc = subprocess.Popen([real, *args], start_new_session=True)
partition = table / f"run_date={date}"
while proc.poll() is None:
    if partition.is_dir() and any(partition.glob("*.parquet")):
        os.killpg(proc.pid, signal.SIGKILL)
        mark.write_text("killed mid-write\n")
        break
    time.sleep(0.02)
proc.wait()
sys.exit(137)
