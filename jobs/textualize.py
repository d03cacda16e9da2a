"""`lakerec textualize --run-date D`: validate the sources, quarantine bad rows, and replace the
run date's partition of the prompts table with one prompt per valid user."""
from __future__ import annotations

from pyspark.sql import functions as F

from lakerec.progress import spark_progress
from lakerec.prompts import HOLDOUT_COLUMNS_DOC, PROMPTS_COLUMNS_DOC, build_prompts
from lakerec.runs import recorded_run
from lakerec.tables import replace_slice
from lakerec.validate import validated_sources


def run(spark, conf, run_date, holdout: bool = False):
    """holdout: the leave-one-out prompts (each user's last interaction held out) into
    tables.holdout_prompts, for scoring-based offline evaluation (`lakerec score --holdout`)."""
    prompts_table = conf.require("tables.holdout_prompts" if holdout else "tables.prompts")
    docs = {**PROMPTS_COLUMNS_DOC, **HOLDOUT_COLUMNS_DOC} if holdout else PROMPTS_COLUMNS_DOC
    with recorded_run(spark, conf, "textualize:holdout" if holdout else "textualize", run_date) as run:
        with spark_progress(spark, "textualize"), \
                validated_sources(spark, conf, run, "textualize") as (checked, versions), \
                run.timed("prompts_s"):
            prompts = build_prompts(checked.good, conf, run_date, run.run_id, versions, holdout=holdout)
            replace_slice(prompts, prompts_table, {"run_date": run_date}, ["run_date"], docs)
        stats = spark.table(prompts_table).where(F.col("run_date") == F.lit(run_date)).agg(
            F.count("*").alias("prompts"), F.avg("n_history_kept").alias("mean_kept"),
            F.avg((F.col("n_history_kept") < F.col("n_history_total")).cast("double")).alias("truncated"),
            F.avg("prompt_tokens").alias("mean_tokens")).first()
        run.rows_out = stats["prompts"]
        run.metrics.update(prompts=stats["prompts"], mean_history_kept=round(stats["mean_kept"] or 0, 1),
                           share_truncated=round(stats["truncated"] or 0, 3),
                           mean_prompt_tokens=round(stats["mean_tokens"] or 0, 1))
        return run
