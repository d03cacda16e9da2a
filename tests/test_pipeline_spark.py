"""Spark + Delta integration on small warehouses: validate -> quarantine -> textualize, checked
through SQL by table name; structural errors stop before any write; re-runs are idempotent."""
import datetime as dt
import json

import pytest
from pyspark.sql import functions as F

from jobs import textualize, validate
from lakerec.errors import StructuralError
from lakerec.sources.schema import read_source
from lakerec.tables import table_exists
from tests.warehouse_fixtures import at, conf_for, write

RUN_DATE = dt.date(2001, 3, 10)

GOOD_USERS = [(1, 30, "M", "writer", "11111"), (2, 40, "F", "artist", "22222")]
GOOD_ITEMS = [(10, "Good Movie", 1999, ["Drama"]), (13, "Ok Film", 2002, None)]
GOOD_EVENTS = [(1, 10, 4.0, at(0)), (1, 13, 5.0, at(1)), (2, 10, 3.0, at(0))]


@pytest.fixture(scope="module")
def dirty(spark, base_conf):
    """A warehouse with one example of each row-level problem, under renamed columns."""
    conf = conf_for(base_conf, "dirty", items={"title": "movie_name", "genres": "categories"},
                    interactions={"event_time": "ts"})
    users = GOOD_USERS + [
        (2, 41, "F", "artist", "dup"),            # duplicate_user_id (one copy is kept)
        (None, 50, "M", "none", "00000"),         # null_user_id
        (3, 25, "M", "eng\x07ineer", "33333"),    # bad_text:occupation
    ]
    items = GOOD_ITEMS + [
        (11, "Caf\ufffd Noir", 2000, []),         # bad_text:title (invalid UTF-8 decoded)
        (12, "  ", 2001, ["Comedy"]),             # missing_title
    ]
    events = GOOD_EVENTS + [
        (1, 10, 4.0, at(0)),                      # duplicate_event
        (99, 10, 4.0, at(2)),                     # unknown_user_id
        (1, 999, 4.0, at(2)),                     # unknown_item_id
        (1, 11, 4.0, at(2)),                      # unknown_item_id: item 11 is quarantined
        (3, 10, 4.0, at(2)),                      # unknown_user_id: user 3 is quarantined
        (1, 13, 9.0, at(3)),                      # rating_out_of_range
        (1, 13, 3.0, dt.datetime(1985, 1, 1)),    # event_time_before_min
        (1, 13, 3.0, dt.datetime(2100, 1, 1)),    # event_time_in_future
        (None, 10, 3.0, at(4)),                   # null_user_id
        (2, 13, 2.0, None),                       # null_event_time
    ]
    write(spark, conf, users, items, events)
    return conf


def _quarantine(spark, conf, job):
    rows = spark.table(conf.require("tables.quarantine")).where(F.col("job") == job).collect()
    return sorted((r.source_table.split(".")[1], r.reason) for r in rows), rows


def test_bad_rows_go_to_quarantine_and_good_rows_flow_on(spark, dirty):
    run = textualize.run(spark, dirty, RUN_DATE)
    reasons, rows = _quarantine(spark, dirty, "textualize")
    assert reasons == sorted([
        ("users", "duplicate_user_id"), ("users", "null_user_id"), ("users", "bad_text:occupation"),
        ("items", "bad_text:title"), ("items", "missing_title"),
        ("interactions", "duplicate_event"), ("interactions", "unknown_user_id"),
        ("interactions", "unknown_item_id"), ("interactions", "unknown_item_id"),
        ("interactions", "unknown_user_id"), ("interactions", "rating_out_of_range"),
        ("interactions", "event_time_before_min"), ("interactions", "event_time_in_future"),
        ("interactions", "null_user_id"),
        ("interactions", "null_event_time"),
    ])
    assert all(r.run_id == run.run_id and r.run_date == RUN_DATE for r in rows)
    bad_title = [json.loads(r.row_json) for r in rows if r.reason == "bad_text:title"]
    assert bad_title == [{"item_id": 11, "title": "Caf\ufffd Noir", "release_year": 2000, "genres": []}]
    assert run.rows_quarantined == 15 and run.rows_in == 5 + 4 + 13

    prompts = spark.sql(f"SELECT user_id, history_item_ids, seen_item_ids, prompt FROM {dirty.require('tables.prompts')} "
                        f"WHERE run_date = DATE'{RUN_DATE}' ORDER BY user_id").collect()
    assert [p.user_id for p in prompts] == [1, 2]
    assert prompts[0].history_item_ids == [10, 13] and prompts[1].history_item_ids == [10]
    assert '"Good Movie" (1999; Drama) rated 4/5; "Ok Film" (2002) rated 5/5.' in prompts[0].prompt
    runs = spark.table(dirty.require("tables.runs")).where(F.col("run_id") == run.run_id).collect()
    assert [(r.job, r.status, r.rows_out, r.rows_quarantined) for r in runs] == [("textualize", "succeeded", 2, 15)]


