"""Fixtures: one local Spark session per test process, on a temporary warehouse.

Spark tests run in-process (one JVM, one embedded Derby metastore); the end-to-end CLI tests
start `lakerec` in subprocesses on a warehouse of their own."""
import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TEST_SPARK = [
    "spark.master=local[2]",
    "spark.config.spark.sql.shuffle.partitions=2",
    "spark.config.spark.default.parallelism=2",
    "spark.config.spark.databricks.delta.snapshotPartitions=1",
    "spark.config.spark.driver.memory=2g",
]


@pytest.fixture(scope="session")
def base_conf(tmp_path_factory):
    from lakerec.config import load_conf
    root = tmp_path_factory.mktemp("inproc")
    return load_conf(None, [f"warehouse_root={root}/warehouse", *TEST_SPARK])


@pytest.fixture(scope="session")
def spark(base_conf):
    from lakerec.spark import build_session
    session = build_session(base_conf)
    yield session
    session.stop()
