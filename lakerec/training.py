"""The training run behind `lakerec train`: data -> ID model -> LM stage 1 -> LM stage 2 -> evaluation
-> registry. Baselines and every model are measured on the same leave-one-out split in the same run.
Each seed trains the ID side (`lakerec.id_side`) and the LM on top of it (`train_seed`); the seed
with the best hybrid validation NDCG@10 is registered (`lakerec.register`)."""
from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass

import numpy as np
import torch
from pyspark.sql import functions as F

from lakerec import logs
from lakerec.config import Conf
from lakerec.errors import ConfigError
from lakerec.eval.baselines import als, most_popular
from lakerec.eval.protocol import SplitData, collect_split
from lakerec.eval.recorder import Recorder, evaluated, score_matrix
from lakerec.eval.split import TEST, VALID, leave_one_out
from lakerec.id_side import add_partners, add_text_view, frozen, sequential_scores, train_id_model
from lakerec.model import hybrid
from lakerec.model.device import device
from lakerec.model.eval_llm import Evaluator
from lakerec.model.examples import ExampleBuilder, TextData, collect_text_data, item_examples
from lakerec.model.hybrid import IDSide
from lakerec.model.recllm import RecLLM
from lakerec.registry import Registry
from lakerec.model.sasrec import SASRec
from lakerec.model.store import attach_id_model, build_model, load_model
from lakerec.model.train_llm import Trainer
from lakerec.profiles import Profile
from lakerec.prompts import template_spec
from lakerec.register import register_version
from rec_udf import textualizer


log = logs.get(__name__).info


def prepare_data(spark, conf: Conf, good: dict, run_date: dt.date) -> tuple[SplitData, TextData, object]:
    """Interactions up to the end of the run date, split leave-one-out."""
    cutoff = dt.datetime.combine(run_date + dt.timedelta(days=1), dt.time())
    interactions = good["interactions"].where(F.col("event_time") < F.lit(cutoff))
    split_df = leave_one_out(interactions).cache()
    split = collect_split(split_df, good["items"])
    if not split.test:
        raise ConfigError(f"no user has 3 or more interactions up to {run_date}: nothing to train or evaluate on")
    text = collect_text_data(split, split_df, good["users"], good["items"])
    return split, text, split_df


def builder_for(conf: Conf, text: TextData, tokenizer, special) -> ExampleBuilder:
    return ExampleBuilder(text, tokenizer, special, max_tokens=int(conf.get("textualize.max_prompt_tokens")),
                          max_items=int(conf.get("textualize.max_history_items")), spec=template_spec(conf))


@dataclass
class WarmStart:
    """The version a run starts from (`--from`): its LM, its ID model's SASRecs and their item ids."""
    model: RecLLM
    sasrec: SASRec
    partners: list
    items: np.ndarray


def load_warm_start(registry: Registry, warm_from: str | None) -> WarmStart | None:
    if not warm_from:
        return None
    path = registry.resolve(warm_from)
    model, side, info, _, items = load_model(path, device())
    if info["template"]["version"] != textualizer.TEMPLATE_VERSION:
        raise ConfigError(f"{path / 'model.json'}: trained on prompt template "
                          f"{info['template']['version']}, the textualizer is "
                          f"{textualizer.TEMPLATE_VERSION}; train from scratch (without --from)")
    log(f"[train] warm start from {path.name}")
    return WarmStart(model, side.sasrec, list(side.partners), items)   # the text view is trained afresh (minutes)


def record_baselines(spark, split: SplitData, profile: Profile, rec: Recorder, test_users: np.ndarray) -> None:
    if profile.baselines.get("most_popular", True):
        rec.ranking("most_popular", None, TEST, evaluated(score_matrix(most_popular(split), test_users),
                                                          test_users, split, TEST))
    if profile.baselines.get("als", True):
        als_scores = als(spark, split, max_iter=int(profile.baselines.get("als_iterations", 15)))
        rec.ranking("als", None, TEST, evaluated(score_matrix(als_scores, test_users), test_users, split, TEST))


@dataclass
class SeedResult:
    """One seed's trained hybrid: what choosing the best seed, registering it and the report need."""
    seed: int
    model: RecLLM
    side: IDSide
    lm_weight: float
    hybrid_valid: dict
    hybrid_test: dict
    id_valid: dict                   # the ID model's (SASRec, or its seed ensemble) validation metrics
    id_test: dict
    sasrec_valid: dict
    sasrec_test: dict
    stats: dict                      # the report's per-seed numbers: throughput, weights, stage histories


