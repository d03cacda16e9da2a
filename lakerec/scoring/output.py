"""The recommendations tables the scoring job writes: the output rows built from the scored rows,
their columns (documented in docs/tables.md; a test holds the two in step), the quarantine rows of
users that could not be scored, and the view of each variant's latest run."""
from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, functions as F

from lakerec.config import Conf
from lakerec.tables import create_table_if_missing
from lakerec.validate import quarantine_frame

RECS_COLUMNS_DOC = {
    "user_id": "user id",
    "rank": "1 = best; ranks are dense from 1 to top_k",
    "item_id": "recommended item (never one already in the user's history; always in the items table)",
    "item_title": "the item's title from the items table at scoring time",
    "score": "the hybrid ranking score: the ID side's logit (the ID model's, + text_weight x the text view's) + "
             "lm_weight x the LM's cosine / temperature (higher is better; comparable within one model version only)",
    "explanation": "why the item suits the user, for the first score.explain_top_k ranks (null below them): one "
                   "sentence from the explainer LLM that passed the faithfulness check, or the data-built sentence",
    "explanation_source": "llm (the explainer's sentence passed the check) or fallback (the data-built sentence: "
                          "the LLM's failed the check, or score.explainer is template); null without an explanation",
    "evidence_item_ids": "the history items the explanation may cite: the user's items closest to the recommended "
                         "one in the ranking model's item space (liked ones first, then those sharing a genre with it)",
    "explanation_rejected": "why the LLM's sentence was replaced by the fallback (the failed check); null when it "
                            "was kept or no LLM ran (score.explainer template)",
    "model_version": "registered model version that scored (see `lakerec models`)",
    "prompt_template_version": "textualizer template version of the prompt",
    "input_table_version": "Delta version of the prompts table read",
    "variant": "A/B variant (`default` outside experiments)",
    "run_id": "the run that wrote the row (see the runs table)",
    "run_date": "logical date of the run; partition column",
    "scored_at": "when the row was written (UTC)",
}
HOLDOUT_RECS_COLUMNS_DOC = {**RECS_COLUMNS_DOC, "heldout_item_id": "the user's held-out last interaction"}


def recommendation_rows(scored: DataFrame, items: DataFrame, prompts: DataFrame, *, version: str, variant: str,
                        input_version: int | None, run_id: str, run_date: dt.date, holdout: bool) -> DataFrame:
    """The output table's rows from the scored rows (errors excluded)."""
    extra = ["heldout_item_id"] if holdout else []
    meta = prompts.select("user_id", "prompt_template_version", *extra)
    return (scored.where(F.col("error").isNull())
            .join(F.broadcast(items.select("item_id", F.col("title").alias("item_title"))), "item_id")
            .join(meta, "user_id")
            .select("user_id", "rank", "item_id", "item_title", "score", "explanation", "explanation_source",
                    "evidence_item_ids", "explanation_rejected",
                    F.lit(version).alias("model_version"), "prompt_template_version",
                    F.lit(input_version).cast("bigint").alias("input_table_version"),
                    F.lit(variant).alias("variant"), F.lit(run_id).alias("run_id"),
                    F.lit(run_date).cast("date").alias("run_date"),
                    F.current_timestamp().alias("scored_at"), *extra))


def quarantine_rows(scored: DataFrame, prompts_table: str, job: str, run_id: str, run_date: dt.date) -> DataFrame:
    """The prompts the executors could not score, as quarantine rows (the error is the reason)."""
    failed = scored.where(F.col("error").isNotNull()).select(
        F.lit(prompts_table).alias("source_table"), F.col("error").alias("reason"),
        F.to_json(F.struct("user_id", "prompt_tokens")).alias("row_json"))
    return quarantine_frame(failed, job, run_id, run_date)


def create_recommendations_table(spark, name: str, schema, holdout: bool = False) -> None:
    create_table_if_missing(spark, name, schema, ["run_date"], HOLDOUT_RECS_COLUMNS_DOC if holdout else RECS_COLUMNS_DOC,
                            {"delta.enableChangeDataFeed": "true"})


LATEST_VIEW_SQL = """CREATE OR REPLACE VIEW {view} AS
SELECT r.* FROM {table} r
JOIN (SELECT variant, max(run_date) AS run_date FROM {table} GROUP BY variant) latest
  ON r.variant = latest.variant AND r.run_date = latest.run_date"""


def latest_view(spark, conf: Conf) -> None:
    """recs.latest_recommendations: each variant's most recent run date."""
    spark.sql(LATEST_VIEW_SQL.format(view=conf.require("tables.latest_recommendations"),
                                     table=conf.require("tables.recommendations")))
