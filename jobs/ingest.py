"""`lakerec ingest`: MovieLens-100K into the source tables (users, items, interactions)."""
from __future__ import annotations

from lakerec.runs import recorded_run
from lakerec.sources import movielens
from lakerec.sources.store import load_warehouse


def run(spark, conf, run_date, force: bool = False):
    with recorded_run(spark, conf, "ingest", run_date) as run:
        load_warehouse(spark, conf, run, movielens.fingerprint(),
                       lambda: movielens.load(spark, movielens.fetch(conf.cache_dir)), force)
        run.rows_in = run.rows_out  # ingest copies every row; bad ones are quarantined downstream
        return run