def train_seed(conf: Conf, profile: Profile, run, seed: int, split: SplitData, text: TextData,
               users: dict[str, np.ndarray], rec: Recorder, warm: WarmStart | None) -> SeedResult:
    """The ID side, then the LM on top of it (`train_lm`), each recorded on the evaluated `users`."""
    torch.manual_seed(seed)
    warm_sasrec, warm_partners, warm_items = (warm.sasrec, warm.partners, warm.items) if warm else (None, [], None)
    with run.timed(f"seed{seed}_sasrec_s"):
        fitted = train_id_model(split, profile, seed, warm_sasrec, warm_items)
    id_model = frozen(fitted.model)
    sas = {on: sequential_scores(id_model, split, on, users[on]) for on in (VALID, TEST)}
    sasrec = {on: rec.ranking("sasrec", seed, on, sas[on]) for on in (VALID, TEST)}

    model, tokenizer, special, _ = build_model(profile.llm, split.n_items, id_model)
    with run.timed(f"seed{seed}_id_partners_s"):
        side, id_scores, id_metrics = add_partners(split, profile, seed, id_model, sas, users, rec, warm_partners,
                                                   warm_items)
    id_valid_honest = id_metrics[VALID]       # the ID side's validation metrics, out of fold
    if profile.text_view:         # the text view reads the backbone's own features (before any LoRA)
        with run.timed(f"seed{seed}_text_view_s"):
            features = model.eval().item_features(item_examples(tokenizer, special, text.items, False), special.pad)
            side, id_scores, id_valid_honest = add_text_view(split, profile, seed, features, side, id_scores,
                                                             users, rec)
    if warm is not None:
        model.load_state_dict({k: v for k, v in warm.model.state_dict().items() if k != "id_items"}, strict=False)
        attach_id_model(model, id_model)
    model.to(device())
    config = profile.llm_train.__class__(**{**profile.llm_train.to_dict(), "seed": seed})
    trainer = Trainer(model, builder_for(conf, text, tokenizer, special), id_model, config, device())
    stages = train_lm(trainer, profile, run, seed, split, users[TEST], rec, id_scores[VALID], warm is not None)
    stage2 = stages["stage2"]
    weight = stage2["lm_weight"]
    with run.timed(f"seed{seed}_eval_hybrid_s"):
        hybrid_valid, hybrid_test, generation = evaluate_hybrid(Evaluator(trainer), seed, split, users[TEST], rec,
                                                                stage2, side.text_weight, id_scores[TEST],
                                                                id_valid_honest)
    seconds = trainer.train_seconds
    stats = {"examples_per_s": trainer.examples_seen / seconds if seconds else 0.0,
             "useful_tokens_per_s": trainer.tokens_real / seconds if seconds else 0.0,
             "padding_share": 1 - trainer.tokens_real / max(trainer.tokens_padded, 1), "precision": trainer.precision,
             "sasrec_examples_per_s": fitted.examples_per_s, "lm_weight": weight, "text_weight": side.text_weight,
             "weight_table": stage2["weight_table"], "explanation_example": generation["explanation"]["example"],
             "stages": {name: stage["history"] for name, stage in stages.items()}}
    log(f"[train] seed {seed}: test ndcg@10 hybrid {hybrid_test['ndcg@10']:.4f} (lm_weight {weight}), "
        f"SASRec {sasrec[TEST]['ndcg@10']:.4f}; validation hybrid {hybrid_valid['ndcg@10']:.4f}, "
        f"ID model {id_metrics[VALID]['ndcg@10']:.4f}, SASRec {sasrec[VALID]['ndcg@10']:.4f}")
    return SeedResult(seed, model, side, weight, hybrid_valid, hybrid_test, id_metrics[VALID], id_metrics[TEST],
                      sasrec[VALID], sasrec[TEST], stats)


def train_lm(trainer: Trainer, profile: Profile, run, seed: int, split: SplitData, test_users: np.ndarray,
             rec: Recorder, id_valid: np.ndarray, warm_started: bool) -> dict:
    """The LM's stages on top of the ID side (`id_valid`: its validation scores). Returns each
    stage's `Trainer.fit_stage` result by name."""
    stages = {}
    # Stage 1 (text only, LLaRA's curriculum start): its LM alone is the `lm_text` row.
    if not warm_started and profile.llm_train.stage1_epochs > 0:
        with run.timed(f"seed{seed}_stage1_s"):
            stages["stage1"] = trainer.fit_stage("stage1", profile.llm_train.stage1_epochs, unified=False)
        with run.timed(f"seed{seed}_eval_lm_text_s"):
            rec.add("lm_text", seed, VALID, stages["stage1"]["best_valid"])
            rec.ranking("lm_text", seed, TEST, evaluated(Evaluator(trainer).lm_scores(test_users, TEST, False),
                                                         test_users, split, TEST))
    # Stage 2 (unified prompts): the hybrid = the ID side + lm_weight * this LM, weight fitted on validation.
    with run.timed(f"seed{seed}_stage2_s"):
        stages["stage2"] = trainer.fit_stage("stage2", profile.llm_train.stage2_epochs, unified=True,
                                             id_valid=id_valid, min_confidence=profile.mix_confidence)
    return stages


