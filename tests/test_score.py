"""The scoring job in-process (local[2]) on a small hand-made warehouse and a random-weight model
exported to an fp32 bundle: output contract, re-runs, and each kind of bad input."""
import datetime as dt
import json
import shutil
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from tests.model_fixtures import catalogue, prepared_explainer, registry_with_random_champion

DATE = dt.date(2026, 11, 23)
N_ITEMS = 80
TOP_K = 5
REMOVED_ITEM = 100          # in the model's catalogue, deleted from the items table since
UNKNOWN_ITEM = 999          # in the items table, unknown to the model
LONG_USER, COLD_USER, UNKNOWN_ITEM_USER = 1, 12, 3


@pytest.fixture(scope="module")
def setup(spark, base_conf, tmp_path_factory):
    from jobs import textualize
    from lakerec.tables import overwrite
    from model_export.export import export_bundles

    root = tmp_path_factory.mktemp("score")
    model_dir = registry_with_random_champion(root / "models", n_items=N_ITEMS)
    export_bundles(model_dir, root / "bundles", ["fp32"], parity_users=4, explainer=prepared_explainer(("fp32",)))
    tables = {"tables.prompts": "st.prompts", "tables.quarantine": "st.quarantine", "tables.runs": "st.runs",
              "tables.recommendations": "st.recs", "tables.latest_recommendations": "st.latest_recs",
              "tables.holdout_prompts": "st.holdout_prompts", "tables.holdout_recommendations": "st.holdout_recs",
              "source.users.table": "st.users", "source.items.table": "st.items",
              "source.interactions.table": "st.interactions"}
    conf = base_conf.with_overrides({
        **tables, "models.registry_dir": str(root / "models"), "models.bundles_dir": str(root / "bundles"),
        "cache_dir": str(root / "cache"), "textualize.max_prompt_tokens": 2000, "score.top_k": TOP_K,
        "score.explain_top_k": 1, "score.max_new_tokens": 24, "score.partitions": 8})

    items = [it for it in catalogue(N_ITEMS) if it["item_id"] != REMOVED_ITEM]
    items.append({"item_id": UNKNOWN_ITEM, "title": "Brand New Film", "release_year": 2026, "genres": ["Drama"]})
    rng = np.random.default_rng(0)
    users = [(u, 20 + u, "F" if u % 2 else "M", "writer", f"{u:05d}") for u in range(1, 13)]
    events, start = [], dt.datetime(2026, 1, 1)
    for user in range(1, COLD_USER):           # the cold user has no interactions
        ids = (range(100, 100 + N_ITEMS) if user == LONG_USER
               else rng.choice(range(101, 100 + N_ITEMS), size=int(rng.integers(4, 12)), replace=False))
        events += [(user, int(i), start + dt.timedelta(hours=k), float(rng.integers(1, 6))) for k, i in enumerate(ids)]
    events.append((UNKNOWN_ITEM_USER, UNKNOWN_ITEM, start + dt.timedelta(days=30), 5.0))
    overwrite(spark.createDataFrame(users, "user_id bigint, age int, gender string, occupation string, zip_code string"),
              "st.users")
    overwrite(spark.createDataFrame([(i["item_id"], i["title"], i["release_year"], i["genres"]) for i in items],
                                    "item_id bigint, title string, release_year int, genres array<string>"), "st.items")
    overwrite(spark.createDataFrame(events, "user_id bigint, item_id bigint, event_time timestamp, rating float"),
              "st.interactions")
    textualize.run(spark, conf, DATE)
    return {"conf": conf, "root": root, "events": events, "items": items}


def _recs(spark):
    return spark.table("st.recs").where(f"run_date = '{DATE}'").toPandas()


def _score(spark, conf, **kwargs):
    from jobs import score
    return score.run(spark, conf, DATE, **kwargs)


