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


def write_warehouse(frames: dict[str, DataFrame], conf: Conf, fingerprint: str) -> dict[str, str]:
    """Overwrite each source table (one commit each) and stamp the fingerprint; role -> table."""
    written = {}
    for role in ROLES:
        table, _ = mapping(conf, role)
        df = to_warehouse_names(frames[role], conf, role)
        overwrite(df, table)
        df.sparkSession.sql(f"ALTER TABLE {table} SET TBLPROPERTIES ('{FINGERPRINT_PROPERTY}' = '{fingerprint}')")
        written[role] = table
    return written