def evaluate_hybrid(evaluator: Evaluator, seed: int, split: SplitData, test_users: np.ndarray, rec: Recorder,
                    stage2: dict, text_weight: float, id_test: np.ndarray,
                    id_valid_honest: dict) -> tuple[dict, dict, dict]:
    """The rows of the stage-2 LM and of the hybrid (the ID side's `id_test` + lm_weight * the LM) at
    the weight chosen on validation, and of the generation tasks. The hybrid's validation metrics
    are out of fold: the LM mix's when the LM term is served, else the ID side's
    (`id_valid_honest`). Returns the hybrid's validation and test metrics and the generation report."""
    weight = stage2["lm_weight"]
    lm_test = evaluated(evaluator.lm_scores(test_users, TEST, True), test_users, split, TEST)
    rec.ranking("lm_unified", seed, TEST, lm_test)
    rec.add("lm_unified", seed, VALID, stage2["best_valid"])
    hybrid_valid = stage2["best_hybrid_valid"] if weight > 0 else id_valid_honest
    rec.add("hybrid", seed, VALID, hybrid_valid)
    hybrid_test = rec.ranking("hybrid", seed, TEST, evaluated(
        hybrid.mix(id_test, lm_test.scores, weight), test_users, split, TEST))
    rec.add("hybrid", seed, VALID, {"lm_weight": weight, "text_weight": text_weight,
                                    "lm_confidence": stage2["lm_confidence"]}, family="mix")
    generation = evaluator.generation_report(TEST, unified=True)
    for family, values in generation.items():
        rec.add("hybrid", seed, TEST, values, template="heldout" if family.endswith("_heldout") else "trained",
                family=family.removesuffix("_heldout"))
    return hybrid_valid, hybrid_test, generation


def serving_message(best: SeedResult, mix_confidence: float) -> str:
    """What the registered version serves, and why, in a sentence for the log and the report."""
    k, text_weight = len(best.side.members), best.side.text_weight
    id_model = "SASRec" if k == 1 else f"the ID model (SASRec x {k} seeds)"
    text_part = f"text view weight {text_weight}" if text_weight else "no text view (it did not help on validation)"
    if best.lm_weight > 0:
        return f"LM term weight {best.lm_weight} over {id_model}, {text_part} (chosen on validation, seed {best.seed})"
    return (f"the LM term did not help on validation (out of fold, at {mix_confidence:.0%} confidence): "
            f"lm_weight 0, serving {id_model} with {text_part} (seed {best.seed})")


def run_training(spark, conf: Conf, good: dict, versions: dict, run, profile: Profile,
                 warm_from: str | None = None) -> dict:
    """Everything `lakerec train` does after validation. Returns the run's results."""
    torch.set_num_threads(max(1, int(conf.get("train.threads") or os.cpu_count() or 1)))
    split, text, split_df = prepare_data(spark, conf, good, run.run_date)
    limit = profile.llm_train.rank_users or None
    users = {VALID: np.array(sorted(split.valid)[:limit], dtype=np.int64),
             TEST: np.array(sorted(split.test)[:limit], dtype=np.int64)}
    log(f"[train] {len(split.test)} users, {split.n_items} items, profile {profile.name}, device {device()}; "
        f"every model ranked on the same {len(users[TEST])} test and {len(users[VALID])} validation users")
    registry = Registry.from_conf(conf)
    warm = load_warm_start(registry, warm_from)
    rec = Recorder(split)
    results: dict = {"rows": rec.rows, "seeds": {}, "paired": {}, "paired_id_model": {}}
    with run.timed("baselines_s"):
        record_baselines(spark, split, profile, rec, users[TEST])
    split_df.unpersist()

    best = None
    for seed in profile.seeds:
        result = train_seed(conf, profile, run, seed, split, text, users, rec, warm)
        results["paired"][seed] = rec.paired("hybrid", "sasrec", seed)
        results["paired_id_model"][seed] = rec.paired("hybrid", "id_model", seed)   # what text and the LM add
        results["seeds"][seed] = result.stats
        if best is None or result.hybrid_valid["ndcg@10"] > best.hybrid_valid["ndcg@10"]:
            best = result
        del result                    # a losing seed's model is not kept while the next seed trains

    serving = hybrid.serving_label(best.lm_weight, best.side.text_weight)
    message_mix = serving_message(best, profile.mix_confidence)
    log(f"[train] {message_mix}")
    valid_ndcg = best.hybrid_valid["ndcg@10"]
    version, promoted, message = register_version(
        registry, conf, profile, run, versions, warm_from, split, text, best.model, best.side, best.seed,
        best.lm_weight, metrics={"valid_ndcg@10": valid_ndcg, "valid_users": len(users[VALID]),
                                 "id_model_valid_ndcg@10": best.id_valid["ndcg@10"],
                                 "sasrec_valid_ndcg@10": best.sasrec_valid["ndcg@10"], "test": best.hybrid_test,
                                 "test_id_model": best.id_test, "test_sasrec": best.sasrec_test})
    results.update(version=version, promoted=promoted, message=message, valid_ndcg=valid_ndcg,
                   n_users=len(split.test), n_items=split.n_items, test_users=len(users[TEST]),
                   lm_weight=best.lm_weight, serving=serving, serving_message=message_mix)
    return results
