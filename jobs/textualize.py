"""`lakerec textualize --run-date D`: validate the sources, quarantine bad rows, and replace the
run date's partition of the prompts table with one prompt per valid user."""
from __future__ import annotations

from pyspark.sql import functions as F

from lakerec.progress import spark_progress
from lakerec.prompts import HOLDOUT_COLUMNS_DOC, PROMPTS_COLUMNS_DOC, build_prompts, prompt_stats
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
        stats = prompt_stats(spark.table(prompts_table).where(F.col("run_date") == F.lit(run_date)))
        run.rows_out = stats["prompts"]
        run.metrics.update(stats)
        return run
