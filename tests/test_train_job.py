"""`lakerec train` on a small synthetic slice (the quick profile, shrunk further): a version is
registered with its files, metrics land in model_metrics and the report, champion/challenger holds,
and `--from champion` warm-starts."""
import datetime as dt
import json

import pytest
from pyspark.sql import functions as F

from jobs import generate, models, train
from lakerec.registry import Registry
from tests.warehouse_fixtures import conf_for

RUN_DATE = dt.date(2026, 1, 1)
TINY = {
    "train.profiles.quick.sasrec_train.epochs": 2,
    "train.profiles.quick.sasrec_train.eval_every": 1,
    "train.profiles.quick.baselines.als_iterations": 2,
    "train.profiles.quick.llm_train.max_users": 12,
    "train.profiles.quick.llm_train.eval_users": 3,
    "train.profiles.quick.llm_train.max_new_tokens": 3,
    "train.profiles.quick.llm_train.stage1_epochs": 1,      # both stages (the demo's quick profile skips stage 1)
    "train.threads": 2,
}


def test_quick_training_registers_a_champion_and_warm_starts_from_it(spark, base_conf, tmp_path):
    conf = conf_for(base_conf, "trainjob").with_overrides({**TINY, "models.registry_dir": str(tmp_path / "models")})
    generate.run(spark, conf, RUN_DATE, users=40, items=30, seed=3, mean_interactions=8)

    first = train.run(spark, conf, RUN_DATE)
    registry = Registry.from_conf(conf)
    assert first.metrics["model_version"] == "v0001" and first.metrics["promoted"]
    assert registry.champion()["version"] == "v0001"
    directory = registry.resolve("champion")
    for name in ("model.json", "trainable.safetensors", "id_model.safetensors", "item_ids.npy",
                 "adapter/adapter_config.json", "report/report.md", "report/report.png"):
        assert (directory / name).exists(), name
    info = json.loads((directory / "model.json").read_text())
    assert info["lineage"]["input_table_versions"]["trainjob.interactions"] is not None
    assert info["template"]["name"] == "user_history"

    metrics = spark.table("trainjob.model_metrics").where(F.col("run_id") == first.run_id)
    found = {(r.model, r.family, r.template) for r in metrics.select("model", "family", "template").distinct().collect()}
    for model in ("most_popular", "als", "sasrec", "id_model", "text_view", "id_model+text_view", "lm_text",
                  "lm_unified", "hybrid"):
        assert (model, "ranking", "trained") in found and (model, "ranking_tail", "trained") in found
        assert (model, "direct", "trained") in found           # 20 candidates by candidate scoring
    assert ("hybrid", "direct_generated", "heldout") in found and ("hybrid", "rating", "trained") in found
    # every full-ranking row of a split is computed on the same users
    users = {(r.split, r.value) for r in metrics.where((F.col("family") == "ranking") & (F.col("metric") == "users"))
             .select("split", "value").collect()}
    assert len({split for split, _ in users}) == len(users) == 2
    # never served below its own ID model (the quick profile's: SASRec from 2 seeds): the hybrid's
    # validation NDCG@10 is at least the ID model's, and the version says what it serves
    assert info["metrics"]["valid_ndcg@10"] >= info["metrics"]["id_model_valid_ndcg@10"]
    assert info["id_partners"] == 1 and (directory / "id_partners.safetensors").exists()
    lm_weight, text_weight = info["hybrid"]["lm_weight"], info["hybrid"]["text_weight"]
    assert info["hybrid"]["serving"] == ("hybrid" if lm_weight > 0 else "id_model+text_view" if text_weight > 0
                                         else "id_model")
    # each added term's confidence is recorded beside its weight
    mix = {r.metric: r.value for r in metrics.where(F.col("family") == "mix").collect()}
    assert mix["lm_weight"] == lm_weight and mix["text_weight"] == text_weight
    assert 0.0 <= mix["lm_confidence"] <= 1.0 and 0.0 <= mix["text_confidence"] <= 1.0
    # a text view is stored exactly when it is served (weight > 0)
    assert (directory / "text_view.safetensors").exists() == (text_weight > 0) == ("text_view" in info)
    report = (directory / "report" / "report.md").read_text()
    assert "| hybrid |" in report and "| sasrec |" in report and "**Served:**" in report
    quality = json.loads((directory / "report" / "quality.json").read_text())
    assert set(quality["models"]) >= {"sasrec", "hybrid"} and quality["paired_hybrid_vs_sasrec"]

    listing = models.rows(conf)
    assert [(r["version"], r["champion"]) for r in listing] == [("v0001", True)]

    second = train.run(spark, conf, RUN_DATE, warm_from="champion")
    assert second.metrics["model_version"] == "v0002"
    assert registry.describe("v0002")["lineage"]["warm_start_from"] == "champion"
    champion = registry.champion()["version"]
    v1, v2 = (registry.describe(v)["metrics"]["valid_ndcg@10"] for v in ("v0001", "v0002"))
    assert champion == ("v0002" if v2 >= v1 else "v0001")
    # re-running the same run date replaces only that run's metric rows
    assert spark.table("trainjob.model_metrics").select("run_id").distinct().count() == 2


