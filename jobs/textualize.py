"""`lakerec textualize --run-date D`: validate the sources, quarantine bad rows, and replace the
run date's partition of the prompts table with one prompt per valid user."""
from __future__ import annotations

from pyspark.sql import functions as F

from lakerec.progress import spark_progress
from lakerec.prompts import PROMPTS_COLUMNS_DOC, build_prompts
from lakerec.runs import recorded_run
from lakerec.sources.schema import read_sources
from lakerec.tables import replace_slice
from lakerec.validate import validate, write_quarantine


def run(spark, conf, run_date):
    prompts_table = conf.require("tables.prompts")
    with recorded_run(spark, conf, "textualize", run_date) as run:
        sources = read_sources(spark, conf)          # structural checks: before any write
        versions = {s.table: s.version for s in sources.values()}
        run.metrics["input_table_versions"] = versions
        checked = validate(sources, conf)
        try:
            with spark_progress(spark, "textualize"):
                with run.timed("validate_s"):
                    run.rows_in = sum(df.count() for df in checked.flagged.values())
                with run.timed("quarantine_s"):
                    run.rows_quarantined = write_quarantine(checked, conf, "textualize", run.run_id, run_date)
                with run.timed("prompts_s"):
                    prompts = build_prompts(checked.good, conf, run_date, run.run_id, versions)
                    replace_slice(prompts, prompts_table, f"run_date = '{run_date.isoformat()}'",
                                  ["run_date"], PROMPTS_COLUMNS_DOC)
        finally:
            checked.release()
        stats = spark.table(prompts_table).where(F.col("run_date") == F.lit(run_date)).agg(
            F.count("*").alias("prompts"), F.avg("n_history_kept").alias("mean_kept"),
            F.avg((F.col("n_history_kept") < F.col("n_history_total")).cast("double")).alias("truncated"),
            F.avg("prompt_tokens").alias("mean_tokens")).first()
        run.rows_out = stats["prompts"]
        run.metrics.update(prompts=stats["prompts"], mean_history_kept=round(stats["mean_kept"] or 0, 1),
                           share_truncated=round(stats["truncated"] or 0, 3),
                           mean_prompt_tokens=round(stats["mean_tokens"] or 0, 1))
        return run
