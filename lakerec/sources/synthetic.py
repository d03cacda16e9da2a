"""Seeded synthetic warehouse of any size, generated in parallel by Spark with the MovieLens
schema: power-law item popularity, per-user taste neighbourhoods, per-user sessions spread over
time, plausible titles and genres. Every random draw is a hash of (seed, row key, salt), so the
output does not depend on partitioning or on the number of executors."""
from __future__ import annotations

import datetime as dt
import math

from pyspark.sql import Column, DataFrame, functions as F

GENRES = ["Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
          "Thriller", "War", "Western"]
OCCUPATIONS = ["administrator", "artist", "doctor", "educator", "engineer", "entertainment",
               "executive", "healthcare", "homemaker", "lawyer", "librarian", "marketing", "none",
               "other", "programmer", "retired", "salesman", "scientist", "student", "technician",
               "writer"]
ADJECTIVES = ["Silent", "Broken", "Golden", "Last", "Hidden", "Crimson", "Endless", "Wild",
              "Lonely", "Burning", "Frozen", "Secret", "Midnight", "Electric", "Forgotten", "Iron",
              "Distant", "Savage", "Gentle", "Dark", "Bright", "Lost", "Velvet", "Stolen",
              "Restless", "Quiet", "Shattered", "Wandering", "Scarlet", "Hollow"]
NOUNS = ["River", "Empire", "Garden", "Stranger", "Kingdom", "Horizon", "Promise", "Shadow",
         "Harbor", "Witness", "Journey", "Mirror", "Frontier", "Summer", "Dragon", "Detective",
         "Island", "Letter", "Storm", "Voyage", "Heart", "Machine", "Station", "Circus",
         "Monument", "Orchard", "Signal", "Lantern", "Canyon", "Symphony"]
PLACES = ["", "", "", " of Paris", " of the North", " in Winter", " of Tomorrow", " at Dawn",
          " of the Sea", " in Tokyo", " of Mars", " Returns", " II", " III"]
EPOCH = dt.datetime(2015, 1, 1)
SPAN_S = 9 * 365 * 86400          # users start between 2015 and 2024
SESSION_LEN = 6                   # interactions per session
_PRIME = 1_000_000_007


def _uniform(seed: int, salt: str, *keys: Column) -> Column:
    """Deterministic uniform [0, 1) from a hash of the seed, a salt and the row's keys."""
    return F.pmod(F.xxhash64(F.lit(seed), F.lit(salt), *keys), F.lit(_PRIME)) / float(_PRIME)


def _pick(options: list[str], u: Column) -> Column:
    return F.element_at(F.array(*[F.lit(o) for o in options]),
                        (F.floor(u * len(options)) + 1).cast("int"))


def _partitions(rows: int, per_partition: int) -> int:
    return max(2, math.ceil(rows / per_partition))


def items(spark, n_items: int, seed: int) -> DataFrame:
    ids = spark.range(1, n_items + 1, numPartitions=_partitions(n_items, 200_000)).withColumnRenamed("id", "item_id")
    k = F.col("item_id")
    u = lambda salt: _uniform(seed, salt, k)  # noqa: E731
    title = F.concat(F.when(u("the") < 0.35, F.lit("The ")).otherwise(F.lit("")),
                     _pick(ADJECTIVES, u("adj")), F.lit(" "), _pick(NOUNS, u("noun")),
                     _pick(PLACES, u("place")))
    genres = F.array_distinct(F.filter(F.array(
        _pick(GENRES, u("g1")),
        F.when(u("has_g2") < 0.6, _pick(GENRES, u("g2"))),
        F.when(u("has_g3") < 0.25, _pick(GENRES, u("g3")))), lambda g: g.isNotNull()))
    return ids.select(k.cast("bigint").alias("item_id"), title.alias("title"),
                      (2024 - F.floor(90 * F.pow(u("year"), 2))).cast("int").alias("release_year"),
                      genres.alias("genres"))


def users(spark, n_users: int, seed: int) -> DataFrame:
    ids = spark.range(1, n_users + 1, numPartitions=_partitions(n_users, 50_000)).withColumnRenamed("id", "user_id")
    k = F.col("user_id")
    u = lambda salt: _uniform(seed, salt, k)  # noqa: E731
    return ids.select(
        k.cast("bigint").alias("user_id"),
        (13 + F.floor(60 * F.pow(u("age"), 1.4))).cast("int").alias("age"),
        F.when(u("gender") < 0.71, F.lit("M")).otherwise(F.lit("F")).alias("gender"),
        _pick(OCCUPATIONS, u("occupation")).alias("occupation"),
        F.lpad(F.floor(u("zip") * 99999).cast("string"), 5, "0").alias("zip_code"))


def interactions(spark, n_users: int, n_items: int, seed: int, mean_per_user: float) -> DataFrame:
    """~mean_per_user events per user (exponential, at least 5, at most 20x the mean)."""
    ids = spark.range(1, n_users + 1, numPartitions=_partitions(n_users, 50_000)).withColumnRenamed("id", "user_id")
    user = F.col("user_id")
    count = F.least(F.greatest(F.lit(5), F.floor(-mean_per_user * F.log(1 - _uniform(seed, "n", user)))),
                    F.lit(int(mean_per_user * 20))).cast("int")
    per_user = ids.select("user_id",
                          F.explode(F.sequence(F.lit(0), count - 1)).alias("k"),
                          F.floor(_uniform(seed, "taste", user) * n_items).alias("taste"),
                          (F.lit(EPOCH) + F.make_interval(secs=F.floor(_uniform(seed, "start", user) * SPAN_S)))
                          .alias("start"))
    k = F.col("k")
    u = lambda salt: _uniform(seed, salt, user, k)  # noqa: E731
    # Popularity rank ~ power law; 40% of events come from the user's taste neighbourhood.
    rank = F.when(u("from_taste") < 0.4, F.pmod(F.col("taste") + F.floor(u("near") * 50), F.lit(n_items)))
    rank = rank.otherwise(F.floor(F.pow(u("pop"), 3) * n_items))
    stride = _coprime_stride(n_items)
    item = F.pmod(rank * stride + seed, F.lit(n_items)) + 1      # scatter ranks over item ids
    session = F.floor(k / SESSION_LEN)
    offset_s = session * 7 * 86400 + F.floor(u("gap") * 3 * 86400) + (k % SESSION_LEN) * 1200
    return per_user.select(
        user.cast("bigint").alias("user_id"), item.cast("bigint").alias("item_id"),
        F.least(F.lit(5), 1 + F.floor(5 * F.pow(u("rating"), 0.6))).cast("float").alias("rating"),
        (F.col("start") + F.make_interval(secs=offset_s)).cast("timestamp").alias("event_time"))


def _coprime_stride(n: int) -> int:
    for stride in (7919, 104729, 1299709, 15485863):
        if math.gcd(stride, n) == 1:
            return stride
    return 1


def fingerprint(n_users: int, n_items: int, seed: int, mean_per_user: float) -> str:
    return f"synthetic:users={n_users},items={n_items},seed={seed},mean={mean_per_user:g},v1"
