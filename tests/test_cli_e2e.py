"""End to end through the `lakerec` command in separate processes, as a user runs it: real
MovieLens-100K ingest, textualize, `info --json`, and an independent Delta reader (deltalake,
no Spark) in this process reading the tables that `info` lists."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from deltalake import DeltaTable

pytestmark = pytest.mark.e2e
RUN_DATE = "2026-11-23"
# The demo trains the quick profile; shrink it further so that this test stays short (stage 1, the
# text-only warm-up, is left out here: tests/test_train_job.py trains both stages).
RANK_USERS = 24
TINY_TRAINING = [
    "train.profiles.quick.sasrec_train.epochs=2", "train.profiles.quick.sasrec_train.eval_every=1",
    "train.profiles.quick.baselines.als_iterations=2", "train.profiles.quick.llm_train.max_users=12",
    f"train.profiles.quick.llm_train.rank_users={RANK_USERS}", "train.profiles.quick.llm_train.eval_users=3",
    "train.profiles.quick.llm_train.max_new_tokens=3", "train.profiles.quick.llm_train.stage1_epochs=0",
    # explanations by the data-built sentence here: the explainer LLM on every one of 943 users would
    # add minutes twice; tests/test_score.py and tests/test_export.py run the LLM path
    "score.explainer=template", "export.explainer=false",
    "textualize.max_prompt_tokens=80",      # shorter prompts: every model pass costs half
]
TOP_K = 10


@pytest.fixture(scope="module")
def lakerec(tmp_path_factory):
    root = tmp_path_factory.mktemp("e2e")
    from tests.conftest import TEST_SPARK

    def call(*args, check=True):
        cmd = [sys.executable, "-m", "jobs.cli", *args, "--set", f"warehouse_root={root}/warehouse"]
        for item in TEST_SPARK + TINY_TRAINING + [f"models.registry_dir={root}/models",
                                                  f"models.bundles_dir={root}/bundles", "export.precisions=[fp32]"]:
            cmd += ["--set", item]
        # output to files, as a cron line or a chain `... >> log 2>&1` has it: with pipes, run() would also
        # wait for the JVM, which holds them until it exits, and hide a JVM outliving its command
        with open(root / "stdout", "w+") as out, open(root / "stderr", "w+") as err:
            done = subprocess.run(cmd, stdout=out, stderr=err, env={**os.environ, "HF_HUB_OFFLINE": "1"})
            out.seek(0), err.seek(0)
            proc = subprocess.CompletedProcess(cmd, done.returncode, out.read(), err.read())
        if check and proc.returncode != 0:
            raise AssertionError(f"{args} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        return proc
    return call


def _counts(info):
    out = {}
    for name, location in info["tables"].items():
        out[name.split(".", 1)[1]] = DeltaTable(location).to_pyarrow_table().num_rows
    return out


def test_demo_twice_and_independent_reader(lakerec):
    first = lakerec("demo", "--run-date", RUN_DATE)
    assert "lakerec ingest succeeded" in first.stdout and "lakerec textualize succeeded" in first.stdout
    assert "User 1 is a 24-year-old man, a technician" in first.stdout
    counts_line = f"warehouse: users=943 items=1682 interactions=100000; prompts for {RUN_DATE}: 943"
    assert counts_line in first.stdout
    assert "lakerec train succeeded" in first.stdout and "v0001 is champion" in first.stdout
    assert "v0001 fp32:" in first.stdout and "top-10 identical 100.0%" in first.stdout   # exported, parity held

    # The second run on a multi-process cluster on this machine (local-cluster: a master and two
    # workers, executors in JVMs and Python workers of their own): the bundle travels as an archive
    # and is loaded once in each executor's Python worker.
    second = lakerec("demo", "--run-date", RUN_DATE, "--set", "spark.master=local-cluster[2,1,1536]",
                     "--set", "spark.config.spark.executor.memory=1g")
    assert "2 model loads in 2 Python workers" in second.stdout, second.stdout[-3000:]
    assert "skipped" in second.stdout and counts_line in second.stdout
    assert "lakerec train skipped: champion v0001 was trained" in second.stdout      # same inputs, same settings
    assert "v0001 fp32: " in second.stdout and "exists and verifies (kept" in second.stdout
    info = json.loads(lakerec("info", "--json").stdout)
    assert info["versions"]["spark"] == "4.2.0" and info["versions"]["delta"] == "4.4.0"
    assert info["warehouse"].endswith("/warehouse")
    counts = _counts(info)
    assert counts["warehouse.interactions"] == 100_000
    assert counts["warehouse.items"] == 1_682
    assert counts["warehouse.users"] == 943
    assert counts["lakerec.prompts"] == 943
    assert counts["lakerec.quarantine"] == 0
    assert counts["lakerec.runs"] == 7          # ingest + textualize + score, twice; train once
    listing = json.loads(lakerec("models", "--json").stdout)
    assert [r["version"] for r in listing] == ["v0001"]
    assert sum(r["champion"] for r in listing) == 1
    champion = next(r["version"] for r in listing if r["champion"])
    from rec_udf.bundle import verify
    bundle_root = Path(info["warehouse"]).parent / "bundles"
    assert verify(bundle_root / champion / "fp32").model_version == champion
    assert "top-5 of three users" in second.stdout and "FROM recs.user_recommendations" in second.stdout
    _check_recommendations(info, champion)
    assert counts["lakerec.model_metrics"] > 0
    prompts = DeltaTable(info["tables"]["spark_catalog.lakerec.prompts"]).to_pandas()
    assert prompts["user_id"].is_unique and set(prompts["run_date"].astype(str)) == {RUN_DATE}

    # types are real: timestamps, floats, arrays; title and year are separate columns
    items = DeltaTable(info["tables"]["spark_catalog.warehouse.items"]).to_pyarrow_table()
    assert str(items.schema.field("genres").type) == "list<element: string>"
    assert {"title", "release_year"} <= set(items.schema.names)
    inter = DeltaTable(info["tables"]["spark_catalog.warehouse.interactions"]).to_pyarrow_table()
    assert str(inter.schema.field("event_time").type).startswith("timestamp")
    assert str(inter.schema.field("rating").type) == "float"


def test_the_metastore_is_free_the_moment_a_command_returns(lakerec):
    """A chain (`lakerec validate ... && lakerec textualize ...`, consecutive Airflow tasks) starts the
    next job at once: the JVM of the one before must have let go of the embedded metastore by then."""
    import time

    from lakerec import class_sharing
    from lakerec.config import load_conf
    from lakerec.metastore import metastore_holder
    started = time.time()
    info = json.loads(lakerec("info", "--json").stdout)      # stdout is JSON alone: no JVM log line in it
    assert metastore_holder(Path(info["warehouse"]) / "metastore_db") is None
    # the job mapped the JVM's class archive (lakerec/class_sharing.py), or wrote it whole as it exited
    jvm = load_conf(None, []).cache_dir / "jvm"
    assert [p for p in jvm.glob(class_sharing.ARCHIVE_GLOB) if p.stat().st_mtime >= int(started)]
    assert class_sharing.remove_stale(jvm) == []                       # no half-written archive left


def test_structural_error_exits_2_naming_the_table(lakerec):
    proc = lakerec("textualize", "--run-date", RUN_DATE, "--set", "source.items.table=warehouse.nope",
                   check=False)
    assert proc.returncode == 2
    assert "warehouse.nope" in proc.stderr and "Traceback" not in proc.stderr


def _table(info, name):
    return DeltaTable(info["tables"][f"spark_catalog.{name}"]).to_pandas()


def _check_recommendations(info, champion):
    """Read by an independent Delta reader (deltalake, no Spark): exactly K rows per user for the date
    after two runs, only items of the items table, none from the user's history; one model load
    per Python worker."""
    recs = _table(info, "recs.user_recommendations")
    assert set(recs["run_date"].astype(str)) == {RUN_DATE} and set(recs["model_version"]) == {champion}
    assert recs.groupby("user_id").size().eq(TOP_K).all() and recs["user_id"].nunique() == 943
    assert recs.groupby("user_id")["rank"].apply(lambda r: sorted(r) == list(range(1, TOP_K + 1))).all()
    assert set(recs["item_id"]) <= set(_table(info, "warehouse.items")["item_id"])
    history = _table(info, "warehouse.interactions")[["user_id", "item_id"]]
    assert recs.merge(history, on=["user_id", "item_id"]).empty
    assert recs.loc[recs["rank"] == 1, "explanation"].notna().all()
    first = recs[recs["rank"] == 1]          # score.explainer template: the data-built sentence, with its evidence
    assert set(first["explanation_source"]) == {"fallback"} and first["explanation_rejected"].isna().all()
    assert first["evidence_item_ids"].map(len).between(1, 3).all()
    runs = _table(info, "lakerec.runs")
    scores = runs[(runs["job"] == "score") & (runs["status"] == "succeeded")]
    assert len(scores) == 2
    for metrics in scores["metrics"].map(json.loads):
        assert metrics["model_loads"] == metrics["workers"] >= 1, metrics


def test_holdout_scoring_reproduces_the_offline_evaluation(lakerec):
    """Leave-one-out prompts scored over the whole catalogue: the metrics recomputed from the scored
    table equal the test metrics recorded at training for the same model version and users."""
    # the users the training report ranked (rank_users, the lowest ids) keep full-catalogue scoring short
    lakerec("textualize", "--holdout", "--run-date", RUN_DATE, "--set", f"textualize.holdout_users={RANK_USERS}")
    lakerec("score", "--holdout", "--run-date", RUN_DATE, "--set", "score.top_k=2000", "--set", "score.explain_top_k=0")
    info = json.loads(lakerec("info", "--json").stdout)
    listing = json.loads(lakerec("models", "--json").stdout)
    champion = next(r["version"] for r in listing if r["champion"])
    recorded = json.loads((Path(info["warehouse"]).parent / "models" / "versions" / champion / "model.json")
                          .read_text())["metrics"]["test"]
    recs = _table(info, "recs.holdout_recommendations")
    assert set(recs["model_version"]) == {champion}
    users = sorted(recs["user_id"].unique())
    assert len(users) == recorded["users"] == RANK_USERS
    hits = recs[(recs["item_id"] == recs["heldout_item_id"]) & recs["user_id"].isin(users)].set_index("user_id")["rank"]
    ranks = np.array([hits.get(u, np.inf) for u in users], dtype=float)
    assert np.isfinite(ranks).all()          # the whole catalogue was ranked: every held-out item is found
    ndcg10 = np.where(ranks <= 10, 1 / np.log2(ranks + 1), 0).mean()
    assert ndcg10 == pytest.approx(recorded["ndcg@10"], abs=1e-9)
    assert (ranks <= 10).mean() == pytest.approx(recorded["hr@10"], abs=1e-9)
    assert (1 / ranks).mean() == pytest.approx(recorded["mrr"], rel=1e-6)   # every rank, not just the top 10
