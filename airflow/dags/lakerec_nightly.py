"""Nightly scoring for the logical date: validate the sources -> textualize -> score -> check the
output. Each step replaces only its own date's slice, so retries and backfills
(`airflow backfill create --dag-id lakerec_nightly --from-date 2026-03-01 --to-date 2026-03-07`) are
safe: a retried task or a re-run date leaves what one clean run leaves (tests/test_airflow_dags.py
runs three dates one after the other with `airflow dags test` and kills one task mid-write). On the
embedded metastore add `--max-active-runs 1` (docs/airflow.md)."""
from airflow.sdk import DAG

from lakerec_common import DEFAULT_ARGS, START, spark_job

with DAG(dag_id="lakerec_nightly", schedule="0 2 * * *", start_date=START, catchup=False, max_active_runs=1,
         default_args=DEFAULT_ARGS, tags=["lakerec"], doc_md=__doc__) as dag:
    validate = spark_job("validate", "validate")
    textualize = spark_job("textualize", "textualize")
    score = spark_job("score", "score")
    check = spark_job("check_output", "check")
    validate >> textualize >> score >> check
