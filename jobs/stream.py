"""`lakerec stream [--trigger available-now|processing-time=INTERVAL]`: re-score the users whose
interactions arrived since the last run and MERGE them into recs.user_recommendations_live
(lakerec/streaming.py). available-now (default) catches up and stops: schedule it; processing-time
runs until stopped."""
from __future__ import annotations

from lakerec import streaming
from lakerec.runs import recorded_run


def run(spark, conf, run_date, trigger="available-now"):
    with recorded_run(spark, conf, "stream", run_date) as run:
        query = streaming.start(spark, conf, trigger)
        query.awaitTermination()
        progress = query.recentProgress
        run.rows_in = sum(int(p.get("numInputRows", 0)) for p in progress)
        run.metrics.update(batches=len([p for p in progress if p.get("numInputRows")]),
                           checkpoint=streaming.checkpoint_dir(conf), live_table=conf.require("tables.live_recommendations"))
        return run
