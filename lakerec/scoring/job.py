"""The scoring job: the prompts of a run date scored by the chosen model, then the output slice
(run_date, variant) and the quarantine slice replaced, each in one Delta commit, and the latest-run
view refreshed. `lakerec score` (jobs/score.py) runs it; A/B variants score a subset of users."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from pyspark.sql import DataFrame, functions as F

from lakerec.config import Conf
from lakerec.errors import StructuralError
from lakerec.scoring.bundle_choice import DEFAULT_VARIANT, model_for
from lakerec.scoring.output import create_recommendations_table, latest_view, quarantine_rows, recommendation_rows
from lakerec.scoring.stage import score_prompts
from lakerec.tables import delta_version, read_at_version, replace_slice, table_exists
from lakerec.validate import QUARANTINE_COLUMNS_DOC

@dataclass(frozen=True)
class Target:
    """What one scoring run reads and writes."""
    prompts_table: str
    output_table: str
    holdout: bool
    variant: str


def target(conf: Conf, variant: str | None, holdout: bool) -> Target:
    if holdout:
        return Target(conf.require("tables.holdout_prompts"), conf.require("tables.holdout_recommendations"),
                      True, variant or DEFAULT_VARIANT)
    return Target(conf.require("tables.prompts"), conf.require("tables.recommendations"), False,
                  variant or DEFAULT_VARIANT)


def read_prompts(spark, t: Target, run_date: dt.date, users: DataFrame | None) -> tuple[DataFrame, int | None]:
    if not table_exists(spark, t.prompts_table):
        raise StructuralError(f"table {t.prompts_table} does not exist; run `lakerec textualize"
                              f"{' --holdout' if t.holdout else ''} --run-date {run_date}` first")
    version = delta_version(spark, t.prompts_table)
    prompts = read_at_version(spark, t.prompts_table, version).where(F.col("run_date") == F.lit(run_date))
    if "sequence_item_ids" not in prompts.columns:
        raise StructuralError(f"{t.prompts_table} has no sequence_item_ids column (written by an older "
                              f"textualize); re-run `lakerec textualize --run-date {run_date}`")
    if prompts.limit(1).count() == 0:         # an empty input must not empty the output slice
        raise StructuralError(f"{t.prompts_table} has no prompts for run_date {run_date}; run `lakerec textualize"
                              f"{' --holdout' if t.holdout else ''} --run-date {run_date}` first")
    if users is not None:
        prompts = prompts.join(users, "user_id", "left_semi")
    return prompts, version


def score(spark, conf: Conf, run, *, model: str | None = None, variant: str | None = None,
          holdout: bool = False, users: DataFrame | None = None) -> dict:
    """Score the prompts of run.run_date and replace the (run_date, variant) slice of the output.
    users: restrict to these user ids (A/B variants). Returns the job's metrics."""
    run_date = run.run_date
    t = target(conf, variant, holdout)
    prompts, input_version = read_prompts(spark, t, run_date, users)
    if holdout:     # offline evaluation reads the ranking only: no explanations to generate
        conf = conf.with_overrides({"score.explainer": "off"})
    with run.timed("score_s"):
        scored = score_prompts(spark, conf, prompts, model_for(conf, variant, model))
    try:
        job = f"score:{t.variant}" + (":holdout" if holdout else "")
        slice_ = {"run_date": run_date, "variant": t.variant}
        recs = recommendation_rows(scored.rows, scored.items, prompts, version=scored.version, variant=t.variant,
                                   input_version=input_version, run_id=run.run_id, run_date=run_date, holdout=holdout)
        with run.timed("write_s"):
            create_recommendations_table(spark, t.output_table, recs.schema, holdout)
            replace_slice(recs, t.output_table, slice_, ["run_date"])
            bad = quarantine_rows(scored.rows, t.prompts_table, job, run.run_id, run_date)
            replace_slice(bad, conf.require("tables.quarantine"),
                          {"run_date": run_date, "job": job}, ["run_date"], QUARANTINE_COLUMNS_DOC)
        if not holdout:
            latest_view(spark, conf)
    finally:
        scored.release()
    run.rows_in = int(scored.stats["users"])
    run.rows_out = int(scored.stats["rows"])
    run.rows_quarantined = int(scored.stats["bad"])
    run.metrics.update(variant=t.variant, holdout=holdout, input_table_version=input_version,
                       output_table=t.output_table, **scored.metrics())
    return run.metrics
