"""Synthetic warehouse: same schema as MovieLens, deterministic, skewed popularity, sessions in time."""
import datetime as dt

from pyspark.sql import functions as F

from jobs import generate, textualize
from lakerec.sources import synthetic
from tests.warehouse_fixtures import conf_for

RUN_DATE = dt.date(2026, 1, 1)


def test_generate_then_textualize(spark, base_conf):
    conf = conf_for(base_conf, "synth")
    run = generate.run(spark, conf, RUN_DATE, users=300, items=200, seed=7, mean_interactions=20)
    users, items, inter = (spark.table(f"synth.{t}") for t in ("users", "items", "interactions"))
    assert users.count() == 300 and items.count() == 200
    n = inter.count()
    assert 300 * 12 < n < 300 * 30
    assert dict(inter.dtypes) == {"user_id": "bigint", "item_id": "bigint", "rating": "float",
                                  "event_time": "timestamp"}
    assert dict(items.dtypes)["genres"] == "array<string>"
    assert inter.where(~F.col("item_id").between(1, 200)).count() == 0
    assert inter.agg(F.min("rating"), F.max("rating")).first() == (1.0, 5.0)
    # power-law popularity: the top 10% of items take a large share of the events
    counts = sorted((r["count"] for r in inter.groupBy("item_id").count().collect()), reverse=True)
    assert sum(counts[:20]) / n > 0.3
    # a second run with the same parameters is a no-op; the data is a pure function of the seed
    again = generate.run(spark, conf, RUN_DATE, users=300, items=200, seed=7, mean_interactions=20)
    assert "skipped" in again.metrics and again.rows_out == run.rows_out
    regenerated = synthetic.interactions(spark, 300, 200, 7, 20).repartition(5).select(*inter.columns)
    assert regenerated.exceptAll(inter).count() == 0 and inter.exceptAll(regenerated).count() == 0

    run = textualize.run(spark, conf, RUN_DATE)
    assert run.rows_out == 300 and run.rows_quarantined == 0
