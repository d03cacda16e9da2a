"""Builds the prompts table for a run date: each valid user's profile and chronological history
up to the end of that date, rendered by the shared textualizer on the executors."""
from __future__ import annotations

import datetime as dt
import functools

from pyspark.sql import DataFrame, functions as F

from lakerec.config import Conf
from lakerec.sources.schema import tie_order_column
from rec_udf.textualize_udf import PROMPT_SCHEMA, textualize_frames

PROMPTS_COLUMNS_DOC = {
    "user_id": "user id (canonical, bigint)",
    "run_date": "history includes interactions before the end of this date (UTC); partition column",
    "prompt": "the textualized profile and history",
    "entity_spans": "character span [start, end) of each history entity in `prompt`, oldest first",
    "history_item_ids": "item ids rendered in the prompt, oldest first (after the token budget)",
    "sequence_item_ids": "the newest textualize.max_history_items item ids, oldest first (the ID model's input)",
    "sequence_ratings": "the user's rating of each sequence item (null where unrated; explanations cite them)",
    "seen_item_ids": "every item in the user's valid history up to run_date (excluded at scoring)",
    "n_history_total": "number of valid interactions up to run_date",
    "n_history_kept": "number rendered in the prompt",
    "prompt_tokens": "pre-token count of the prompt (budget: textualize.max_prompt_tokens)",
    "template_name": "textualizer template name",
    "prompt_template_version": "textualizer template version",
    "template_hash": "hash of template name, version and spec",
    "input_table_versions": "Delta version read of each source table",
    "run_id": "the run that wrote the row (see the runs table)",
    "created_at": "when the row was written (UTC)",
}


def template_spec(conf: Conf) -> dict[str, str]:
    return {"item_noun_plural": conf.get("textualize.item_noun_plural"),
            "history_verb": conf.get("textualize.history_verb")}


HOLDOUT_COLUMNS_DOC = {
    "heldout_item_id": "the user's last interaction up to run_date, left out of the prompt (the test item)",
    "heldout_event_time": "its event time",
}


def build_prompts(good: dict[str, DataFrame], conf: Conf, run_date: dt.date, run_id: str,
                  input_versions: dict[str, int | None], holdout: bool = False) -> DataFrame:
    """One prompt per user. holdout: the leave-one-out protocol of the offline evaluation
    (lakerec.eval.split): users with 3+ interactions (the `textualize.holdout_users` lowest ids when
    set), each prompt without the user's last one, which is kept in `heldout_item_id`."""
    cutoff = dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time())
    max_items = int(conf.get("textualize.max_history_items"))
    events = (good["interactions"].where(F.col("event_time") < F.lit(cutoff))
              .join(good["items"].select("item_id", "title", "release_year", "genres"), "item_id"))
    # sort_array orders the structs by their first fields: event_time, the tie order, item_id.
    history = events.groupBy("user_id").agg(
        F.sort_array(F.collect_list(F.struct("event_time", tie_order_column().alias("tie"), "item_id", "title",
                                             "release_year", "genres", "rating"))).alias("all_history"))
    heldout = []
    if holdout:
        history = history.where(F.size("all_history") >= 3).select(
            "user_id", F.element_at("all_history", -1).alias("heldout"),
            F.slice("all_history", 1, F.size("all_history") - 1).alias("all_history"))
        sample = conf.get("textualize.holdout_users")
        if sample:      # the lowest user ids: the users a training report ranks (llm_train.rank_users)
            history = history.orderBy("user_id").limit(int(sample))
        heldout = [F.col("heldout.item_id").alias("heldout_item_id"),
                   F.col("heldout.event_time").alias("heldout_event_time")]
    history = history.select(
        "user_id", *heldout, F.sort_array(F.array_distinct(F.transform("all_history", lambda e: e["item_id"])))
        .alias("seen_item_ids"), F.size("all_history").alias("n_history"),
        F.when(F.size("all_history") > max_items, F.slice("all_history", -max_items, max_items))
         .otherwise(F.col("all_history")).alias("history"))
    profiles = good["users"].join(history.drop("heldout_item_id", "heldout_event_time"), "user_id",
                                  "inner" if holdout else "left")
    users = profiles.select(
        "user_id", "age", "gender", "occupation", "zip_code", "history",
        F.coalesce("seen_item_ids", F.array().cast("array<bigint>")).alias("seen_item_ids"),
        F.coalesce("n_history", F.lit(0)).alias("n_history"))
    render = functools.partial(textualize_frames, max_tokens=int(conf.get("textualize.max_prompt_tokens")),
                               max_items=max_items, spec=template_spec(conf))
    versions = F.create_map(*[x for role_table, version in sorted(input_versions.items())
                              for x in (F.lit(role_table), F.lit(version).cast("bigint"))])
    prompts = users.mapInPandas(render, PROMPT_SCHEMA)
    if holdout:     # the renderer sees users only; the held-out item joins back by user
        prompts = prompts.join(history.select("user_id", "heldout_item_id", "heldout_event_time"), "user_id")
    return prompts.select(
        "user_id", F.lit(run_date).cast("date").alias("run_date"), "prompt", "entity_spans",
        "history_item_ids", "sequence_item_ids", "sequence_ratings", "seen_item_ids", "n_history_total", "n_history_kept", "prompt_tokens",
        "template_name", "prompt_template_version", "template_hash",
        versions.alias("input_table_versions"), F.lit(run_id).alias("run_id"),
        F.current_timestamp().alias("created_at"), *(["heldout_item_id", "heldout_event_time"] if holdout else []))


def prompt_stats(prompts: DataFrame) -> dict:
    """What the run log records of one date's prompts: how many, the mean history items kept, the
    share of users whose history was cut to fit the token budget, and the mean prompt length."""
    stats = prompts.agg(
        F.count("*").alias("prompts"), F.avg("n_history_kept").alias("mean_kept"),
        F.avg((F.col("n_history_kept") < F.col("n_history_total")).cast("double")).alias("truncated"),
        F.avg("prompt_tokens").alias("mean_tokens")).first()
    return {"prompts": stats["prompts"], "mean_history_kept": round(stats["mean_kept"] or 0, 1),
            "share_truncated": round(stats["truncated"] or 0, 3),
            "mean_prompt_tokens": round(stats["mean_tokens"] or 0, 1)}
