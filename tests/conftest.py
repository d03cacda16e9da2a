"""Fixtures: one local Spark session per test process, on a temporary warehouse; and the test tiers.

Tiers (pytest markers, `make test-unit` etc.): `airflow` and `e2e` modules say so themselves (real
Airflow; `lakerec` in processes of their own on a warehouse of their own); any other test that
needs the `spark` fixture, directly or through another fixture, is `spark` (in-process, one JVM,
one embedded Derby metastore); the rest are `unit`. The tier follows what a test uses, so a test
cannot sit in the wrong one."""
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

# A LakeRec configuration file as a deployment writes one, for the tests that run `lakerec` (or
# Airflow) in processes of their own: tables, registry and bundles under {root}, the metastore
# ({url: null}: embedded Derby), small Spark settings, the data-built explanation sentence, and the
# quick profile shrunk to well under a minute of training.
DEPLOYMENT_CONF = """\
warehouse_root: {root}/warehouse
models: {{registry_dir: {root}/models, bundles_dir: {root}/bundles}}
spark:
  metastore: {metastore}
  config: {{spark.sql.shuffle.partitions: 2, spark.default.parallelism: 2,
           spark.databricks.delta.snapshotPartitions: 1, spark.driver.memory: {driver_memory}}}
textualize: {{max_prompt_tokens: 80}}
score: {{top_k: {top_k}, explainer: template}}      # the explainer LLM is tested in test_score/test_export
export: {{precisions: [fp32], explainer: false}}
train:
  profile: quick
  profiles:
    quick:
      sasrec_train: {{epochs: 2, eval_every: 1}}
      baselines: {{als_iterations: 2}}
      llm_train: {{max_users: 12, rank_users: 24, eval_users: 3, max_new_tokens: 3, stage1_epochs: 0}}
"""


TIERS = ("airflow", "e2e", "spark", "unit")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if not any(item.get_closest_marker(tier) for tier in ("airflow", "e2e")):
            item.add_marker(pytest.mark.spark if "spark" in item.fixturenames else pytest.mark.unit)


@pytest.fixture(scope="session")
def base_conf(tmp_path_factory):
    from lakerec.config import load_conf
    root = tmp_path_factory.mktemp("inproc")
    return load_conf(None, [f"warehouse_root={root}/warehouse", *TEST_SPARK])


@pytest.fixture(scope="session")
def spark(base_conf):
    from lakerec.spark import build_session, stop_session
    session = build_session(base_conf)
    yield session
    stop_session(session)