def test_validate_job_quarantines_the_same_rows(spark, dirty):
    run = validate.run(spark, dirty, RUN_DATE)
    assert run.rows_quarantined == 15
    assert _quarantine(spark, dirty, "validate")[0] == _quarantine(spark, dirty, "textualize")[0]


def test_rerun_of_a_date_replaces_its_partition_only(spark, base_conf):
    conf = conf_for(base_conf, "rerun")
    write(spark, conf, GOOD_USERS, GOOD_ITEMS, GOOD_EVENTS)
    prompts = conf.require("tables.prompts")
    textualize.run(spark, conf, RUN_DATE)
    textualize.run(spark, conf, dt.date(2001, 3, 4))          # history cut at the end of that date
    first = spark.table(prompts).orderBy("run_date", "user_id").select("run_date", "user_id", "prompt").collect()
    version = spark.sql(f"DESCRIBE HISTORY {prompts} LIMIT 1").first().version
    textualize.run(spark, conf, RUN_DATE)
    again = spark.table(prompts).orderBy("run_date", "user_id").select("run_date", "user_id", "prompt").collect()
    assert again == first and len(first) == 4
    # the re-run was one atomic commit
    assert spark.sql(f"DESCRIBE HISTORY {prompts} LIMIT 1").first().version == version + 1
    q = spark.sql(f"SELECT run_date, count(*) AS n, count(DISTINCT user_id) AS u FROM {prompts} GROUP BY run_date").collect()
    assert {(r.run_date, r.n, r.u) for r in q} == {(RUN_DATE, 2, 2), (dt.date(2001, 3, 4), 2, 2)}


def test_history_stops_at_the_end_of_the_run_date(spark, base_conf):
    conf = conf_for(base_conf, "cutoff")
    events = [(1, 10, 4.0, dt.datetime(2001, 3, 4, 23, 59)), (1, 13, 5.0, dt.datetime(2001, 3, 5, 0, 0))]
    write(spark, conf, GOOD_USERS, GOOD_ITEMS, events)
    textualize.run(spark, conf, dt.date(2001, 3, 4))
    rows = spark.table(conf.require("tables.prompts")).orderBy("user_id").collect()
    assert [(r.user_id, r.history_item_ids, r.n_history_total) for r in rows] == [(1, [10], 1), (2, [], 0)]
    assert "No movies watched yet." in rows[1].prompt


def _assert_nothing_written(spark, conf):
    for name in ("prompts", "quarantine"):
        assert not table_exists(spark, conf.require(f"tables.{name}"))


def test_missing_table_stops_before_writing(spark, base_conf):
    conf = conf_for(base_conf, "missing_table")
    write(spark, conf, GOOD_USERS, GOOD_ITEMS, GOOD_EVENTS)
    conf = conf.with_overrides({"source.items.table": "missing_table.no_such_items"})
    with pytest.raises(StructuralError, match=r"missing_table\.no_such_items"):
        textualize.run(spark, conf, RUN_DATE)
    _assert_nothing_written(spark, conf)
    failed = spark.table(conf.require("tables.runs")).collect()
    assert [(r.job, r.status) for r in failed] == [("textualize", "failed")]
    assert "no_such_items" in failed[0].error


