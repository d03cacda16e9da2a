"""The scoring job's driver side: which bundle, how executors get it, which prompts, and the
recommendation tables it writes. The per-row work runs on executors in `rec_udf.scoring_udf`.

Order of work, so that nothing is half-written: resolve and verify the bundle, read the prompts at a
pinned Delta version, score every user (persisted), and only then replace the output slice and the
quarantine slice, each in one Delta commit.
"""
from __future__ import annotations

import datetime as dt
import functools
import os
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pyspark import StorageLevel
from pyspark.accumulators import AccumulatorParam
from pyspark.sql import DataFrame, functions as F

from lakerec import ab
from lakerec.config import Conf
from lakerec.errors import ConfigError, StructuralError
from lakerec.model.registry import Registry
from lakerec.sources.schema import read_source
from lakerec.tables import create_table_if_missing, delta_version, read_at_version, replace_slice, table_exists
from lakerec.validate import QUARANTINE_COLUMNS_DOC, shorten, title_limit
from rec_udf import bundle as bundle_format
from rec_udf.errors import BundleError
from rec_udf.explanations import EXPLAINER_PROMPT_VERSION
from rec_udf.manifest import Manifest
from rec_udf.scoring_udf import EXPLAINERS, SCORED_SCHEMA, BundleRef, ScoringSpec, score_frames

