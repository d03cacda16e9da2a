"""The Airflow DAGs import cleanly with real Airflow, in an environment of their own
(scripts/check_dags.sh builds it on first use from airflow/requirements.txt)."""
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_dags_load_in_real_airflow():
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "check_dags.sh")], capture_output=True, text=True,
                          timeout=1800)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "DAGs OK: lakerec_nightly (4 tasks), lakerec_weekly (3 tasks)" in proc.stdout
