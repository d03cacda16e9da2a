"""Canonical schema of the three source tables and the column mapping from conf.

Jobs never use warehouse column names directly: `read_source` checks the mapped table and
columns (structural problems raise StructuralError naming table and column) and returns a
DataFrame with canonical names and types. Writers use `to_warehouse_names` for the reverse.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from pyspark.sql import DataFrame, functions as F, types as T

from lakerec.config import Conf
from lakerec.errors import StructuralError
from lakerec.tables import delta_version, read_at_version, require_table

ROLES = ("users", "items", "interactions")


def tie_order_column(user: str = "user_id", item: str = "item_id"):
    """Spark's `rec_udf.textualizer.tie_order`: the order of a user's same-second events, CRC-32 of
    "user_id:item_id" (Spark's crc32 is zlib's). Every chronological order sorts by (event_time, this,
    item_id): the split, the training sequences, the prompts and so the sequences scored."""
    return F.crc32(F.concat_ws(":", F.col(user).cast("bigint").cast("string"), F.col(item).cast("bigint").cast("string")))

# role -> ordered {canonical column: (family, required)}
CANONICAL: dict[str, dict[str, tuple[str, bool]]] = {
    "users": {"user_id": ("id", True), "age": ("int", False), "gender": ("string", False),
              "occupation": ("string", False), "zip_code": ("string", False)},
    "items": {"item_id": ("id", True), "title": ("string", True), "release_year": ("int", False),
              "genres": ("genres", False)},
    "interactions": {"user_id": ("id", True), "item_id": ("id", True),
                     "event_time": ("timestamp", True), "rating": ("number", False)},
}
CANONICAL_TYPE = {"id": T.LongType(), "int": T.IntegerType(), "string": T.StringType(),
                  "genres": T.ArrayType(T.StringType()), "timestamp": T.TimestampType(),
                  "number": T.FloatType()}
_INTEGRAL = (T.ByteType, T.ShortType, T.IntegerType, T.LongType)
_NUMERIC = _INTEGRAL + (T.FloatType, T.DoubleType, T.DecimalType)
# A string column is accepted for every family: LakeRec parses it, and a value that does not parse is
# kept, raw, in a `_raw_<column>` column so that validation quarantines the row with it (a table
# typed by a permissive reader has already turned such values into nulls, without a trace).
_ACCEPTS = {
    "id": (_INTEGRAL + (T.StringType,), "an integer type (or a string of digits)"),
    "int": (_INTEGRAL + (T.StringType,), "an integer type (or a string of digits)"),
    "string": ((T.StringType,), "string"),
    "genres": ((T.ArrayType, T.StringType), "array<string> or a '|'-separated string"),
    "timestamp": ((T.TimestampType, T.TimestampNTZType, T.DateType, T.StringType),
                  "timestamp or date (or an ISO-8601 string)"),
    "number": (_NUMERIC + (T.StringType,), "a numeric type (or a numeric string)"),
}
RAW_PREFIX = "_raw_"


@dataclass(frozen=True)
class SourceRead:
    role: str
    table: str
    version: Optional[int]   # Delta version read; None for non-Delta tables
    df: DataFrame            # canonical column names and types (+ _raw_<column> for parsed strings)
    mapped: tuple[str, ...] = ()   # canonical columns the warehouse has (the rest are null)


def mapping(conf: Conf, role: str) -> tuple[str, dict[str, Optional[str]]]:
    """(table name, {canonical column: warehouse column or None})."""
    table = conf.require(f"source.{role}.table")
    columns = conf.get(f"source.{role}.columns") or {}
    unknown = set(columns) - set(CANONICAL[role])
    if unknown:
        raise StructuralError(f"conf source.{role}.columns maps unknown roles {sorted(unknown)}; "
                              f"known: {list(CANONICAL[role])}")
    return table, {canon: columns.get(canon) for canon in CANONICAL[role]}


def _check_type(table: str, column: str, family: str, dtype: T.DataType) -> None:
    accepted, described = _ACCEPTS[family]
    ok = isinstance(dtype, accepted)
    if family == "genres" and isinstance(dtype, T.ArrayType):
        ok = isinstance(dtype.elementType, T.StringType)
    if not ok:
        raise StructuralError(f"table {table}, column {column}: type {dtype.simpleString()}, "
                              f"expected {described}")


def _canonical_column(family: str, column: str):
    col = F.col(f"`{column}`")
    if family == "genres":
        return col  # strings are split by the caller, which knows the type
    return col.try_cast(CANONICAL_TYPE[family])    # null where a string does not parse (kept raw, below)


def canonicalize(df: DataFrame, table: str, role: str, columns: dict[str, Optional[str]]) -> DataFrame:
    """Check the mapped columns' presence and types; return canonical names and types."""
    fields = {f.name: f.dataType for f in df.schema.fields}
    out, raw = [], []
    for canon, (family, required) in CANONICAL[role].items():
        column = columns.get(canon)
        if column is None:
            if required:
                raise StructuralError(f"conf source.{role}.columns.{canon} is required (table {table})")
            out.append(F.lit(None).cast(CANONICAL_TYPE[family]).alias(canon))
            continue
        if column not in fields:
            raise StructuralError(f"table {table} has no column {column!r} (mapped as {role}.{canon}); "
                                  f"columns: {sorted(fields)}")
        _check_type(table, column, family, fields[column])
        expr = _canonical_column(family, column)
        if family == "genres" and isinstance(fields[column], T.StringType):
            expr = F.split(expr, r"\s*\|\s*")
        out.append(expr.alias(canon))
        if family not in ("string", "genres") and isinstance(fields[column], T.StringType):
            raw.append(F.col(f"`{column}`").alias(RAW_PREFIX + canon))
    return df.select(*out, *raw)


def read_source(spark, conf: Conf, role: str, version: Optional[int] = None) -> SourceRead:
    table, columns = mapping(conf, role)
    require_table(spark, table, role)
    if version is None:
        version = delta_version(spark, table)
    raw = read_at_version(spark, table, version)
    return SourceRead(role, table, version, canonicalize(raw, table, role, columns),
                      tuple(canon for canon, column in columns.items() if column))


def read_sources(spark, conf: Conf) -> dict[str, SourceRead]:
    """All three sources, checked before anything is written."""
    return {role: read_source(spark, conf, role) for role in ROLES}


def to_warehouse_names(df: DataFrame, conf: Conf, role: str) -> DataFrame:
    """Rename canonical columns to the warehouse's names (for the writers: ingest, generate)."""
    _, columns = mapping(conf, role)
    return df.select(*[F.col(canon).alias(columns[canon]) for canon in CANONICAL[role]
                       if columns.get(canon)])
