"""Writes a whole source warehouse (users, items, interactions) through the column mapping, and
skips the work when the tables already hold the same data (a fingerprint table property)."""
from __future__ import annotations

from pyspark.sql import DataFrame

from lakerec.config import Conf
from lakerec.sources.schema import ROLES, mapping, to_warehouse_names
from lakerec.tables import overwrite, table_exists

FINGERPRINT_PROPERTY = "lakerec.source.fingerprint"


def current_fingerprint(spark, conf: Conf) -> str | None:
    """The fingerprint shared by all three tables, or None if any is missing or differs."""
    seen = set()
    for role in ROLES:
        table, _ = mapping(conf, role)
        if not table_exists(spark, table):
            return None
        props = {r["key"]: r["value"] for r in spark.sql(f"SHOW TBLPROPERTIES {table}").collect()}
        seen.add(props.get(FINGERPRINT_PROPERTY))
    return seen.pop() if len(seen) == 1 else None


def write_warehouse(frames: dict[str, DataFrame], conf: Conf, fingerprint: str) -> None:
    """Overwrite each source table (one commit each) and stamp the fingerprint."""
    for role in ROLES:
        table, _ = mapping(conf, role)
        df = to_warehouse_names(frames[role], conf, role)
        overwrite(df, table)
        df.sparkSession.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ('{FINGERPRINT_PROPERTY}' = '{fingerprint}')")


def load_warehouse(spark, conf: Conf, run, fingerprint: str, make_frames, force: bool = False) -> None:
    """The body of `ingest` and `generate`: unless the tables already carry `fingerprint` (or
    `force`), overwrite them with `make_frames()`; then count every table into `run`."""
    if not force and current_fingerprint(spark, conf) == fingerprint:
        run.metrics["skipped"] = "tables already hold this dataset (use --force to rewrite)"
    else:
        write_warehouse(make_frames(), conf, fingerprint)
    for role in ROLES:
        count = spark.table(mapping(conf, role)[0]).count()
        run.metrics[role] = count
        run.rows_out += count