def test_missing_column_and_wrong_type_name_table_and_column(spark, base_conf):
    write(spark, conf_for(base_conf, "structure"), GOOD_USERS, GOOD_ITEMS, GOOD_EVENTS)
    conf = conf_for(base_conf, "structure", items={"title": "name"})
    with pytest.raises(StructuralError, match=r"table structure\.items has no column 'name'"):
        textualize.run(spark, conf, RUN_DATE)
    _assert_nothing_written(spark, conf)

    spark.createDataFrame([(1.5, 3)], "user_id double, age int").write.format("delta") \
        .mode("overwrite").option("overwriteSchema", "true").saveAsTable("structure.users")
    conf = conf_for(base_conf, "structure")
    with pytest.raises(StructuralError, match=r"table structure\.users, column user_id: type double, "
                                              r"expected an integer type"):
        textualize.run(spark, conf, RUN_DATE)
    _assert_nothing_written(spark, conf)


def test_any_spark_table_works_and_invalid_utf8_is_quarantined(spark, base_conf, tmp_path):
    """A non-Delta (Parquet) users table, read from a CSV file holding invalid UTF-8 bytes."""
    conf = conf_for(base_conf, "rawcsv")
    write(spark, conf, GOOD_USERS, GOOD_ITEMS, GOOD_EVENTS)
    csv = tmp_path / "users.csv"
    csv.write_bytes(b"user_id,age,gender,occupation,zip_code\n1,30,M,writer,11111\n"
                    b"2,40,F,\xff\xfeartist,22222\n")
    raw = spark.read.option("header", True).schema(
        "user_id bigint, age int, gender string, occupation string, zip_code string").csv(str(csv))
    spark.sql("DROP TABLE IF EXISTS rawcsv.users")
    raw.write.format("parquet").saveAsTable("rawcsv.users")
    assert read_source(spark, conf, "users").version is None
    run = textualize.run(spark, conf, RUN_DATE)
    reasons, _ = _quarantine(spark, conf, "textualize")
    assert ("users", "bad_text:occupation") in reasons
    assert ("interactions", "unknown_user_id") in reasons       # user 2's event: user quarantined
    assert run.rows_out == 1
    versions = spark.table(conf.require("tables.prompts")).first().input_table_versions
    assert versions["rawcsv.users"] is None and versions["rawcsv.items"] >= 1


def test_leave_one_out_split(spark):
    from lakerec.eval.split import leave_one_out
    from lakerec.sources.schema import tie_order_column
    from rec_udf.textualizer import tie_order
    # tie at t=2: the tie order, not the item id, decides (crc32 "1:13" < "1:12": item 12 is last)
    assert tie_order(1, 13) < tie_order(1, 12)
    rows = [(1, 10, at(0)), (1, 11, at(1)), (1, 12, at(2)), (1, 13, at(2)),
            (2, 10, at(0)), (2, 11, at(1))]                                    # too short: all train
    df = spark.createDataFrame(rows, "user_id bigint, item_id bigint, event_time timestamp")
    got = {(r.user_id, r.item_id): r.split for r in leave_one_out(df).collect()}
    assert got == {(1, 10): "train", (1, 11): "train", (1, 13): "valid", (1, 12): "test",
                   (2, 10): "train", (2, 11): "train"}
    # Spark and the executors' textualizer compute the same tie order
    pairs = spark.createDataFrame([(u, i) for u in (1, 7, 943, 2**40) for i in (1, 12, 1682, 10**9)],
                                  "user_id bigint, item_id bigint")
    for r in pairs.select("user_id", "item_id", tie_order_column().alias("tie")).collect():
        assert r.tie == tie_order(r.user_id, r.item_id)


