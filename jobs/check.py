"""`lakerec check --run-date D [--variant NAME]`: data-quality checks on the scored slice (exit 2 when
one fails). The nightly DAG's last task."""
from __future__ import annotations

from lakerec import quality
from lakerec.runs import recorded_run


def run(spark, conf, run_date, variant="default"):
    with recorded_run(spark, conf, "check", run_date) as run:
        print(f"[check] {conf.require('tables.recommendations')} run_date {run_date} variant {variant}:")
        quality.check(spark, conf, run, variant)
        return run