DEFAULT_VARIANT = "default"
RECS_COLUMNS_DOC = {
    "user_id": "user id",
    "rank": "1 = best; ranks are dense from 1 to top_k",
    "item_id": "recommended item (never one already in the user's history; always in the items table)",
    "item_title": "the item's title from the items table at scoring time",
    "score": "the hybrid ranking score: SASRec's logit + lm_weight x the LM's cosine / temperature (higher is "
             "better; comparable within one model version only)",
    "explanation": "why the item suits the user, for the first score.explain_top_k ranks (null below them): one "
                   "sentence from the explainer LLM that passed the faithfulness check, or the data-built sentence",
    "explanation_source": "llm (the explainer's sentence passed the check) or fallback (the data-built sentence: "
                          "the LLM's failed the check, or score.explainer is template); null without an explanation",
    "evidence_item_ids": "the history items the explanation may cite: the user's items closest to the recommended "
                         "one in the ranking model's item space (liked ones first)",
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


class _CountsParam(AccumulatorParam):
    """Accumulator of {key: count} dictionaries (model loads per worker process and provider)."""

    def zero(self, value):
        return {}

    def addInPlace(self, a, b):
        for key, count in b.items():
            a[key] = a.get(key, 0) + count
        return a


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


def model_for(conf: Conf, variant: str | None, model: str | None) -> str:
    """--model wins; then the variant's model in conf `ab.variants`; then `score.model`."""
    if model:
        return model
    if variant and variant != DEFAULT_VARIANT:
        models = {v.name: v.model for v in ab.variants(conf)}
        if variant not in models:
            raise ConfigError(f"variant {variant!r} is not in conf ab.variants ({', '.join(models)})")
        return models[variant]
    return str(conf.get("score.model"))


def bundle_for(conf: Conf, model: str) -> tuple[str, Path, Manifest]:
    """(version, bundle directory, manifest) for a registered version, verified on the driver."""
    registry = Registry.from_conf(conf)
    version = registry.resolve(model).name
    precision = conf.get("score.precision")
    directory = registry.bundle_dir(version, precision)
    if not directory.exists():
        raise ConfigError(f"no {precision} bundle for model {version} at {directory}; run "
                          f"`lakerec export --model {version} --precision {precision}`")
    return version, directory, bundle_format.verify(directory)


def archive(bundle_dir: Path, sha: str, shipping_dir: Path) -> Path:
    """The bundle as one uncompressed tar named by its manifest hash (built once, reused)."""
    path = shipping_dir / f"lakerec-bundle-{sha[:16]}.tar"
    try:
        os.utime(path)          # last use: `lakerec maintain` deletes archives unused for a while
        return path
    except FileNotFoundError:
        pass
    shipping_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with tarfile.open(tmp, "w") as tar:
        for file in sorted(bundle_dir.rglob("*")):
            if file.is_file():
                tar.add(file, arcname=str(file.relative_to(bundle_dir)))
    tmp.rename(path)
    return path


def ship(spark, conf: Conf, bundle_dir: Path) -> BundleRef:
    """score.ship = archive: SparkContext.addArchive, unpacked once per executor (by path, never
    as bytes in a closure or broadcast); shared: a directory every executor can read."""
    sha = bundle_format.sha256(bundle_dir / bundle_format.MANIFEST)
    mode = conf.get("score.ship")
    if mode == "shared":
        return BundleRef(sha, path=str(bundle_dir))
    if mode != "archive":
        raise ConfigError(f"score.ship must be archive or shared, not {mode!r}")
    path = archive(bundle_dir, sha, conf.cache_dir / "shipping")
    sc = spark.sparkContext
    if not any(uri.endswith("/" + path.name) for uri in sc.listArchives):
        sc.addArchive(str(path))
    return BundleRef(sha, archive=path.name)


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


def explainer_mode(conf: Conf) -> str:
    mode = str(conf.get("score.explainer"))
    if mode not in EXPLAINERS:
        raise ConfigError(f"score.explainer must be one of {', '.join(EXPLAINERS)}, not {mode!r}")
    return "off" if int(conf.get("score.explain_top_k")) == 0 else mode


def require_explainer(conf: Conf, bundle_dir: Path, manifest: Manifest) -> None:
    """score.explainer llm needs a bundle that carries the explainer (checked before any scoring)."""
    if explainer_mode(conf) != "llm":
        return
    if not manifest.explainer:
        raise BundleError(f"{bundle_dir / bundle_format.MANIFEST}: this bundle has no explainer, and "
                          "score.explainer is llm; re-export it (`lakerec export --force`) or set "
                          "score.explainer to template or off")
    version = manifest.explainer.prompt_version
    if version != EXPLAINER_PROMPT_VERSION:
        raise BundleError(f"{bundle_dir / bundle_format.MANIFEST}: explainer.prompt_version is {version!r}, this "
                          f"LakeRec writes explainer prompts version {EXPLAINER_PROMPT_VERSION!r}; re-export the "
                          "bundle (`lakerec export --force`)")


def scoring_spec(conf: Conf, ref: BundleRef, blocked, loads, explained=None) -> ScoringSpec:
    score = conf.settings.score
    return ScoringSpec(
        ref, top_k=score.top_k, explain_k=score.explain_top_k, explainer=explainer_mode(conf),
        max_new_tokens=score.max_new_tokens, batch_size=score.batch_size, explain_batch_size=score.explain_batch_size,
        device=score.device, allow_cpu_fallback=score.allow_cpu_fallback, blocked=blocked, loads=loads,
        explained=explained)


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
    return scored.where(F.col("error").isNotNull()).select(
        F.lit(run_date).cast("date").alias("run_date"), F.lit(job).alias("job"), F.lit(run_id).alias("run_id"),
        F.lit(prompts_table).alias("source_table"), F.col("error").alias("reason"),
        F.to_json(F.struct("user_id", "prompt_tokens")).alias("row_json"), F.current_timestamp().alias("detected_at"))


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

    def release(self) -> None:
        self.rows.unpersist()

    def metrics(self) -> dict:
        users = self.stats["users"] or 0
        return dict(model_version=self.version, bundle=str(self.bundle_dir), bundle_sha256=self.ref.sha256,
                    precision=self.manifest.precision, users=users,
                    users_per_s=round(users / max(self.seconds, 1e-9), 2),
                    prompt_tokens_per_s=round((self.stats["tokens"] or 0) / max(self.seconds, 1e-9), 1),
                    model_loads=sum(self.loads.values()), workers=len({k.split(":")[0] for k in self.loads}),
                    loads_per_worker=self.loads, providers=sorted({k.split(":", 1)[1] for k in self.loads}),
                    explanations=self.explained)


def score_prompts(spark, conf: Conf, prompts: DataFrame, model: str) -> ScoredBatch:
    """Run the model over prompts-table rows on the executors; nothing is written."""
    require_worker_reuse(spark)
    version, bundle_dir, manifest = bundle_for(conf, model)
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
    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", str(conf.get("score.arrow_max_records_per_batch")))
    partitions = int(conf.get("score.partitions") or spark.sparkContext.defaultParallelism)
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
                       stats, time.perf_counter() - start)


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
