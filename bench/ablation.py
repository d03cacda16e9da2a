"""What each mechanism of the LM adds to ranking quality: one seed, the quick profile's LM training
(every user, one stage-2 epoch) with one mechanism taken out at a time, everything else equal (same
split, same SASRec, same users). For each variant: the LM alone and the hybrid (SASRec + lm_weight *
LM, the weight chosen on validation) on validation and test, full ranking, NDCG@10 and HR@10.

    python bench/ablation.py [--run-date 1998-04-23] [--seed 0] [--only base,no_masking,...]
Writes bench/results/ablation_ml100k.json and .md. Needs MovieLens ingested (`lakerec ingest`).
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from lakerec import training
from lakerec.config import load_conf
from lakerec.eval.metrics import ranking_metrics
from lakerec.eval.recorder import evaluated, score_matrix
from lakerec.eval.split import TEST, VALID
from lakerec.id_side import frozen, train_id_model
from lakerec.model import hybrid
from lakerec.model.device import device as torch_device
from lakerec.model.eval_llm import Evaluator
from lakerec.model.store import build_model
from lakerec.model.train_llm import Trainer
from lakerec.model.train_sasrec import scorer as sasrec_scorer
from lakerec.profiles import load_profile
from lakerec.sources.schema import read_sources
from lakerec.spark import build_session

# name -> (what is taken out, LLMTrainConfig changes, unified prompts in stage 2, freeze the 2D position tables)
VARIANTS = {
    "base": ("nothing (quick profile: stage 2 only, unified prompts, every loss)", {}, True, False),
    "no_masking": ("entity-aware masking of history spans (mask_prob 0)", {"mask_prob": 0.0}, True, False),
    "no_2d_positions": ("inter/intra-entity position tables (kept at zero)", {}, True, True),
    "no_id_tokens": ("projected ID tokens (text-only prompts; no alignment loss)", {"w_align": 0.0}, False, False),
    "no_align": ("the alignment contrastive loss (w_align 0)", {"w_align": 0.0}, True, False),
    "no_lm_loss": ("the LM (blank-infilling) loss (w_lm 0)", {"w_lm": 0.0}, True, False),
    "with_stage1": ("nothing; adds a text-only stage-1 epoch first (LLaRA curriculum)", {"stage1_epochs": 1}, True,
                    False),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-date", default="1998-04-23")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", default=",".join(VARIANTS))
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    conf = load_conf(None, ["spark.config.spark.driver.memory=3g"])
    spark = build_session(conf)
    good = {role: source.df for role, source in read_sources(spark, conf).items()}
    split, text, _ = training.prepare_data(spark, conf, good, dt.date.fromisoformat(args.run_date))
    profile = load_profile(conf, "quick")
    profile.llm_train.rank_users = None                 # every user, as the SASRec scores below
    fitted = train_id_model(split, profile, args.seed, None, None)
    id_model = frozen(fitted.model)
    valid_users, test_users = (np.array(sorted(d), dtype=np.int64) for d in (split.valid, split.test))
    device = torch_device()
    sas = {on: score_matrix(sasrec_scorer(id_model, split, on, device), users)
           for on, users in ((VALID, valid_users), (TEST, test_users))}
    results = {"date": dt.date.today().isoformat(), "machine": f"{os.uname().machine}, {os.cpu_count()} cores, no GPU",
               "seed": args.seed, "users": len(test_users), "variants": {},
               "sasrec": {on: ranking_metrics(evaluated(sas[on], u, split, on).ranks)
                          for on, u in ((VALID, valid_users), (TEST, test_users))}}
    for name in args.only.split(","):
        what, changes, unified, freeze_positions = VARIANTS[name]
        start = time.time()
        torch.manual_seed(args.seed)
        model, tokenizer, special, _ = build_model(profile.llm, split.n_items, id_model)
        if freeze_positions:
            model.inter_emb.weight.requires_grad_(False)
            model.intra_emb.weight.requires_grad_(False)
        config = dataclasses.replace(profile.llm_train, seed=args.seed, **changes)
        trainer = Trainer(model.to(device), training.builder_for(conf, text, tokenizer, special), id_model, config,
                          device)
        if config.stage1_epochs:
            trainer.fit_stage("stage1", config.stage1_epochs, unified=False)
        stage = trainer.fit_stage("stage2", config.stage2_epochs, unified=unified, id_valid=sas[VALID])
        evaluator = Evaluator(trainer)
        lm_test = evaluator.lm_scores(test_users, TEST, unified)
        weight = stage["lm_weight"]
        results["variants"][name] = {
            "removed": what, "minutes": round((time.time() - start) / 60, 1), "lm_weight": weight,
            "lm_valid": stage["best_valid"], "hybrid_valid": stage["best_hybrid_valid"],
            "lm_test": ranking_metrics(evaluated(lm_test, test_users, split, TEST).ranks),
            "hybrid_test": ranking_metrics(evaluated(hybrid.mix(sas[TEST], lm_test, weight), test_users,
                                                     split, TEST).ranks)}
        print(name, json.dumps(results["variants"][name]), flush=True)
    spark.stop()
    out = Path(__file__).resolve().parent / "results"
    (out / "ablation_ml100k.json").write_text(json.dumps(results, indent=2))
    lines = [f"# Ablation — {results['date']}, {results['machine']}, seed {args.seed}, {results['users']} users", "",
             f"`python bench/ablation.py {' '.join(f'--{k.replace(chr(95), chr(45))} {v}' for k, v in vars(args).items())}`",
             "", f"SASRec alone: valid NDCG@10 {results['sasrec'][VALID]['ndcg@10']:.4f}, test "
             f"{results['sasrec'][TEST]['ndcg@10']:.4f}.", "",
             "| variant | taken out | LM alone valid | LM alone test | lm_weight | hybrid valid | hybrid test | minutes |",
             "|---|---|---|---|---|---|---|---|"]
    for name, v in results["variants"].items():
        lines.append(f"| {name} | {v['removed']} | {v['lm_valid']['ndcg@10']:.4f} | {v['lm_test']['ndcg@10']:.4f} | "
                     f"{v['lm_weight']:g} | {v['hybrid_valid']['ndcg@10']:.4f} | {v['hybrid_test']['ndcg@10']:.4f} | "
                     f"{v['minutes']} |")
    (out / "ablation_ml100k.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    from lakerec import logs
    logs.configure()
    main()