def test_score_contract_and_rerun(spark, setup):
    conf = setup["conf"]
    run = _score(spark, conf)
    recs = _recs(spark)
    scored_users = set(range(1, 13)) - {LONG_USER}
    assert set(recs["user_id"]) == scored_users
    per_user = recs.groupby("user_id")["rank"].apply(sorted)
    assert all(ranks == list(range(1, TOP_K + 1)) for ranks in per_user)     # exactly K rows, dense ranks
    seen = {}
    for user, item, *_ in setup["events"]:
        seen.setdefault(user, set()).add(item)
    assert not any(item in seen.get(user, set()) for user, item in zip(recs["user_id"], recs["item_id"]))
    catalogue_now = {it["item_id"] for it in setup["items"]}
    assert set(recs["item_id"]) <= catalogue_now and REMOVED_ITEM not in set(recs["item_id"])
    assert UNKNOWN_ITEM not in set(recs["item_id"])                           # the model cannot score it
    assert recs.loc[recs["rank"] == 1, "explanation"].notna().all()
    assert recs.loc[recs["rank"] > 1, "explanation"].isna().all()
    # every explanation is the LLM's checked sentence or the marked fallback, with its evidence
    first = recs[recs["rank"] == 1]
    assert set(first["explanation_source"]) <= {"llm", "fallback"} and recs.loc[recs["rank"] > 1, "explanation_source"].isna().all()
    assert (first["explanation_rejected"].isna() == (first["explanation_source"] == "llm")).all()
    not_disliked = {}                       # items rated below 3 are never evidence
    for user, item, _, rating in setup["events"]:
        if rating >= 3 and item != UNKNOWN_ITEM:
            not_disliked.setdefault(user, set()).add(item)
    for user, evidence in zip(first["user_id"], first["evidence_item_ids"]):
        assert set(evidence) <= not_disliked.get(user, set())
        assert len(evidence) == min(3, len(not_disliked.get(user, set())))
    assert (recs.sort_values(["user_id", "rank"]).groupby("user_id")["score"].apply(
        lambda s: bool(np.all(np.diff(s.to_numpy()) <= 0)))).all()
    assert set(recs["variant"]) == {"default"} and set(recs["model_version"]) == {"v0001"}
    assert recs["input_table_version"].notna().all() and recs["item_title"].notna().all()

    # the over-long prompt is quarantined with its reason, not truncated silently
    bad = spark.table("st.quarantine").where("job = 'score:default'").toPandas()
    assert len(bad) == 1 and json.loads(bad["row_json"][0])["user_id"] == LONG_USER
    assert bad["reason"][0].startswith("prompt_too_long") and "512" in bad["reason"][0]

    # one model load per Python worker, recorded with the provider
    assert run.metrics["model_loads"] == run.metrics["workers"] >= 1
    assert run.metrics["providers"] == ["CPUExecutionProvider"]
    assert run.metrics["partitions"] == 8 and run.metrics["ship"] == "shared"   # as set; a local[2] master
    assert run.rows_out == len(recs) and run.rows_quarantined == 1

    # a re-run replaces the slice: same rows, no duplicates; the table keeps its change feed
    _score(spark, conf)
    again = _recs(spark)
    assert len(again) == len(recs) and set(again["run_id"]) != set(recs["run_id"])
    props = {r.key: r.value for r in spark.sql("SHOW TBLPROPERTIES st.recs").collect()}
    assert props.get("delta.enableChangeDataFeed") == "true"
    changes = spark.sql("SELECT _change_type, count(*) AS n FROM table_changes('st.recs', 1) GROUP BY 1").collect()
    assert {r._change_type for r in changes} <= {"insert", "delete"} and changes
    latest = spark.table("st.latest_recs").toPandas()
    assert len(latest) == len(recs)


def test_older_date_backfill_keeps_latest_view_on_newest(spark, setup):
    from jobs import textualize
    conf = setup["conf"]
    older = DATE - dt.timedelta(days=300)       # only the first interactions existed then
    textualize.run(spark, conf, older)
    from jobs import score
    score.run(spark, conf, older)
    dates = {str(r.run_date) for r in spark.sql("SELECT DISTINCT run_date FROM st.recs").collect()}
    assert {str(DATE), str(older)} <= dates
    assert {str(r.run_date) for r in spark.sql("SELECT DISTINCT run_date FROM st.latest_recs").collect()} == {str(DATE)}


