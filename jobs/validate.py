"""`lakerec validate`: check the source tables; bad rows go to the quarantine table."""
from __future__ import annotations

from lakerec.runs import recorded_run
from lakerec.sources.schema import read_sources
from lakerec.validate import validate, write_quarantine


def run(spark, conf, run_date):
    with recorded_run(spark, conf, "validate", run_date) as run:
        sources = read_sources(spark, conf)          # structural checks: before any write
        checked = validate(sources, conf)
        try:
            run.rows_in = sum(df.count() for df in checked.flagged.values())
            run.rows_quarantined = write_quarantine(checked, conf, "validate", run.run_id, run_date)
            run.rows_out = run.rows_in - run.rows_quarantined
            run.metrics["input_table_versions"] = {s.table: s.version for s in sources.values()}
        finally:
            checked.release()
        return run
