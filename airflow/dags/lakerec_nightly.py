"""Nightly scoring for the logical date: validate the sources -> textualize -> score -> check the
output. Each step replaces only its own date's slice, so retries and backfills
(`airflow dags backfill lakerec_nightly -s 2026-03-01 -e 2026-03-07`) are safe."""
from airflow.sdk import DAG

from lakerec_common import DEFAULT_ARGS, START, spark_job

with DAG(dag_id="lakerec_nightly", schedule="0 2 * * *", start_date=START, catchup=False, max_active_runs=1,
         default_args=DEFAULT_ARGS, tags=["lakerec"], doc_md=__doc__) as dag:
    validate = spark_job("validate", "validate")
    textualize = spark_job("textualize", "textualize")
    score = spark_job("score", "score")
    check = spark_job("check_output", "check")
    validate >> textualize >> score >> check