def test_full_ranking_evaluation_of_most_popular_on_a_toy_split(spark):
    """Items 10 (3 users), 11 (2), 12 (1) in training; the hand-computed ranks follow."""
    from lakerec.eval.baselines import most_popular
    from lakerec.eval.protocol import collect_split, evaluate
    rows = [(1, 10, at(0), "train"), (1, 12, at(1), "valid"), (1, 11, at(2), "test"),
            (2, 10, at(0), "train"), (2, 11, at(1), "train"), (2, 13, at(2), "valid"), (2, 12, at(3), "test"),
            (3, 10, at(0), "train"), (3, 11, at(1), "train"), (3, 12, at(2), "train"), (3, 10, at(3), "valid"),
            (3, 13, at(4), "test")]
    split = spark.createDataFrame(rows, "user_id bigint, item_id bigint, event_time timestamp, split string")
    data = collect_split(split, spark.createDataFrame([(i,) for i in (10, 11, 12, 13, 14)], "item_id bigint"))
    assert data.train[2].tolist() == [0, 1] and data.test[1] == 1
    m = evaluate(most_popular(data), data, on="test", ks=(1, 2))
    # user 1: excluded {10, 12}; candidates 11 (2), 13 (0), 14 (0) -> rank 1
    # user 2: excluded {10, 11, 13}; candidates 12 (1), 14 (0) -> rank 1
    # user 3: excluded {10, 11, 12}; candidates 13 (0), 14 (0): a tie counts against -> rank 2
    assert m["hr@1"] == pytest.approx(2 / 3) and m["hr@2"] == pytest.approx(1.0)
    assert m["mrr"] == pytest.approx((1 + 1 + 0.5) / 3)


def test_a_warehouse_of_its_own_mapped_by_a_conf_that_names_only_what_it_has(spark, base_conf, tmp_path):
    """README "Your own warehouse": a conf file maps other table and column names and leaves the
    optional columns out (no demographics, no year or genres, implicit feedback without ratings)."""
    from lakerec.config import load_conf
    from lakerec.sources.schema import mapping
    conf_file = tmp_path / "shop.yaml"
    conf_file.write_text("""
source:
  users: {table: shop.customers, columns: {user_id: customer_id, age: years}}
  items: {table: shop.products, columns: {item_id: sku, title: name}}
  interactions: {table: shop.orders, columns: {user_id: customer, item_id: sku, event_time: ordered_at}}
tables: {prompts: shop.prompts, quarantine: shop.quarantine, runs: shop.runs}
""")
    conf = load_conf(conf_file, [f"warehouse_root={base_conf.warehouse_root}"])
    assert mapping(conf, "users")[1] == {"user_id": "customer_id", "age": "years", "gender": None,
                                         "occupation": None, "zip_code": None}
    spark.sql("CREATE DATABASE IF NOT EXISTS shop")
    spark.createDataFrame([(1, 31), (2, 45)], "customer_id bigint, years int").write.saveAsTable("shop.customers")
    spark.createDataFrame([(10, "Blue Kettle"), (11, "Red Mug")], "sku bigint, name string").write.saveAsTable(
        "shop.products")
    spark.createDataFrame([(1, 10, at(0)), (1, 11, at(1)), (2, 10, at(2))],
                          "customer bigint, sku bigint, ordered_at timestamp").write.saveAsTable("shop.orders")
    textualize.run(spark, conf, RUN_DATE)
    prompts = {r.user_id: r.prompt for r in spark.table("shop.prompts").collect()}
    assert sorted(prompts) == [1, 2] and "Blue Kettle" in prompts[1] and "Red Mug" in prompts[1]
    assert spark.table("shop.quarantine").count() == 0


