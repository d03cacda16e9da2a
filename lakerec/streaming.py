"""`lakerec stream`: keep `recs.user_recommendations_live` current as interactions arrive.

Structured Streaming reads new rows of the interactions Delta table (appends; commits that rewrite
rows are skipped, `skipChangeCommits`). Each micro-batch (foreachBatch) re-validates and
re-textualizes only the users it touches, scores them, and MERGEs their rows into the live table.

Exactly once across restarts: the checkpoint records which source versions were processed, and a
micro-batch that is replayed after a crash (MERGE committed, checkpoint not yet) is skipped by Delta
itself: the MERGE carries txnAppId/txnVersion = (the query's app id, the batch id). The MERGE is also
idempotent on its own (the same users' rows are replaced by the same key), so no duplicates either way.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
import uuid
from pathlib import Path

from pyspark.sql import DataFrame, functions as F

from lakerec import logs
from lakerec.config import Conf
from lakerec.prompts import build_prompts
from lakerec.scoring.output import create_recommendations_table, quarantine_rows, recommendation_rows
from lakerec.scoring.stage import score_prompts
from lakerec.sources.schema import mapping, read_sources
from lakerec.tables import append, merge_insert_missing, merge_upsert, sql_string, table_exists, transaction_id
from lakerec.validate import QUARANTINE_COLUMNS_DOC, quarantine_records, validate

LIVE_VARIANT = "live"
STREAM_JOB = "stream"


def checkpoint_dir(conf: Conf) -> str:
    return str(conf.settings.stream.checkpoint_dir or conf.warehouse_root / "_checkpoints" / "stream")


def touched_users(batch: DataFrame, conf: Conf) -> DataFrame:
    _, columns = mapping(conf, "interactions")
    return (batch.select(F.col(f"`{columns.get('user_id') or 'user_id'}`").try_cast("bigint").alias("user_id"))
            .where(F.col("user_id").isNotNull()).distinct())


def sources_for(spark, conf: Conf, users: DataFrame) -> dict:
    """The source tables as of now, restricted to the touched users (items stay whole: history and
    the catalogue need them)."""
    sources = read_sources(spark, conf)
    for role in ("users", "interactions"):
        read = sources[role]
        sources[role] = dataclasses.replace(read, df=read.df.join(users, "user_id", "left_semi"))
    return sources


def live_rows(spark, conf: Conf, users: DataFrame, run_date: dt.date,
              run_id: str) -> tuple[DataFrame, DataFrame, dict]:
    """(rows to MERGE: every (user, rank) of the touched users, item_id NULL where the rank is now
    empty; quarantine rows (validation and scoring); metrics), both persisted."""
    sources = sources_for(spark, conf, users)
    checked = validate(sources, conf)
    try:
        prompts = build_prompts(checked.good, conf, run_date, run_id,
                                {s.table: s.version for s in sources.values()}).persist()
        scored = score_prompts(spark, conf, prompts, conf.settings.stream.model or conf.settings.score.model)
        recs = recommendation_rows(scored.rows, scored.items, prompts, version=scored.version, variant=LIVE_VARIANT,
                                   input_version=None, run_id=run_id, run_date=run_date, holdout=False)
        top_k = conf.settings.score.top_k
        grid = users.crossJoin(spark.range(1, top_k + 1).select(F.col("id").cast("int").alias("rank")))
        rows = grid.join(recs, ["user_id", "rank"], "left").select(*recs.columns).persist()
        rows.count()
        bad = quarantine_records(checked, STREAM_JOB, run_id, run_date)
        bad = bad.unionByName(quarantine_rows(scored.rows, conf.require("source.interactions.table"), STREAM_JOB,
                                              run_id, run_date)).persist()
        bad.count()
        metrics = scored.metrics()
        scored.release()
        prompts.unpersist()
        return rows, bad, metrics
    finally:
        checked.release()


def merge_live(spark, table: str, rows: DataFrame, app_id: str, batch_id: int) -> None:
    """The touched users' ranks: replaced, deleted where a rank is now empty (item_id NULL), inserted."""
    with transaction_id(spark, app_id, batch_id):
        merge_upsert(spark, table, rows, ["user_id", "rank"], delete_when="s.item_id IS NULL",
                     insert_when="s.item_id IS NOT NULL")


def merge_quarantine(spark, table: str, bad: DataFrame, app_id: str, batch_id: int) -> None:
    """Insert the quarantine rows not already there (a bad row seen by many batches is kept once)."""
    if not table_exists(spark, table):
        append(bad.limit(0), table, QUARANTINE_COLUMNS_DOC)
    with transaction_id(spark, app_id, batch_id):
        merge_insert_missing(spark, table, bad, ["job", "source_table", "reason", "row_json"])


def process_batch(conf: Conf, batch: DataFrame, batch_id: int, app_id: str) -> None:
    spark = batch.sparkSession
    users = touched_users(batch, conf).persist()
    try:
        n_users = users.count()
        if n_users == 0:
            return
        run_date = dt.datetime.now(dt.timezone.utc).date()
        run_id = f"stream-{batch_id}-{uuid.uuid4().hex[:8]}"
        rows, bad, metrics = live_rows(spark, conf, users, run_date, run_id)
        table = conf.require("tables.live_recommendations")
        create_recommendations_table(spark, table, rows.schema)
        merge_live(spark, table, rows, app_id, batch_id)
        merge_quarantine(spark, conf.require("tables.quarantine"), bad, app_id, batch_id)
        rows.unpersist()
        bad.unpersist()
        logs.get(__name__).info(f"[stream] batch {batch_id}: {n_users} users re-scored with "
                                f"{metrics['model_version']} -> {table} ({metrics['users_per_s']} users/s)")
    finally:
        users.unpersist()


def query_app_id(checkpoint: str) -> str:
    """The streaming query's id, from its checkpoint: stable across restarts of this query, new for a
    new checkpoint (whose batch ids start again at 0, so they must not be compared with the old ones)."""
    return "lakerec-stream:" + json.loads((Path(checkpoint) / "metadata").read_text())["id"]


def start(spark, conf: Conf, trigger: str = "available-now"):
    """Start the query; `available-now` processes what is new and stops, `processing-time=30 seconds`
    runs until stopped."""
    source = conf.require("source.interactions.table")
    table = conf.require("tables.live_recommendations")
    checkpoint = checkpoint_dir(conf)
    reader = spark.readStream.format("delta").option("skipChangeCommits", "true")
    if conf.settings.stream.max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", conf.settings.stream.max_files_per_trigger)
    writer = (reader.table(source).writeStream.queryName(f"lakerec_stream_{sql_string(table).replace('.', '_')}")
              .foreachBatch(lambda batch, batch_id: process_batch(conf, batch, batch_id, query_app_id(checkpoint)))
              .option("checkpointLocation", checkpoint))
    if trigger == "available-now":
        writer = writer.trigger(availableNow=True)
    elif trigger.startswith("processing-time="):
        writer = writer.trigger(processingTime=trigger.split("=", 1)[1])
    else:
        raise ValueError(f"trigger must be available-now or processing-time=<interval>, not {trigger!r}")
    return writer.start()
