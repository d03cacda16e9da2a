"""`lakerec generate`: a seeded synthetic warehouse of any size, generated in parallel by Spark."""
from __future__ import annotations

from lakerec.progress import spark_progress
from lakerec.runs import recorded_run
from lakerec.sources import synthetic
from lakerec.sources.schema import ROLES, mapping
from lakerec.sources.store import current_fingerprint, write_warehouse


def run(spark, conf, run_date, users: int, items: int, seed: int, mean_interactions: float,
        force: bool = False):
    with recorded_run(spark, conf, "generate", run_date) as run:
        fingerprint = synthetic.fingerprint(users, items, seed, mean_interactions)
        if not force and current_fingerprint(spark, conf) == fingerprint:
            run.metrics["skipped"] = "tables already hold this dataset (use --force to rewrite)"
        else:
            frames = {"users": synthetic.users(spark, users, seed),
                      "items": synthetic.items(spark, items, seed),
                      "interactions": synthetic.interactions(spark, users, items, seed, mean_interactions)}
            with spark_progress(spark, "generate"):
                write_warehouse(frames, conf, fingerprint)
        for role in ROLES:
            count = spark.table(mapping(conf, role)[0]).count()
            run.metrics[role] = count
            run.rows_out += count
        return run