def test_a_run_is_visible_while_running_and_after_its_process_died(spark, base_conf, monkeypatch):
    import os
    import subprocess
    from lakerec import runs
    conf = conf_for(base_conf, "runrows")

    def rows(run_id):
        return spark.table("runrows.runs").where(F.col("run_id") == run_id).collect()
    with runs.recorded_run(spark, conf, "validate", RUN_DATE) as run:
        during = rows(run.run_id)
    after = rows(run.run_id)
    assert [r.status for r in during] == ["running"] and during[0].pid == os.getpid()
    assert [r.status for r in after] == ["succeeded"] and after[0].finished_at >= during[0].started_at
    assert runs.abandoned_runs(spark, conf) == []

    # A driver killed mid-run never writes its final row: its `running` row names a process that is gone.
    gone = subprocess.Popen(["true"])
    gone.wait()
    monkeypatch.setattr(runs.os, "getpid", lambda: gone.pid)
    killed = runs.Run(job="score", run_date=RUN_DATE)
    runs._write(spark, conf, killed, "running", None)
    assert [r["run_id"] for r in runs.abandoned_runs(spark, conf)] == [killed.run_id]


def test_a_second_process_on_the_embedded_metastore_stops_with_one_line(spark, base_conf):
    """The test session's JVM has the warehouse's embedded Derby booted: another `lakerec` process on
    the same warehouse stops before starting Spark, exit 2, naming the holder and the remedy."""
    import os
    import subprocess
    import sys
    from lakerec.spark import build_session
    assert build_session(base_conf) is spark            # this process's own session: no complaint
    spark.catalog.databaseExists("default")             # Derby boots on first use: run alone, nothing had used it
    proc = subprocess.run([sys.executable, "-m", "jobs.cli", "validate", "--run-date", str(RUN_DATE),
                           "--set", f"warehouse_root={base_conf.warehouse_root}"], capture_output=True, text=True)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()
    assert len(last) == 1, proc.stderr[-3000:]
    assert f"{base_conf.warehouse_root}/metastore_db is in use by pid" in last[0]
    assert f"the JVM of pid {os.getpid()}" in last[0] and "shared metastore" in last[0]


def test_maintain_compacts_vacuums_orphans_and_old_archives(spark, base_conf, tmp_path):
    import os
    import time
    from jobs import maintain
    from lakerec.tables import location
    conf = conf_for(base_conf, "upkeep").with_overrides({       # every LakeRec table of its own
        "cache_dir": str(tmp_path / "cache"), **{f"tables.{key}": f"upkeep.{key}" for key in base_conf.get("tables")}})
    write(spark, conf, GOOD_USERS, GOOD_ITEMS, GOOD_EVENTS)
    for day in (4, 5, 6):
        textualize.run(spark, conf, dt.date(2001, 3, day))
    prompts = conf.require("tables.prompts")
    before = sorted(map(tuple, spark.table(prompts).select("run_date", "user_id", "prompt").collect()))
    # what a write killed before its commit leaves: a data file no table version names, 10 days old
    orphan = f"{location(spark, prompts)}/run_date=2001-03-05/part-00000-orphan.c000.snappy.parquet"
    with open(orphan, "wb") as f:
        f.write(b"PAR1")
    ten_days_ago = time.time() - 10 * 86400
    os.utime(orphan, (ten_days_ago, ten_days_ago))
    shipping = tmp_path / "cache" / "shipping"
    shipping.mkdir(parents=True)
    (shipping / "lakerec-bundle-old.tar").write_bytes(b"x")
    os.utime(shipping / "lakerec-bundle-old.tar", (ten_days_ago, ten_days_ago))
    (shipping / "lakerec-bundle-recent.tar").write_bytes(b"x")
    jvm = tmp_path / "cache" / "jvm"            # class archives of the driver JVM (lakerec/class_sharing.py)
    jvm.mkdir()
    (jvm / "lakerec-driver-old.jsa").write_bytes(b"x")
    os.utime(jvm / "lakerec-driver-old.jsa", (ten_days_ago, ten_days_ago))
    (jvm / "lakerec-driver-recent.jsa").write_bytes(b"x")

    run = maintain.run(spark, conf, RUN_DATE)
    report = run.metrics["tables"][prompts]
    assert report["files_after"] < report["files_before"]                   # three slices' files compacted
    assert not os.path.exists(orphan) and report["vacuumed_paths"] >= 1
    assert sorted(map(tuple, spark.table(prompts).select("run_date", "user_id", "prompt").collect())) == before
    assert run.metrics["archives_removed"] == ["lakerec-bundle-old.tar", "lakerec-driver-old.jsa"]
    assert (shipping / "lakerec-bundle-recent.tar").exists() and (jvm / "lakerec-driver-recent.jsa").exists()
    assert set(run.metrics["tables"]) >= {prompts, conf.require("tables.runs")}
    assert conf.require("source.users.table") not in run.metrics["tables"]   # the warehouse's own: untouched


