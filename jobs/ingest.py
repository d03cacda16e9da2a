"""`lakerec ingest`: MovieLens-100K into the source tables (users, items, interactions)."""
from __future__ import annotations

from lakerec.runs import recorded_run
from lakerec.sources import movielens
from lakerec.sources.schema import ROLES, mapping
from lakerec.sources.store import current_fingerprint, write_warehouse



def run(spark, conf, run_date, force: bool = False):
    with recorded_run(spark, conf, "ingest", run_date) as run:
        fingerprint = movielens.fingerprint()
        if not force and current_fingerprint(spark, conf) == fingerprint:
            run.metrics["skipped"] = "tables already hold this dataset (use --force to rewrite)"
        else:
            frames = movielens.load(spark, movielens.fetch(conf.cache_dir))
            write_warehouse(frames, conf, fingerprint)
        for role in ROLES:
            count = spark.table(mapping(conf, role)[0]).count()
            run.metrics[role] = count
            run.rows_out += count
        run.rows_in = run.rows_out  # ingest copies every row; bad ones are quarantined downstream
        return run