def test_check_wants_k_rows_for_every_user(spark, setup):
    """`lakerec check` passes the scored slice and fails one cut short by a single row."""
    from lakerec.quality import checks
    conf = setup["conf"].with_overrides({"quality.max_quarantined_share": 0.5})   # the long user's 1 of 12
    _score(spark, conf)
    results = checks(spark, conf, DATE)
    assert all(ok for ok, _ in results.values()), results
    spark.sql(f"DELETE FROM st.recs WHERE run_date = '{DATE}' AND user_id = 2 AND rank = {TOP_K}")
    ok, detail = checks(spark, conf, DATE)["rows_per_user"]
    assert not ok and detail.startswith("1 users without top_k 5 rows"), detail
    _score(spark, conf)                     # the slice whole again for the tests after this one


def test_missing_bundle_file_stops_before_writing(spark, setup):
    from lakerec.tables import delta_version
    from rec_udf.errors import BundleError
    root = setup["root"]
    broken = root / "broken_bundles"
    shutil.copytree(root / "bundles", broken)
    (broken / "v0001" / "fp32" / "generator.onnx").unlink()
    conf = setup["conf"].with_overrides({"models.bundles_dir": str(broken)})
    _score(spark, setup["conf"])
    before = delta_version(spark, "st.recs")
    with pytest.raises(BundleError, match="generator.onnx"):
        _score(spark, conf)
    assert delta_version(spark, "st.recs") == before


def test_llm_explainer_needs_a_bundle_that_carries_it(spark, setup, tmp_path):
    from lakerec.errors import ConfigError
    from lakerec.tables import delta_version
    from model_export.export import export_bundles
    from rec_udf.errors import BundleError
    conf = setup["conf"]
    export_bundles(setup["root"] / "models" / "versions" / "v0001", tmp_path / "bundles", ["fp32"], parity_users=4)
    bare = conf.with_overrides({"models.bundles_dir": str(tmp_path / "bundles")})
    _score(spark, conf)
    before = delta_version(spark, "st.recs")
    with pytest.raises(BundleError, match="this bundle has no explainer, and score.explainer is llm"):
        _score(spark, bare)
    assert delta_version(spark, "st.recs") == before
    _score(spark, bare.with_overrides({"score.explainer": "template"}))
    first = _recs(spark).query("rank == 1")
    assert set(first["explanation_source"]) == {"fallback"} and first["explanation"].str.startswith("Because you liked").any()
    _score(spark, bare.with_overrides({"score.explainer": "off"}))
    assert _recs(spark)["explanation"].isna().all()
    with pytest.raises(ConfigError, match=r"score\.explainer: Input should be 'llm', 'template' or 'off'"):
        _score(spark, bare.with_overrides({"score.explainer": "gpt"}))


def test_no_prompts_for_the_date_stops_with_a_message(spark, setup):
    from jobs import score
    from lakerec.errors import StructuralError
    with pytest.raises(StructuralError, match="no prompts for run_date 2020-01-01"):
        score.run(spark, setup["conf"], dt.date(2020, 1, 1))


def test_cuda_requested_without_gpu_fails_unless_fallback_allowed(spark, setup):
    from lakerec.tables import delta_version
    conf = setup["conf"].with_overrides({"score.device": "cuda"})
    before = delta_version(spark, "st.recs")
    from rec_udf.errors import BundleError
    with pytest.raises(BundleError, match="CUDA execution provider.*raised on an executor"):
        _score(spark, conf)
    assert delta_version(spark, "st.recs") == before
    run = _score(spark, conf.with_overrides({"score.allow_cpu_fallback": True}))
    assert run.metrics["providers"] == ["CPUExecutionProvider"]


