"""Small helpers over the catalog and Delta tables: existence, versions, locations, and the write
patterns the jobs use: replace one slice atomically, append, overwrite, and (streaming) MERGE by key
under a Delta transaction id."""
from __future__ import annotations

import contextlib
import datetime as dt
import math

from typing import Optional

from lakerec.errors import StructuralError


def split_name(name: str) -> tuple[str, str]:
    if name.count(".") != 1:
        raise StructuralError(f"table name {name!r} must be of the form database.table")
    db, table = name.split(".")
    return db, table


def table_exists(spark, name: str) -> bool:
    return spark.catalog.tableExists(name)


def ensure_database(spark, name: str) -> None:
    db, _ = split_name(name)
    if not spark.catalog.databaseExists(db):
        spark.sql(f"CREATE DATABASE IF NOT EXISTS `{db}`")


def require_table(spark, name: str, role: str) -> None:
    if not table_exists(spark, name):
        raise StructuralError(f"table {name} ({role}) does not exist; check `source.{role}.table` "
                              "in conf or run `lakerec ingest` / `lakerec generate` first")


def describe(spark, name: str) -> dict[str, str]:
    """The catalog's facts about a table (Type, Provider, Location, ...) from DESCRIBE TABLE EXTENDED:
    a metastore read, without the Delta log scan that DESCRIBE DETAIL does (seconds per table)."""
    facts = {}
    for row in spark.sql(f"DESCRIBE TABLE EXTENDED {name}").collect():
        facts[row.col_name] = row.data_type      # the detailed section comes last: it wins over column names
    return facts


def is_delta(spark, name: str) -> bool:
    try:
        return (describe(spark, name).get("Provider") or "").lower() == "delta"
    except Exception:  # a table that does not exist is not a Delta table
        return False


def latest_version(spark, name: str) -> int:
    """The latest committed version of a table known to be Delta."""
    return int(spark.sql(f"DESCRIBE HISTORY {name} LIMIT 1").first()["version"])


def delta_version(spark, name: str) -> Optional[int]:
    """The latest committed version of a Delta table, None for other formats."""
    return latest_version(spark, name) if is_delta(spark, name) else None


def local_path(uri: str) -> str:
    """A file: URI as a local path, any other URI unchanged."""
    return uri[len("file:"):] if uri.startswith("file:") else uri


def location(spark, name: str) -> str:
    """Storage location as a local path for file: URIs, the URI otherwise."""
    return local_path(describe(spark, name)["Location"])


def read_at_version(spark, name: str, version: Optional[int]):
    """Read a table pinned to one Delta version, so every step of a job sees the same snapshot."""
    if version is None:
        return spark.table(name)
    return spark.sql(f"SELECT * FROM {name} VERSION AS OF {int(version)}")


def with_comments(df, docs: dict[str, str] | None):
    """Attach column documentation; written as column comments when the table is created, so
    `DESCRIBE TABLE` shows it to analysts."""
    if not docs:
        return df
    from pyspark.sql import functions as F
    return df.select(*[F.col(f"`{c}`").alias(c, metadata={"comment": docs[c]}) if c in docs else F.col(f"`{c}`")
                       for c in df.columns])


def sql_literal(value) -> str:
    """A Spark SQL literal for a date, timestamp, number or string (quotes and backslashes escaped)."""
    if isinstance(value, dt.datetime):
        return f"TIMESTAMP '{value.isoformat(sep=' ')}'"
    if isinstance(value, dt.date):
        return f"DATE '{value.isoformat()}'"
    if isinstance(value, int) and not isinstance(value, bool) or isinstance(value, float) and math.isfinite(value):
        return repr(value)
    if isinstance(value, str):
        return f"'{sql_string(value)}'"
    raise TypeError(f"no SQL literal for {type(value).__name__} {value!r}")


def slice_predicate(where: dict) -> str:
    """`col = literal AND ...` for a slice given as {column: value}: the one place predicates are built."""
    if not where:
        raise ValueError("a slice needs at least one column (an empty predicate would replace the whole table)")
    return " AND ".join(f"`{column}` = {sql_literal(value)}" for column, value in where.items())


