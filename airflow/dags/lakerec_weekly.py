"""Weekly model refresh: train a new version on the logical date's data (registered, not promoted) ->
export it to ONNX bundles -> promote it if its validation NDCG@10 beats the champion's. Exporting
before promoting means the champion pointer never names a model without a bundle, so the nightly
scoring never finds one missing. Last, upkeep: OPTIMIZE and VACUUM LakeRec's tables, delete unused
shipping archives (`lakerec maintain`)."""
from airflow.sdk import DAG

from lakerec_common import DEFAULT_ARGS, START, cli_step, spark_job

with DAG(dag_id="lakerec_weekly", schedule="0 4 * * 0", start_date=START, catchup=False, max_active_runs=1,
         default_args=DEFAULT_ARGS, tags=["lakerec"], doc_md=__doc__) as dag:
    train = spark_job("train", "train", **{"train.promote": "false"})
    export = cli_step("export", "export --model latest")
    promote = cli_step("promote_if_better", "models --promote-if-better latest")
    maintain = spark_job("maintain", "maintain")
    train >> export >> promote >> maintain