def test_score_frames_row_errors_do_not_stop_the_batch(setup):
    from rec_udf.bundle import MANIFEST, sha256
    from rec_udf.scoring_udf import BundleRef, ScoringSpec, score_frames
    bundle = setup["root"] / "bundles" / "v0001" / "fp32"
    spec = ScoringSpec(BundleRef(sha256(bundle / MANIFEST), path=str(bundle)), top_k=3, explain_k=0, explainer="off",
                       max_new_tokens=40, explain_batch_size=8, explain_attempts=3, batch_size=4, device="cpu", allow_cpu_fallback=False)
    good = "User 5 is a 30-year-old woman. They watched Night River 1 (1990; Drama), rated 4."
    frame = pd.DataFrame({
        "user_id": [1, 2, 3, 4, 5],
        "prompt": [good, None, good, "word " * 900, good],
        "entity_spans": [[], [], [{"item_id": 101, "start": 70, "end": 9999}], [], []],
        "sequence_item_ids": [[101, 555], [], [101], [], None],
        "seen_item_ids": [[101], [], [101], [], []],
    })
    out = pd.concat([f.astype(object) for f in score_frames(iter([frame, frame.iloc[:0]]), spec)])
    errors = out.dropna(subset=["error"]).set_index("user_id")["error"]
    assert errors[2] == "missing_prompt"
    assert errors[3].startswith("bad_entity_span")
    assert errors[4].startswith("prompt_too_long")
    assert errors[5].startswith("missing_sequence_item_ids")
    ok = out[out["error"].isna()]
    assert list(ok["user_id"]) == [1, 1, 1] and 101 not in set(ok["item_id"])    # unknown 555 ignored
    # batch_size None (conf `auto`): the bundle's own batch size; the same rows as one user per call
    many = pd.DataFrame({"user_id": range(10, 16), "prompt": [good] * 6, "entity_spans": [[]] * 6,
                         "sequence_item_ids": [[101], [101, 555], [555], [101], [555, 101], [101]],
                         "seen_item_ids": [[101]] * 6})
    one_by_one, auto = (pd.concat([f.astype(object) for f in score_frames(iter([many]), replace(spec, batch_size=size))])
                        .sort_values(["user_id", "rank"]).reset_index(drop=True) for size in (1, None))
    assert len(one_by_one) == 18
    pd.testing.assert_frame_equal(auto, one_by_one, check_exact=False, rtol=1e-5)


def test_a_bundle_serving_the_id_side_alone_checks_prompts_but_never_tokenizes_them(setup, monkeypatch):
    from rec_udf.bundle import MANIFEST, sha256
    from rec_udf.recommender import LazySessions
    from rec_udf.scoring_udf import BundleRef, ScoringSpec, recommender_for, score_frames
    bundle = setup["root"] / "bundles" / "v0001" / "fp32"
    spec = ScoringSpec(BundleRef(sha256(bundle / MANIFEST), path=str(bundle)), top_k=3, explain_k=0, explainer="off",
                       max_new_tokens=40, explain_batch_size=8, explain_attempts=3, batch_size=None, device="cpu", allow_cpu_fallback=False)
    recommender = recommender_for(spec)
    monkeypatch.setattr(recommender, "lm_weight", 0.0)          # what a bundle exported with lm_weight 0 holds
    # fresh sessions (this process's cached Recommender may have run the LM graphs for another test)
    monkeypatch.setattr(recommender, "sessions", LazySessions(recommender.bundle, recommender.device))

    def no_tokenizing(*args, **kwargs):
        raise AssertionError("a prompt was tokenized")
    monkeypatch.setattr(recommender, "inputs", SimpleNamespace(example=no_tokenizing, batch=no_tokenizing))
    good = "User 5 is a 30-year-old woman. They watched Night River 1 (1990; Drama), rated 4."
    frame = pd.DataFrame({"user_id": [1, 2, 3, 4], "prompt": [good, None, good, "word " * 900],
                          "entity_spans": [[], [], [{"item_id": 101, "start": 70, "end": 9999}], []],
                          "sequence_item_ids": [[101, 555], [101], [101], [101]],
                          "seen_item_ids": [[101], [101], [101], [101]]})
    out = pd.concat([f.astype(object) for f in score_frames(iter([frame]), spec)])
    errors = out.dropna(subset=["error"]).set_index("user_id")["error"]
    assert errors[2] == "missing_prompt" and errors[3].startswith("bad_entity_span")
    ok = out[out["error"].isna()]
    # a long prompt is no reason to refuse a model that does not read it; nothing was read
    assert list(ok["user_id"]) == [1, 1, 1, 4, 4, 4] and set(ok["prompt_tokens"]) == {0}
    want = recommender.top_k(recommender.encode([None], [[101, 555]])[0], 3, exclude=[[101]])[0][0]
    assert list(ok[ok["user_id"] == 1]["item_id"]) == list(recommender.bundle.item_ids[want])
    assert "user_encoder" not in recommender.sessions and "generator" not in recommender.sessions


