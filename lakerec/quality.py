"""Data-quality checks on one scored slice (run date, variant) of the recommendations table, for the
nightly pipeline's last step: a failing check fails the task, so nobody reads a bad morning table."""
from __future__ import annotations

import datetime as dt

from pyspark.sql import functions as F

from lakerec.config import Conf
from lakerec.errors import LakeRecError
from lakerec.sources.schema import read_source


class QualityError(LakeRecError):
    """A check on the output failed; the message lists every failed check."""


def checks(spark, conf: Conf, run_date: dt.date, variant: str = "default") -> dict[str, tuple[bool, str]]:
    """{check name: (passed, detail)}."""
    recs = spark.table(conf.require("tables.recommendations")).where(
        (F.col("run_date") == F.lit(run_date)) & (F.col("variant") == variant))
    prompts = spark.table(conf.require("tables.prompts")).where(F.col("run_date") == F.lit(run_date))
    # the items table through the column mapping (ids parsed as scoring reads them)
    items = read_source(spark, conf, "items").df.where(F.col("item_id") > 0).select("item_id")
    top_k = conf.settings.score.top_k
    per_user = recs.groupBy("user_id").agg(F.count("*").alias("n"), F.countDistinct("rank").alias("ranks"),
                                           F.countDistinct("item_id").alias("distinct_items"))
    # Every user gets top_k rows, or every candidate when fewer are left (catalogue minus history).
    catalogue = items.distinct()
    known_seen = (prompts.select("user_id", F.explode("seen_item_ids").alias("item_id")).distinct()
                  .join(catalogue, "item_id").groupBy("user_id").agg(F.count("*").alias("seen")))
    expected = per_user.join(known_seen, "user_id", "left").withColumn(
        "expected", F.least(F.lit(top_k), F.lit(catalogue.count()) - F.coalesce(F.col("seen"), F.lit(0))))
    s = expected.agg(F.count("*").alias("users"), F.min("n").alias("min_n"), F.max("n").alias("max_n"),
                     F.sum((F.col("n") != F.col("expected")).cast("int")).alias("wrong_n"),
                     F.sum((F.col("n") != F.col("ranks")).cast("int")).alias("dup_ranks"),
                     F.sum((F.col("n") != F.col("distinct_items")).cast("int")).alias("dup_items")).first()
    n_prompts = prompts.count()
    unknown = recs.join(catalogue, "item_id", "left_anti").count()
    seen = (recs.join(prompts.select("user_id", F.explode("seen_item_ids").alias("item_id")), ["user_id", "item_id"])
            .count())
    nulls = recs.where(F.col("score").isNull() | F.col("item_id").isNull() | F.isnan("score")).count()
    quarantined = spark.table(conf.require("tables.quarantine")).where(
        (F.col("run_date") == F.lit(run_date)) & (F.col("job") == f"score:{variant}")).count()
    max_share = float(conf.get("quality.max_quarantined_share"))
    users = s["users"] or 0
    return {
        "has_rows": (users > 0, f"{users} users with recommendations"),
        "rows_per_user": (users > 0 and not s["wrong_n"],
                          f"{s['wrong_n'] or 0} users without top_k {top_k} rows (or all their candidates "
                          f"when fewer); {s['min_n']} to {s['max_n']} rows per user"),
        "no_duplicates": (not s["dup_ranks"] and not s["dup_items"],
                          f"{s['dup_ranks'] or 0} users with a repeated rank, {s['dup_items'] or 0} with a repeated item"),
        "items_exist": (unknown == 0, f"{unknown} rows whose item is not in {conf.require('source.items.table')}"),
        "not_in_history": (seen == 0, f"{seen} rows recommend an item the user already has"),
        "no_null_scores": (nulls == 0, f"{nulls} rows with a null or NaN score or item"),
        "every_prompt_accounted": (users + quarantined == n_prompts,
                                   f"{users} scored + {quarantined} quarantined vs {n_prompts} prompts"),
        "quarantine_share": (n_prompts > 0 and quarantined / n_prompts <= max_share,
                             f"{quarantined} of {n_prompts} users quarantined (limit {max_share:.1%})"),
    }


def check(spark, conf: Conf, run, variant: str = "default") -> dict:
    results = checks(spark, conf, run.run_date, variant)
    run.metrics["checks"] = {name: {"passed": ok, "detail": detail} for name, (ok, detail) in results.items()}
    for name, (ok, detail) in results.items():
        print(f"  {'ok  ' if ok else 'FAIL'} {name}: {detail}")
    failed = [f"{name} ({detail})" for name, (ok, detail) in results.items() if not ok]
    if failed:
        raise QualityError(f"{conf.require('tables.recommendations')} {run.run_date} variant {variant}: "
                           + "; ".join(failed))
    return results
