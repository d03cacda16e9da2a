"""`lakerec train-explainer`: LoRA self-training of the explainer LLM on its own faithful sentences
(lakerec/model/explainer_self_train.py), measured on held-out users before and after.

Evidence comes from the prompts table of --run-date and the champion's bundle (its item space and
catalogue), exactly as the recommender builds it: for each user, the newest history item plays the
recommended item and the rest of the history is the evidence pool. Odd user ids train, even ones
are held out. The next `lakerec export` ships the self-trained explainer only when its held-out pass
rate beat the base model's (`self_train.json` says which).
"""
from __future__ import annotations


from pyspark.sql import functions as F

from lakerec.errors import StructuralError
from lakerec.model import explainer as explainer_model
from lakerec.model.explainer_self_train import SelfTrainConfig, self_train
from lakerec.registry import Registry
from rec_udf.recommender import Recommender


def evidence_sets(spark, conf, run_date, recommender: Recommender, n_train: int, n_heldout: int):
    table = conf.require("tables.prompts")
    rows = (spark.table(table).where(F.col("run_date") == F.lit(run_date)).where(F.size("sequence_item_ids") >= 2)
            .select("user_id", "sequence_item_ids", "sequence_ratings").orderBy("user_id").collect())
    if not rows:
        raise StructuralError(f"{table} has no prompts with 2+ history items for run_date {run_date}; "
                              f"run `lakerec textualize --run-date {run_date}` first")
    train, heldout = [], []
    for row in rows:
        index = recommender.catalogue_index(row.sequence_item_ids)
        if index[-1] < 0:
            continue
        ratings = list(row.sequence_ratings) if row.sequence_ratings is not None else None
        evidence = recommender.evidence(int(index[-1]), row.sequence_item_ids[:-1], ratings[:-1] if ratings else None)
        if not evidence.items:
            continue
        (train if row.user_id % 2 else heldout).append(evidence)
    return train[:n_train], heldout[:n_heldout]


def run(spark, conf, run_date) -> dict:
    registry = Registry.from_conf(conf)
    version = registry.resolve(conf.settings.score.model).name
    bundle = registry.bundle_dir(version, "fp32")
    if not bundle.exists():
        raise StructuralError(f"no fp32 bundle for {version} at {bundle}; run `lakerec export --model {version}`")
    recommender = Recommender.open(bundle, prefer="cpu")
    train, heldout = evidence_sets(spark, conf, run_date, recommender, int(conf.get("explainer.train_prompts")),
                                   int(conf.get("explainer.heldout_prompts")))
    cache = conf.cache_dir
    base_hf = explainer_model.base_copy(cache)
    base_onnx = explainer_model.base_onnx(cache, "int4")
    config = SelfTrainConfig(**{k: v for k, v in (conf.get("explainer.self_training") or {}).items()})
    work = explainer_model.home(cache) / "self-train"
    work.mkdir(parents=True, exist_ok=True)
    report = self_train(base_hf, base_onnx, work, train, heldout, recommender.title_index, config,
                        threads=conf.get("export.threads"))
    before, after = report["before"]["pass_rate"], report["after"]["pass_rate"]
    print(f"explainer self-training on {len(train)} prompts ({report['targets']} faithful targets): held-out pass "
          f"rate {before:.1%} -> {after:.1%} on {len(heldout)} prompts; shipping the {report['shipped']} explainer "
          f"(re-export bundles: `lakerec export --force`)")
    return report