def test_auto_batch_size_small_for_the_cpu_lm_pass_larger_for_the_id_side_alone_and_gpus():
    from rec_udf.recommender import auto_batch_size
    assert auto_batch_size(0.0, on_gpu=False) > auto_batch_size(0.3, on_gpu=False)
    assert auto_batch_size(0.3, on_gpu=True) >= auto_batch_size(0.0, on_gpu=False)


def test_ab_assign_score_variant_and_evaluate(spark, setup):
    from jobs import ab, score, textualize
    conf = setup["conf"].with_overrides({"tables.ab_assignments": "st.ab_assignments", "tables.ab_metrics": "st.ab_metrics",
                                         "ab.bootstrap": 200})
    ab.assign(spark, conf, DATE)
    first = spark.table("st.ab_assignments").toPandas().set_index("user_id")["variant"]
    ab.assign(spark, conf, DATE)
    again = spark.table("st.ab_assignments").toPandas().set_index("user_id")["variant"]
    assert len(first) == 12 and first.index.is_unique and first.sort_index().equals(again.sort_index())
    assert set(first) == {"control", "treatment"}
    other = ab_assignments_with_salt(spark, conf, "another-salt")
    assert not other.sort_index().equals(first.sort_index())

    score.run(spark, conf, DATE, variant="treatment")
    recs = spark.table("st.recs").where(f"run_date = '{DATE}'").toPandas()
    treated = recs[recs["variant"] == "treatment"]
    assert set(treated["user_id"]) == set(first[first == "treatment"].index) - {LONG_USER}
    assert set(recs.loc[recs["variant"] == "default", "user_id"]) == set(range(1, 13)) - {LONG_USER}  # untouched

    textualize.run(spark, conf, DATE, holdout=True)
    ab.evaluate(spark, conf, DATE)
    metrics = spark.table("st.ab_metrics").toPandas()
    assert sorted(zip(metrics["variant"], metrics["metric"])) == [
        ("control", "hr@10"), ("control", "ndcg@10"), ("treatment", "hr@10"), ("treatment", "ndcg@10")]
    assert ((metrics["ci_low"] <= metrics["value"] + 1e-12) & (metrics["value"] <= metrics["ci_high"] + 1e-12)).all()
    control = metrics[metrics["variant"] == "control"]
    assert (control["diff"] == 0).all()
    holdout_users = spark.table("st.holdout_prompts").where(f"run_date = '{DATE}'").count()
    assert metrics.groupby("variant")["users"].first().sum() == holdout_users - 1    # the over-long prompt


def test_a_hostile_variant_name_replaces_only_its_own_slice(spark, setup):
    """A variant name with quotes cannot widen the slice predicate: other variants' rows stay as they were."""
    from jobs import ab, score
    hostile = "x' OR variant <> 'x"
    conf = setup["conf"].with_overrides({
        "tables.ab_assignments": "st.ab_assignments", "tables.ab_metrics": "st.ab_metrics", "ab.experiment": "hostile",
        "ab.variants": {"control": {"share": 0.5, "model": "champion"}, hostile: {"share": 0.5, "model": "champion"}}})
    before = _recs(spark)
    ab.assign(spark, conf, DATE)
    score.run(spark, conf, DATE, variant=hostile)
    after = _recs(spark)

    def others(df):
        rows = df[df["variant"] != hostile].sort_values(["variant", "user_id", "rank"])
        return rows[["variant", "user_id", "rank", "item_id", "run_id"]].reset_index(drop=True)
    assert len(others(before)) > 0 and others(after).equals(others(before))
    assert (after["variant"] == hostile).sum() > 0


def ab_assignments_with_salt(spark, conf, salt):
    from lakerec import ab
    return ab.assignments(spark, conf.with_overrides({"ab.salt": salt}), "x").toPandas().set_index("user_id")["variant"]


