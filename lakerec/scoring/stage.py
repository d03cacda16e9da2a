"""The scoring job's Spark stage: every prompts row scored on the executors by `mapInPandas` over
`rec_udf.scoring_udf.score_frames`, persisted, with the counters the metrics report (model loads
per worker process and provider; explanations by source). Nothing is written here."""
from __future__ import annotations

import functools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyspark import StorageLevel
from pyspark.accumulators import AccumulatorParam
from pyspark.sql import DataFrame, functions as F

from lakerec.config import Conf
from lakerec.errors import ConfigError
from lakerec.scoring.bundle_choice import bundle_for, explainer_mode, require_explainer
from lakerec.scoring.shipping import ship
from lakerec.sources.schema import read_source
from lakerec.validate import shorten, title_limit
from rec_udf.errors import BundleError
from rec_udf.manifest import Manifest
from rec_udf.scoring_udf import SCORED_SCHEMA, BundleRef, ScoringSpec, score_frames


class _CountsParam(AccumulatorParam):
    """Accumulator of {key: count} dictionaries (model loads per worker process and provider)."""

    def zero(self, value):
        return {}

    def addInPlace(self, a, b):
        for key, count in b.items():
            a[key] = a.get(key, 0) + count
        return a


def worker_bundle_error(exc: Exception) -> BundleError | None:
    """A BundleError raised in an executor's Python worker arrives wrapped in Spark's exception with
    the worker's traceback; give the user its one-line message instead (the CLI exits 2 on it)."""
    marker = "rec_udf.errors.BundleError: "
    text = str(exc)
    if marker not in text:
        return None
    return BundleError(text.split(marker, 1)[1].splitlines()[0] + " (raised on an executor)")


def require_worker_reuse(spark) -> None:
    if spark.sparkContext.getConf().get("spark.python.worker.reuse", "true").lower() != "true":
        raise ConfigError("spark.python.worker.reuse is false: every task would start a Python worker and "
                          "load the model again; set it to true")


def scoring_spec(conf: Conf, ref: BundleRef, blocked, loads, explained=None) -> ScoringSpec:
    """What every scoring task gets: the `score` settings, typed, and where the bundle is."""
    score = conf.settings.score
    return ScoringSpec(
        ref, top_k=score.top_k, explain_k=score.explain_top_k, explainer=explainer_mode(conf),
        max_new_tokens=score.max_new_tokens, explain_batch_size=score.explain_batch_size,
        explain_attempts=score.explain_attempts,
        batch_size=None if score.batch_size == "auto" else score.batch_size,       # auto: the worker's bundle decides
        device=score.device, allow_cpu_fallback=score.allow_cpu_fallback, blocked=blocked, loads=loads,
        explained=explained)


# auto: how many times spark.default.parallelism the tasks are while the explainer LLM runs. Not A/B
# tested against 1x on one model: with it, the 2026-12-06 explanation row set ran at 1.02x the bare
# model (bench/README.md); each task ends on one short explainer batch, the price of the balance
LLM_TASK_FACTOR = 4


def scoring_partitions(conf: Conf, parallelism: int) -> int:
    """score.partitions, or for auto (and null, its older spelling): `parallelism` (spark.default.parallelism)
    tasks when ranking alone, and LLM_TASK_FACTOR times that when the explainer LLM writes sentences: a
    task then runs for minutes, its length varying with how many sentences the check sends back, and
    with few tasks the job waits on the slowest while the other cores idle."""
    setting = conf.settings.score.partitions
    if setting not in (None, "auto"):
        return setting
    return parallelism * (LLM_TASK_FACTOR if explainer_mode(conf) == "llm" else 1)


@dataclass
class ScoredBatch:
    """Every user of a prompts DataFrame scored by one model (persisted until `release`)."""
    rows: DataFrame               # SCORED_SCHEMA
    items: DataFrame              # item_id, title of the items that may be recommended
    version: str
    bundle_dir: Path
    manifest: Manifest
    ref: BundleRef
    loads: dict                   # {"pid:provider": loads}
    explained: dict               # {"llm_first_attempt" | "llm_later_attempt" | "fallback": explanations}
    stats: dict
    seconds: float
    partitions: int               # scoring tasks (score.partitions, resolved)

    def release(self) -> None:
        self.rows.unpersist()

    def metrics(self) -> dict:
        users = self.stats["users"] or 0
        return dict(model_version=self.version, bundle=str(self.bundle_dir), bundle_sha256=self.ref.sha256,
                    precision=self.manifest.precision, users=users,
                    users_per_s=round(users / max(self.seconds, 1e-9), 2),
                    prompt_tokens_per_s=round((self.stats["tokens"] or 0) / max(self.seconds, 1e-9), 1),
                    partitions=self.partitions, ship="archive" if self.ref.archive else "shared",
                    model_loads=sum(self.loads.values()), workers=len({k.split(":")[0] for k in self.loads}),
                    loads_per_worker=self.loads, providers=sorted({k.split(":", 1)[1] for k in self.loads}),
                    explanations=self.explained)


def score_prompts(spark, conf: Conf, prompts: DataFrame, model: str) -> ScoredBatch:
    """Run the model over prompts-table rows on the executors; nothing is written."""
    require_worker_reuse(spark)
    version, bundle_dir, manifest = bundle_for(conf, model, dict(spark.sparkContext.getConf().getAll()))
    require_explainer(conf, bundle_dir, manifest)
    # one row per item id (validation quarantines duplicates; scoring must not multiply rows by them)
    items = (read_source(spark, conf, "items").df.where(F.col("item_id").isNotNull())
             .select("item_id", shorten("title", title_limit(conf)).alias("title"))
             .dropDuplicates(["item_id"]))
    # Catalogue items no longer in the items table: one mask for the whole job, in the bundle's order.
    allowed = np.array([r.item_id for r in items.select("item_id").collect()], dtype=np.int64)
    blocked = ~np.isin(np.load(bundle_dir / manifest.items.ids), allowed)
    ref = ship(spark, conf, bundle_dir)
    loads = spark.sparkContext.accumulator({}, _CountsParam())
    explained = spark.sparkContext.accumulator({}, _CountsParam())
    spec = scoring_spec(conf, ref, blocked, loads, explained)
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(conf.settings.score.arrow_max_records_per_batch))
    partitions = scoring_partitions(conf, spark.sparkContext.defaultParallelism)
    columns = ["user_id", "prompt", "entity_spans", "sequence_item_ids", "seen_item_ids"]
    columns += ["sequence_ratings"] if "sequence_ratings" in prompts.columns else []   # older prompts tables lack it
    start = time.perf_counter()
    rows = (prompts.select(*columns).repartition(partitions, "user_id")
            .mapInPandas(functools.partial(score_frames, spec=spec), SCORED_SCHEMA)
            .persist(StorageLevel.MEMORY_AND_DISK))
    try:
        stats = rows.agg(F.countDistinct("user_id").alias("users"),
                         F.count(F.when(F.col("error").isNull(), 1)).alias("rows"),
                         F.countDistinct(F.when(F.col("error").isNotNull(), F.col("user_id"))).alias("bad"),
                         F.sum(F.when(F.col("rank") == 1, F.col("prompt_tokens"))).alias("tokens")).first().asDict()
    except Exception as exc:
        rows.unpersist()
        raise worker_bundle_error(exc) or exc
    return ScoredBatch(rows, items, version, bundle_dir, manifest, ref, dict(loads.value), dict(explained.value),
                       stats, time.perf_counter() - start, partitions)
