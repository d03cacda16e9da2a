"""`lakerec validate`: check the source tables; bad rows go to the quarantine table."""
from __future__ import annotations

from lakerec.progress import spark_progress
from lakerec.runs import recorded_run
from lakerec.validate import validated_sources


def run(spark, conf, run_date):
    with recorded_run(spark, conf, "validate", run_date) as run, spark_progress(spark, "validate"):
        with validated_sources(spark, conf, run, "validate"):
            run.rows_out = run.rows_in - run.rows_quarantined
        return run
