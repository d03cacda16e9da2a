"""`lakerec generate`: a seeded synthetic warehouse of any size, generated in parallel by Spark."""
from __future__ import annotations

from lakerec.progress import spark_progress
from lakerec.runs import recorded_run
from lakerec.sources import synthetic
from lakerec.sources.store import load_warehouse


def run(spark, conf, run_date, users: int, items: int, seed: int, mean_interactions: float,
        force: bool = False):
    def frames():
        return {"users": synthetic.users(spark, users, seed),
                "items": synthetic.items(spark, items, seed),
                "interactions": synthetic.interactions(spark, users, items, seed, mean_interactions)}

    with recorded_run(spark, conf, "generate", run_date) as run, spark_progress(spark, "generate"):
        load_warehouse(spark, conf, run, synthetic.fingerprint(users, items, seed, mean_interactions),
                       frames, force)
        return run
