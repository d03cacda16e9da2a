"""`lakerec maintain`: OPTIMIZE and VACUUM LakeRec's tables, delete unused shipping archives
(lakerec/maintenance.py). The weekly DAG's last task; safe to run at any time, and again."""
from __future__ import annotations

from lakerec import maintenance
from lakerec.runs import recorded_run


def run(spark, conf, run_date):
    with recorded_run(spark, conf, "maintain", run_date) as run:
        tables = maintenance.maintain_tables(spark, conf)
        archives = maintenance.remove_old_archives(conf)
        run.rows_in = sum(t["files_before"] for t in tables.values())
        run.rows_out = sum(t["files_after"] for t in tables.values())
        run.metrics.update(tables=tables, archives_removed=archives)
        return run
