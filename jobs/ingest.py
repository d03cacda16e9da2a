"""`lakerec ingest`: MovieLens-100K into the source tables (users, items, interactions)."""
from __future__ import annotations

from lakerec.runs import recorded_run
from lakerec.sources import movielens
from lakerec.sources.schema import ROLES, mapping
from lakerec.sources.store import current_fingerprint, write_warehouse

SCHEMAS = {
    "users": "user_id bigint, age int, gender string, occupation string, zip_code string",
    "items": "item_id bigint, title string, release_year int, genres array<string>",
    "interactions": "user_id bigint, item_id bigint, rating float, event_time timestamp",
}


def run(spark, conf, run_date, force: bool = False):
    with recorded_run(spark, conf, "ingest", run_date) as run:
        fingerprint = movielens.fingerprint()
        if not force and current_fingerprint(spark, conf) == fingerprint:
            run.metrics["skipped"] = "tables already hold this dataset (use --force to rewrite)"
        else:
            frames = movielens.load(movielens.fetch(conf.cache_dir))
            run.rows_in = sum(len(f) for f in frames.values())
            write_warehouse({role: spark.createDataFrame(frames[role], SCHEMAS[role]) for role in ROLES},
                            conf, fingerprint)
        for role in ROLES:
            count = spark.table(mapping(conf, role)[0]).count()
            run.metrics[role] = count
            run.rows_out += count
        return run
