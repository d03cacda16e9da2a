"""Row-level validation of the source tables. Bad rows are data, not crashes: each gets the
list of rules it breaks and goes to the quarantine table; good rows flow on to the next step.
(Structural problems are caught earlier, by `sources.schema.read_source`.)"""
from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass

from pyspark import StorageLevel
from pyspark.sql import DataFrame, Window, functions as F

from lakerec.config import Conf
from lakerec.sources.schema import CANONICAL, RAW_PREFIX, SourceRead, read_sources
from lakerec.tables import replace_slice

REASONS = "_reasons"
# C0/C1 control characters (tab, LF and CR allowed) and U+FFFD, which is what invalid UTF-8
# becomes when a reader decodes it.
BAD_TEXT = r"[\x00-\x08\x0B\x0C\x0E-\x1F\x7F-\x9F\uFFFD]"
QUARANTINE_COLUMNS_DOC = {
    "run_date": "run date of the job that quarantined the row",
    "job": "job that quarantined it (validate, textualize, ...)",
    "run_id": "the run (see the runs table)",
    "source_table": "fully qualified source table",
    "reason": "comma-separated rules the row breaks",
    "row_json": "the row as JSON, canonical column names",
    "detected_at": "when it was quarantined (UTC)",
}


@dataclass
class Validated:
    good: dict[str, DataFrame]       # role -> canonical rows that passed every rule
    flagged: dict[str, DataFrame]    # role -> every row with its reasons (persisted)
    tables: dict[str, str]           # role -> source table name

    def quarantine_rows(self) -> DataFrame:
        parts = []
        for role, df in self.flagged.items():
            cols = [c for c in df.columns if c != REASONS]
            parts.append(df.where(F.size(REASONS) > 0).select(
                F.lit(self.tables[role]).alias("source_table"),
                F.array_join(REASONS, ",").alias("reason"),
                F.to_json(F.struct(*cols)).alias("row_json")))
        out = parts[0]
        for part in parts[1:]:
            out = out.unionByName(part)
        return out

    def release(self) -> None:
        for df in self.flagged.values():
            df.unpersist()


def _reasons(*rules) -> F.Column:
    """array of the reasons whose condition is true (a NULL condition counts as passing)."""
    return F.filter(F.array(*[F.when(cond, F.lit(reason)) for cond, reason in rules]),
                    lambda r: r.isNotNull())


def _bad_text(column: str):
    return (F.col(column).rlike(BAD_TEXT), f"bad_text:{column}")


def _duplicate(keys: list[str], cols: list[str], reason: str):
    """Every row after the first of its key (ordered by all columns, so deterministic) is a duplicate."""
    rank = F.row_number().over(Window.partitionBy(*keys).orderBy(*cols))
    return (F.col(keys[0]).isNotNull() & (rank > 1), reason)


def _flag(df: DataFrame, rules) -> DataFrame:
    return df.withColumn(REASONS, _reasons(*rules))


def _raw(df: DataFrame, column: str):
    """The warehouse's string before parsing (null when the source column was not a string, or when
    the string is blank: an empty CSV field is a missing value, not an unparseable one)."""
    if RAW_PREFIX + column not in df.columns:
        return F.lit(None).cast("string")
    raw = F.col(RAW_PREFIX + column)
    return F.when(F.trim(raw) != "", raw)


def _parsing_rules(df: DataFrame, source: SourceRead, nullable: set[str]) -> list:
    """Per mapped column: `unparseable:<col>` when a string did not parse (the raw value stays in the
    quarantined row), `null_<col>` when a value is missing that conf does not allow to be missing."""
    rules = []
    for column in CANONICAL[source.role]:
        if column not in source.mapped:
            continue
        raw = _raw(df, column)
        rules.append((raw.isNotNull() & F.col(column).isNull(), f"unparseable:{column}"))
        if column not in nullable:
            rules.append((raw.isNull() & F.col(column).isNull(), f"null_{column}"))
    return rules


def _good(df: DataFrame) -> DataFrame:
    return df.where(F.size(REASONS) == 0).drop(REASONS, *[c for c in df.columns if c.startswith(RAW_PREFIX)])


def title_limit(conf: Conf) -> int:
    return int(conf.get("validation.max_title_chars"))


def shorten(column: str, limit: int) -> F.Column:
    """Text over `limit` characters cut to limit - 1 and marked with an ellipsis (never dropped)."""
    return F.when(F.length(column) > limit, F.concat(F.substring(column, 1, limit - 1), F.lit("\u2026"))
                  ).otherwise(F.col(column))