def test_values_that_do_not_fit_are_quarantined_with_the_raw_row_and_long_titles_shortened(spark, base_conf):
    """Columns typed as strings (as a CSV landing table often is) are parsed by LakeRec; what does not
    parse, what is missing without conf allowing it, non-positive ids and implausible years go to
    quarantine with the reason and the raw value; genres may be null or empty; an over-long title is
    cut and marked, and the user's history keeps every item."""
    conf = conf_for(base_conf, "typed")
    spark.sql("CREATE DATABASE IF NOT EXISTS typed")
    users = [("1", "30", "M", "writer", "11111"), ("2", "40", "F", "artist", "22222"), ("abc", "20", "M", "x", "1"),
             ("0", "25", "M", "x", "1"), ("-3", "25", "M", "x", "1"), ("4", "forty", "M", "x", "1")]
    items = [(10, "Good Movie", 1999, ["Drama"]), (11, "T" * 10_000, 2001, ["Comedy"]),
             (12, "Future Film", 3000, ["Drama"]), (13, "No Genre Film", 2002, None), (14, "Empty Genres", 2003, []),
             (0, "Zero", 2000, ["Drama"])]
    events = [(1, 10, at(0), "4"), (1, 11, at(1), "5"), (1, 13, at(2), "3"), (1, 14, at(3), "4"),
              (2, 10, at(0), "five"), (2, 13, at(1), None), (2, 14, at(2), "2")]
    for name, rows, schema in [
            ("users", users, "user_id string, age string, gender string, occupation string, zip_code string"),
            ("items", items, "item_id bigint, title string, release_year int, genres array<string>"),
            ("interactions", events, "user_id bigint, item_id bigint, event_time timestamp, rating string")]:
        spark.createDataFrame(rows, schema).write.mode("overwrite").saveAsTable(f"typed.{name}")

    run = textualize.run(spark, conf, RUN_DATE)
    reasons, rows = _quarantine(spark, conf, "textualize")
    assert reasons == sorted([
        ("users", "unparseable:user_id"), ("users", "non_positive_user_id"), ("users", "non_positive_user_id"),
        ("users", "unparseable:age"), ("items", "implausible_release_year"), ("items", "non_positive_item_id"),
        ("interactions", "unparseable:rating"), ("interactions", "null_rating")])
    raw = {r.reason: json.loads(r.row_json) for r in rows}
    assert raw["unparseable:user_id"]["_raw_user_id"] == "abc" and raw["unparseable:user_id"].get("user_id") is None
    assert raw["unparseable:rating"]["_raw_rating"] == "five"
    assert run.metrics["titles_shortened"] == 1
    # nothing lost: every row read is quarantined or reaches a prompt (2 users, 4 items, 5 events)
    assert run.rows_in == len(users) + len(items) + len(events) == 19 and run.rows_quarantined == 8
    prompts = {p.user_id: p for p in spark.table(conf.require("tables.prompts")).collect()}
    assert sorted(prompts) == [1, 2]
    assert prompts[1].history_item_ids == [10, 11, 13, 14]                  # nothing lost with the long title
    assert "T" * 199 + "\u2026" in prompts[1].prompt and "T" * 200 not in prompts[1].prompt
    assert prompts[2].history_item_ids == [14]
