"""Offline A/B preparation: stable user -> variant assignment by a salted hash, and per-variant
offline metrics on the leave-one-out holdout with bootstrap confidence intervals.

Variants come from conf `ab.variants` in the order written, each with a `share` of users and the
`model` it scores with (`lakerec score --variant NAME`). The first variant is the baseline that the
others are compared with.
"""
from __future__ import annotations

import dataclasses
import datetime as dt

import numpy as np
from pyspark.sql import DataFrame, functions as F

from lakerec.config import Conf
from lakerec.errors import ConfigError, StructuralError
from lakerec.eval.groups import bootstrap_means
from lakerec.eval.metrics import ndcg_at
from lakerec.runs import Run
from lakerec.sources.schema import read_source
from lakerec.tables import replace_slice, table_exists

BUCKETS = 1_000_000
ASSIGNMENTS_COLUMNS_DOC = {
    "experiment": "experiment name (conf ab.experiment); partition column",
    "user_id": "user id",
    "variant": "assigned variant",
    "bucket": "the user's position in [0, 1) from the salted hash; variants own consecutive ranges",
    "salt": "hash salt: the same salt always gives the same assignment",
    "run_id": "the run that wrote the row",
    "assigned_at": "when it was written (UTC)",
}
METRICS_COLUMNS_DOC = {
    "experiment": "experiment name; partition column",
    "run_date": "run date of the holdout prompts evaluated",
    "variant": "variant",
    "model_version": "model version the variant scored with",
    "metric": "ndcg@K or hr@K (leave-one-out: the user's last interaction is the target)",
    "value": "mean over the variant's users",
    "ci_low": "lower bound of the bootstrap confidence interval",
    "ci_high": "upper bound",
    "users": "users evaluated",
    "baseline": "the variant compared with (the first in conf ab.variants)",
    "diff": "value minus the baseline's value",
    "diff_ci_low": "bootstrap confidence interval of the difference (independent resampling of both groups)",
    "diff_ci_high": "upper bound",
    "confidence": "confidence level of the intervals",
    "n_bootstrap": "bootstrap resamples",
    "run_id": "the run that wrote the row",
    "computed_at": "when it was written (UTC)",
}


@dataclasses.dataclass(frozen=True)
class Variant:
    name: str
    share: float
    model: str


def variants(conf: Conf) -> list[Variant]:
    spec = conf.get("ab.variants") or {}
    if len(spec) < 2:
        raise ConfigError("conf ab.variants needs at least two variants (name: {share, model})")
    out = []
    for name, fields in spec.items():
        share = float((fields or {}).get("share", 0))
        if share <= 0:
            raise ConfigError(f"ab.variants.{name}.share must be > 0, not {share}")
        out.append(Variant(str(name), share, str((fields or {}).get("model", "champion"))))
    total = sum(v.share for v in out)
    if abs(total - 1.0) > 1e-6:
        raise ConfigError(f"ab.variants shares sum to {total}, not 1")
    return out


def experiment(conf: Conf) -> str:
    return str(conf.require("ab.experiment"))


def assignments(spark, conf: Conf, run_id: str) -> DataFrame:
    """Every valid user of the users table with its variant: bucket = xxhash64(salt, user_id) mapped
    to [0, 1); variant i owns [sum of earlier shares, + its share)."""
    salt = str(conf.require("ab.salt"))
    users = read_source(spark, conf, "users").df.where(F.col("user_id").isNotNull()).select("user_id").distinct()
    bucket = F.pmod(F.xxhash64(F.lit(salt), F.col("user_id")), F.lit(BUCKETS)) / F.lit(float(BUCKETS))
    chosen, upper = None, 0.0
    for v in variants(conf)[:-1]:
        upper += v.share
        condition = F.col("bucket") < F.lit(upper)
        chosen = F.when(condition, F.lit(v.name)) if chosen is None else chosen.when(condition, F.lit(v.name))
    chosen = chosen.otherwise(F.lit(variants(conf)[-1].name))
    return (users.withColumn("bucket", bucket)
            .select(F.lit(experiment(conf)).alias("experiment"), "user_id", chosen.alias("variant"), "bucket",
                    F.lit(salt).alias("salt"), F.lit(run_id).alias("run_id"),
                    F.current_timestamp().alias("assigned_at")))