def test_promotion_needs_at_least_the_champions_validation_ndcg_on_the_same_users(tmp_path):
    registry = Registry(tmp_path)
    assert registry.promote_if_better("v0001", {"valid_ndcg@10": 0.10, "valid_users": 943})[0]
    assert not registry.promote_if_better("v0002", {"valid_ndcg@10": 0.09, "valid_users": 943})[0]
    assert registry.champion()["version"] == "v0001"
    assert registry.promote_if_better("v0003", {"valid_ndcg@10": 0.10, "valid_users": 943})[0]
    assert registry.champion() | {"promoted_at": None} == {"version": "v0003", "valid_ndcg@10": 0.10,
                                                            "valid_users": 943, "promoted_at": None,
                                                            "previous": "v0001"}
    promoted, message = registry.promote_if_better("v0004", {"valid_ndcg@10": 0.5, "valid_users": 96})
    assert not promoted and "not comparable" in message


def test_a_model_below_its_own_id_model_on_validation_is_never_promoted(tmp_path):
    registry = Registry(tmp_path)
    promoted, message = registry.promote_if_better("v0001", {"valid_ndcg@10": 0.09, "valid_users": 943,
                                                             "sasrec_valid_ndcg@10": 0.10})
    assert not promoted and "below its own ID model" in message and registry.champion() is None
    assert registry.promote_if_better("v0002", {"valid_ndcg@10": 0.10, "valid_users": 943,
                                                "sasrec_valid_ndcg@10": 0.10})[0]
    # with a seed-ensemble ID model, the ensemble's validation score is the bar, not its first member's
    promoted, message = registry.promote_if_better("v0003", {"valid_ndcg@10": 0.105, "valid_users": 943,
                                                             "id_model_valid_ndcg@10": 0.11,
                                                             "sasrec_valid_ndcg@10": 0.10})
    assert not promoted and "0.1100" in message and registry.champion()["version"] == "v0002"


def test_unknown_model_version_is_a_clear_error(tmp_path):
    from lakerec.errors import ConfigError
    with pytest.raises(ConfigError, match="no champion"):
        Registry(tmp_path).resolve("champion")
    with pytest.raises(ConfigError, match="v0042"):
        Registry(tmp_path).resolve("v0042")


def test_promote_by_hand_overrides_the_metrics(tmp_path):
    registry = Registry(tmp_path)
    for version, ndcg in (("v0001", 0.2), ("v0002", 0.1)):
        (registry.versions_dir / version).mkdir(parents=True)
        (registry.versions_dir / version / "model.json").write_text(
            json.dumps({"metrics": {"valid_ndcg@10": ndcg, "valid_users": 10}}))
    assert registry.promote_if_better("v0001", {"valid_ndcg@10": 0.2, "valid_users": 10})[0]
    assert not registry.promote_if_better("v0002", {"valid_ndcg@10": 0.1, "valid_users": 10})[0]
    registry.promote("v0002")
    assert registry.champion()["version"] == "v0002" and registry.champion()["previous"] == "v0001"