def validate(sources: dict[str, SourceRead], conf: Conf, now: dt.datetime | None = None) -> Validated:
    now = now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    latest = now + dt.timedelta(hours=float(conf.get("validation.future_tolerance_hours")))
    earliest = dt.datetime.fromisoformat(str(conf.get("validation.min_event_time")))
    rating_min = float(conf.get("validation.rating_min"))
    rating_max = float(conf.get("validation.rating_max"))
    years = (int(conf.get("validation.min_release_year")),
             now.year + int(conf.get("validation.max_release_years_ahead")))
    nullable = set(conf.get("validation.nullable") or [])
    keep = StorageLevel.MEMORY_AND_DISK

    users = sources["users"].df
    users = _flag(users, [
        *_parsing_rules(users, sources["users"], nullable),
        (F.col("user_id") <= 0, "non_positive_user_id"),
        _duplicate(["user_id"], users.columns, "duplicate_user_id"),
        ((F.col("age") < 0) | (F.col("age") > 120), "age_out_of_range"),
        _bad_text("gender"), _bad_text("occupation"), _bad_text("zip_code"),
    ]).persist(keep)

    items = sources["items"].df
    items = _flag(items, [
        *_parsing_rules(items, sources["items"], nullable | {"title"}),    # title: missing_title below
        (F.col("item_id") <= 0, "non_positive_item_id"),
        _duplicate(["item_id"], items.columns, "duplicate_item_id"),
        (F.col("title").isNull() | (F.trim("title") == ""), "missing_title"),
        _bad_text("title"),
        (F.exists(F.coalesce("genres", F.array()), lambda g: g.rlike(BAD_TEXT)), "bad_text:genres"),
        ((F.col("release_year") < years[0]) | (F.col("release_year") > years[1]), "implausible_release_year"),
    ]).persist(keep)

    good_users = _good(users)
    good_items = _good(items).withColumn("title", shorten("title", title_limit(conf)))

    inter = sources["interactions"].df
    cols = inter.columns
    inter = (inter
             .join(good_users.select("user_id", F.lit(True).alias("_user_ok")), "user_id", "left")
             .join(good_items.select("item_id", F.lit(True).alias("_item_ok")), "item_id", "left"))
    inter = _flag(inter, [
        *_parsing_rules(inter, sources["interactions"], nullable),
        (F.col("user_id").isNotNull() & F.col("_user_ok").isNull(), "unknown_user_id"),
        (F.col("item_id").isNotNull() & F.col("_item_ok").isNull(), "unknown_item_id"),
        (F.col("event_time") < F.lit(earliest), "event_time_before_min"),
        (F.col("event_time") > F.lit(latest), "event_time_in_future"),
        ((F.col("rating") < rating_min) | (F.col("rating") > rating_max), "rating_out_of_range"),
        _duplicate(["user_id", "item_id", "event_time"], cols, "duplicate_event"),
    ]).select(*cols, REASONS).persist(keep)

    return Validated(
        good={"users": good_users, "items": good_items, "interactions": _good(inter)},
        flagged={"users": users, "items": items, "interactions": inter},
        tables={role: s.table for role, s in sources.items()},
    )


def quarantine_frame(rows: DataFrame, job: str, run_id: str, run_date: dt.date) -> DataFrame:
    """The quarantine table's rows (QUARANTINE_COLUMNS_DOC) for any job's rejected rows; `rows` has
    the columns source_table, reason and row_json."""
    return rows.select(
        F.lit(run_date).cast("date").alias("run_date"), F.lit(job).alias("job"),
        F.lit(run_id).alias("run_id"), "source_table", "reason", "row_json",
        F.current_timestamp().alias("detected_at"))


def quarantine_records(validated: Validated, job: str, run_id: str, run_date: dt.date) -> DataFrame:
    """The quarantine table's rows for what validation flagged."""
    return quarantine_frame(validated.quarantine_rows(), job, run_id, run_date)


def write_quarantine(validated: Validated, conf: Conf, job: str, run_id: str, run_date: dt.date) -> int:
    """Replace this (run_date, job) slice of the quarantine table; return the number of rows."""
    rows = quarantine_records(validated, job, run_id, run_date).persist(StorageLevel.MEMORY_AND_DISK)
    count = rows.count()
    replace_slice(rows, conf.require("tables.quarantine"),
                  {"run_date": run_date, "job": job}, ["run_date"],
                  QUARANTINE_COLUMNS_DOC)
    rows.unpersist()
    return count


@contextlib.contextmanager
def validated_sources(spark, conf: Conf, run, job: str):
    """The first step of every job that reads the sources: structural checks (before any write),
    row validation, the quarantine slice for (run date, job); yields the Validated rows and the
    Delta versions read, and releases the cached rows afterwards. Counts and timings go to `run`."""
    sources = read_sources(spark, conf)
    versions = {s.table: s.version for s in sources.values()}
    run.metrics["input_table_versions"] = versions
    checked = validate(sources, conf)
    try:
        with run.timed("validate_s"):
            run.rows_in = sum(df.count() for df in checked.flagged.values())
        with run.timed("quarantine_s"):
            run.rows_quarantined = write_quarantine(checked, conf, job, run.run_id, run.run_date)
        run.metrics["titles_shortened"] = checked.flagged["items"].where(
            (F.size(REASONS) == 0) & (F.length("title") > title_limit(conf))).count()
        yield checked, versions
    finally:
        checked.release()