def assign(spark, conf: Conf, run: Run) -> dict:
    rows = assignments(spark, conf, run.run_id)
    table = conf.require("tables.ab_assignments")
    replace_slice(rows, table, {"experiment": experiment(conf)}, ["experiment"],
                  ASSIGNMENTS_COLUMNS_DOC)
    counts = {r.variant: r.n for r in spark.table(table).where(F.col("experiment") == experiment(conf))
              .groupBy("variant").agg(F.count("*").alias("n")).collect()}
    run.rows_out = sum(counts.values())
    run.metrics.update(experiment=experiment(conf), users_per_variant=counts)
    return counts


def variant_users(spark, conf: Conf, variant: str) -> DataFrame:
    table = conf.require("tables.ab_assignments")
    if not table_exists(spark, table):
        raise StructuralError(f"{table} does not exist; run `lakerec ab assign` first")
    users = spark.table(table).where((F.col("experiment") == experiment(conf)) & (F.col("variant") == variant))
    if users.limit(1).count() == 0:
        raise StructuralError(f"{table} has no users in variant {variant!r} of experiment {experiment(conf)!r}; "
                              "run `lakerec ab assign` after changing ab.variants")
    return users.select("user_id")


def per_user_metrics(spark, conf: Conf, run_date: dt.date, variant: str, k: int) -> np.ndarray:
    """(users, 2) array of NDCG@k and HR@k from the variant's holdout recommendations."""
    recs = spark.table(conf.require("tables.holdout_recommendations")).where(
        (F.col("run_date") == F.lit(run_date)) & (F.col("variant") == variant))
    ranks = recs.groupBy("user_id").agg(
        F.min(F.when((F.col("item_id") == F.col("heldout_item_id")) & (F.col("rank") <= k), F.col("rank")))
        .alias("rank"))
    rows = ranks.collect()
    if not rows:
        raise StructuralError(f"no holdout recommendations for variant {variant!r} on {run_date}")
    rank = np.array([np.inf if r["rank"] is None else r["rank"] for r in rows], dtype=np.float64)
    return np.stack([ndcg_at(rank, k), (rank <= k).astype(np.float64)], axis=1)


def metric_rows(per_variant: dict[str, np.ndarray], models: dict[str, str], k: int, n_boot: int,
                confidence: float, seed: int) -> list[dict]:
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    names = list(per_variant)
    boots = {v: bootstrap_means(per_variant[v], n_boot, rng) for v in names}
    baseline = names[0]
    rows = []
    for v in names:
        for col, metric in enumerate((f"ndcg@{k}", f"hr@{k}")):
            values = per_variant[v][:, col]
            diffs = boots[v][:, col] - boots[baseline][:, col]
            rows.append({
                "variant": v, "model_version": models[v], "metric": metric, "value": float(values.mean()),
                "ci_low": float(np.quantile(boots[v][:, col], alpha)),
                "ci_high": float(np.quantile(boots[v][:, col], 1 - alpha)), "users": int(len(values)),
                "baseline": baseline, "diff": float(values.mean() - per_variant[baseline][:, col].mean()),
                "diff_ci_low": float(np.quantile(diffs, alpha)), "diff_ci_high": float(np.quantile(diffs, 1 - alpha)),
                "confidence": confidence, "n_bootstrap": n_boot})
    return rows


METRICS_SCHEMA = ("variant string, model_version string, metric string, value double, ci_low double, "
                  "ci_high double, users bigint, baseline string, diff double, diff_ci_low double, "
                  "diff_ci_high double, confidence double, n_bootstrap int")


def write_metrics(spark, conf: Conf, run: Run, rows: list[dict]) -> None:
    fields = [f.split(" ")[0] for f in METRICS_SCHEMA.split(", ")]
    df = spark.createDataFrame([tuple(r[f] for f in fields) for r in rows], METRICS_SCHEMA)
    df = df.select(F.lit(experiment(conf)).alias("experiment"), F.lit(run.run_date).cast("date").alias("run_date"),
                   *fields, F.lit(run.run_id).alias("run_id"), F.current_timestamp().alias("computed_at"))
    replace_slice(df, conf.require("tables.ab_metrics"),
                  {"experiment": experiment(conf), "run_date": run.run_date},
                  ["experiment"], METRICS_COLUMNS_DOC)
