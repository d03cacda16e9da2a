"""Does a text view add to SASRec on MovieLens-100K? LLM-ESR's semantic view (SASRec whose item
embeddings are an adapter over frozen MiniLM text features of each item, `SASRecConfig.text_dim`)
mixed with the ID SASRec, against a control that mixes in a second ID SASRec (another seed), so a
gain from text is told apart from a gain from ensembling two models. Per seed: each model alone, and
the mix `SASRec + w * other` with w chosen on validation (`hybrid.choose_weight`: out-of-fold, 0 in
the grid), on the same 943 users, test NDCG@10 with a paired bootstrap CI against SASRec alone.

    python bench/text_view.py [--seeds 0,1,2] [--run-date 1998-04-23]
Writes bench/results/text_view_ml100k.json and .md. Needs MovieLens ingested (`lakerec ingest`).
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from lakerec import training
from lakerec.config import load_conf
from lakerec.eval.groups import grouped_ranking_metrics, paired_bootstrap, popularity_groups
from lakerec.eval.metrics import ndcg_at, ranking_metrics
from lakerec.eval.split import TEST, VALID
from lakerec.model import hybrid
from lakerec.model.examples import item_examples
from lakerec.model.sasrec import SASRecConfig
from lakerec.model.store import build_model
from lakerec.model.train_sasrec import TrainConfig, fit, scorer
from lakerec.sources.schema import read_sources
from lakerec.spark import build_session

OUT = Path(__file__).parent / "results" / "text_view_ml100k"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-date", default="1998-04-23")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    began = time.time()
    conf = load_conf(None, ["spark.config.spark.driver.memory=3g"])
    spark = build_session(conf)
    good = {role: source.df for role, source in read_sources(spark, conf).items()}
    split, text, _ = training.prepare_data(spark, conf, good, dt.date.fromisoformat(args.run_date))
    spark.stop()
    profile = training.load_profile(conf, "full")
    users = {on: np.array(sorted(d), dtype=np.int64) for on, d in ((VALID, split.valid), (TEST, split.test))}
    lm, tokenizer, special, _ = build_model(profile.llm, split.n_items, None)
    features = lm.eval().item_features(item_examples(tokenizer, special, text.items, False), special.pad)
    groups = popularity_groups(split)
    targets = np.array([split.test[int(u)] for u in users[TEST]])

    def train(name: str, seed: int, text_view: bool):
        config = SASRecConfig(**{**profile.sasrec.__dict__, "n_items": split.n_items,
                                 "text_dim": features.shape[1] if text_view else 0})
        fitted = fit(split, config, TrainConfig(**{**profile.sasrec_train.__dict__, "seed": seed}),
                     text_features=features if text_view else None, name=name)
        return {on: training.score_matrix(scorer(fitted.model.eval(), split, on), users[on]) for on in users}

    def test_row(scores: np.ndarray) -> tuple[dict, np.ndarray]:
        ranks = training.evaluated(scores, users[TEST], split, TEST).ranks
        grouped = grouped_ranking_metrics(ranks, targets, groups)
        return {"ndcg@10": ranking_metrics(ranks)["ndcg@10"], "hr@10": ranking_metrics(ranks)["hr@10"],
                **{f"{g}_ndcg@10": v.get("ndcg@10", 0.0) for g, v in grouped.items()}}, ranks

    results = {"date": dt.date.today().isoformat(), "machine": f"{os.uname().machine}, {os.cpu_count()} cores, no GPU",
               "command": "python bench/text_view.py --seeds " + args.seeds, "users": len(users[TEST]), "seeds": {}}
    for seed in (int(s) for s in args.seeds.split(",")):
        models = {"sasrec": train("sasrec", seed, False), "text_view": train("text_view", seed, True),
                  "sasrec_other_seed": train("sasrec_other_seed", seed + 100, False)}
        rows = {}
        base_row, base_ranks = test_row(models["sasrec"][TEST])
        rows["sasrec"] = {"valid_ndcg@10": ranking_metrics(training.evaluated(
            models["sasrec"][VALID], users[VALID], split, VALID).ranks)["ndcg@10"], **base_row}
        for other in ("text_view", "sasrec_other_seed"):
            alone, _ = test_row(models[other][TEST])
            rows[other] = {"valid_ndcg@10": ranking_metrics(training.evaluated(
                models[other][VALID], users[VALID], split, VALID).ranks)["ndcg@10"], **alone}
            chosen = hybrid.choose_weight(models["sasrec"][VALID], models[other][VALID], users[VALID], split, VALID)
            weight = chosen.in_sample_weight           # the grid's best on validation (what a mix would serve)
            mixed, ranks = test_row(hybrid.mix(models["sasrec"][TEST], models[other][TEST], weight))
            rows[f"sasrec + {other}"] = {"weight": weight, "valid_ndcg@10": chosen.table[hybrid.grid_key([weight])],
                                         "valid_out_of_fold_ndcg@10": chosen.honest["ndcg@10"],
                                         "kept_out_of_fold": chosen.weight > 0, **mixed,
                                         "paired_vs_sasrec": paired_bootstrap(ndcg_at(ranks), ndcg_at(base_ranks))}
        results["seeds"][seed] = rows
        print(json.dumps({seed: rows}, indent=1, default=float), flush=True)
    results["minutes"] = round((time.time() - began) / 60, 1)
    OUT.parent.mkdir(exist_ok=True)
    OUT.with_suffix(".json").write_text(json.dumps(results, indent=2, default=float))
    OUT.with_suffix(".md").write_text(render(results))


def render(results: dict) -> str:
    lines = [f"# Text view vs a second ID model — {results['date']}, {results['machine']}, {results['minutes']} min",
             "", f"`{results['command']}`; {results['users']} users, leave-one-out, full ranking; the mix weight is "
             "the validation grid's best (0 in the grid).", "",
             "| seed | model | weight | valid NDCG@10 | test NDCG@10 | test head | test tail | test cold | "
             "test diff vs SASRec [95% CI] |", "|---|---|---|---|---|---|---|---|---|"]
    for seed, rows in results["seeds"].items():
        for name, row in rows.items():
            paired = row.get("paired_vs_sasrec")
            ci = (f"{paired['diff']:+.4f} [{paired['ci_low']:+.4f}, {paired['ci_high']:+.4f}]" if paired else "")
            lines.append(f"| {seed} | {name} | {row.get('weight', '')} | {row['valid_ndcg@10']:.4f} | "
                         f"{row['ndcg@10']:.4f} | {row.get('head_ndcg@10', 0):.4f} | {row.get('tail_ndcg@10', 0):.4f} | "
                         f"{row.get('cold_ndcg@10', 0):.4f} | {ci} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