def test_stream_restarted_mid_way_has_no_duplicates_and_no_gaps(spark, setup, monkeypatch, tmp_path):
    from lakerec import streaming
    from lakerec.tables import append
    conf = setup["conf"].with_overrides({"tables.live_recommendations": "st.live", "score.explain_top_k": 0,
                                         "stream.checkpoint_dir": str(tmp_path / "checkpoint")})
    streaming.start(spark, conf).awaitTermination()          # catch up on everything so far
    conf = conf.with_overrides({"stream.max_files_per_trigger": 1})
    live = spark.table("st.live").toPandas()
    assert set(live["user_id"]) == set(range(2, COLD_USER))  # the cold user has no interactions yet

    later = dt.datetime(2026, 11, 1)
    batches = [[(2, 150, later, 4.0), (4, 151, later, 3.0)],
               [(5, 152, later, 5.0), (COLD_USER, 153, later, 4.0), (6, 154, later, 9.0)]]   # last: bad rating
    for rows in batches:                                     # two commits, one file each: two micro-batches
        append(spark.createDataFrame(rows, "user_id bigint, item_id bigint, event_time timestamp, rating float")
               .coalesce(1), "st.interactions")

    real_merge, merges = streaming.merge_live, []

    def crash_after_commit(*args, **kwargs):     # the MERGE commits, the checkpoint never hears of it
        real_merge(*args, **kwargs)
        merges.append(args[-1])
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(streaming, "merge_live", crash_after_commit)
    with pytest.raises(Exception, match="simulated crash"):
        streaming.start(spark, conf).awaitTermination()
    monkeypatch.undo()
    history = lambda: spark.sql("DESCRIBE HISTORY st.live").where("operation = 'MERGE'").count()  # noqa: E731
    merges_after_crash = history()
    streaming.start(spark, conf).awaitTermination()          # restart from the checkpoint
    assert history() == merges_after_crash + 1               # the replayed batch was skipped (txnAppId/txnVersion)

    live = spark.table("st.live").toPandas()
    assert not live.duplicated(["user_id", "rank"]).any()
    assert live.groupby("user_id").size().eq(TOP_K).all()
    assert set(live["user_id"]) == set(range(2, COLD_USER)) | {COLD_USER}     # no gap: the second commit arrived
    for user, item, *_ in batches[0] + batches[1][:2]:       # fresh history is excluded from the fresh lists
        assert item not in set(live.loc[live["user_id"] == user, "item_id"])
    bad = spark.table("st.quarantine").where("job = 'stream'").toPandas()
    # each bad row once, replay or not: the bad rating of the second commit; at catch-up, the interaction
    # with the item deleted from the items table, and the over-long user's prompt
    assert sorted(bad["reason"].str.split(":").str[0]) == ["prompt_too_long", "rating_out_of_range",
                                                           "unknown_item_id"], bad
    run_of = lambda user: live.loc[live["user_id"] == user, "run_id"].iloc[0]  # noqa: E731
    assert run_of(2) == run_of(4) != run_of(3)               # only touched users were re-scored


def test_docs_sql_examples_run(spark, setup):
    """Each ```sql block of docs/sql.md runs against the tables scored above (test order: after the
    scoring and A/B tests of this module) and returns rows; names map to this module's tables."""
    import re
    from pathlib import Path
    conf = setup["conf"].with_overrides({"tables.ab_metrics": "st.ab_metrics"})
    names = {"recs.latest_recommendations": conf.require("tables.latest_recommendations"),
             "recs.user_recommendations": conf.require("tables.recommendations"),
             "recs.ab_metrics": conf.require("tables.ab_metrics"),
             "recs.holdout_recommendations": conf.require("tables.holdout_recommendations"), "warehouse.items": conf.require("source.items.table"),
             "lakerec.runs": conf.require("tables.runs")}
    text = (Path(__file__).resolve().parent.parent / "docs" / "sql.md").read_text()
    blocks = re.findall(r"```sql\n(.*?)```", text, re.S)
    assert len(blocks) == 8
    for block in blocks:
        for name, actual in names.items():
            block = block.replace(name, actual)
        rows = spark.sql(block).collect()
        assert rows, block
    top = spark.sql(blocks[0].replace("recs.latest_recommendations", names["recs.latest_recommendations"])).collect()
    assert [r["rank"] for r in top] == list(range(1, TOP_K + 1))