def replace_slice(df, name: str, where: dict, partition_by: list[str], docs: dict | None = None):
    """Atomically replace the slice `where` ({column: value}, e.g. run date and variant) with df (one
    Delta commit), creating the table on first use. Re-running with the same input leaves the same
    table: no duplicates, no half writes. Every row of df must belong to the slice (Delta checks)."""
    predicate = slice_predicate(where)
    spark = df.sparkSession
    ensure_database(spark, name)
    if table_exists(spark, name):
        # By path: a catalog `saveAsTable` in overwrite mode would be a REPLACE TABLE.
        # mergeSchema: columns added by a newer LakeRec version are added to the table (additive evolution).
        (df.write.format("delta").mode("overwrite").option("replaceWhere", predicate).option("mergeSchema", "true")
         .save(location(spark, name)))
        return
    writer = with_comments(df, docs).write.format("delta")
    writer = writer.partitionBy(*partition_by) if partition_by else writer
    writer.mode("errorifexists").saveAsTable(name)


def sql_string(text: str) -> str:
    """Escape text for a single-quoted Spark SQL literal."""
    return text.replace("\\", "\\\\").replace("'", "\\'")


def create_table_if_missing(spark, name: str, schema, partition_by: list[str], docs: dict[str, str],
                            properties: dict[str, str]) -> None:
    """CREATE TABLE IF NOT EXISTS from a DataFrame schema, with column comments and table
    properties (e.g. delta.enableChangeDataFeed, which must be set when the table is created)."""
    ensure_database(spark, name)
    if table_exists(spark, name):
        return
    columns = ",\n  ".join(f"`{f.name}` {f.dataType.simpleString()}"
                            + (f" COMMENT '{sql_string(docs[f.name])}'" if f.name in docs else "") for f in schema.fields)
    props = ", ".join(f"'{k}' = '{v}'" for k, v in properties.items())
    partition = f" PARTITIONED BY ({', '.join(partition_by)})" if partition_by else ""
    spark.sql(f"CREATE TABLE IF NOT EXISTS {name} (\n  {columns}\n) USING DELTA{partition}"
              + (f" TBLPROPERTIES ({props})" if props else ""))


def append(df, name: str, docs: dict | None = None):
    spark = df.sparkSession
    ensure_database(spark, name)
    if not table_exists(spark, name):
        df = with_comments(df, docs)
    df.write.format("delta").mode("append").option("mergeSchema", "true").saveAsTable(name)   # additive evolution


def overwrite(df, name: str):
    """Replace a whole table in one commit (source tables written by ingest/generate)."""
    spark = df.sparkSession
    ensure_database(spark, name)
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").saveAsTable(name)


TXN_APP_ID = "spark.databricks.delta.write.txnAppId"
TXN_VERSION = "spark.databricks.delta.write.txnVersion"


@contextlib.contextmanager
def transaction_id(spark, app_id: str, version: int):
    """Delta writes inside carry (txnAppId, txnVersion): Delta skips a write whose pair it has already
    committed (a streaming micro-batch replayed after a crash)."""
    spark.conf.set(TXN_APP_ID, app_id)
    spark.conf.set(TXN_VERSION, str(version))
    try:
        yield
    finally:
        spark.conf.unset(TXN_APP_ID)
        spark.conf.unset(TXN_VERSION)


def _on_keys(keys: list[str]) -> str:
    return " AND ".join(f"t.`{key}` = s.`{key}`" for key in keys)


def merge_upsert(spark, name: str, rows, keys: list[str], delete_when: str | None = None,
                 insert_when: str | None = None) -> None:
    """MERGE rows into the table by `keys`: a matched row is deleted where `delete_when` holds (a SQL
    condition on the source row `s`) and replaced otherwise; an unmatched one is inserted where
    `insert_when` holds. Columns the rows add join the table (additive evolution)."""
    from delta.tables import DeltaTable
    merge = DeltaTable.forName(spark, name).alias("t").merge(rows.alias("s"), _on_keys(keys)).withSchemaEvolution()
    if delete_when:
        merge = merge.whenMatchedDelete(condition=delete_when)
    merge.whenMatchedUpdateAll().whenNotMatchedInsertAll(condition=insert_when).execute()


def merge_insert_missing(spark, name: str, rows, keys: list[str]) -> None:
    """Insert the rows whose `keys` are not in the table yet (a row seen again is kept once)."""
    from delta.tables import DeltaTable
    DeltaTable.forName(spark, name).alias("t").merge(rows.alias("s"), _on_keys(keys)).whenNotMatchedInsertAll().execute()
