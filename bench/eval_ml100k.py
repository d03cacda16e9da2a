"""Groundwork for the training issue: most-popular, ALS and SASRec on the same MovieLens-100K
leave-one-out split, full ranking over unseen items, test metrics.
Needs the warehouse from `make demo`. Usage: python bench/eval_ml100k.py [MAX_LEN] [SEEDS, e.g. 0,1,2]"""
import json
import sys
import time

import torch

from lakerec import logs
from lakerec.config import load_conf
from lakerec.eval.baselines import als, most_popular
from lakerec.eval.protocol import collect_split, evaluate
from lakerec.eval.split import leave_one_out
from lakerec.model.sasrec import SASRecConfig
from lakerec.model.train_sasrec import TrainConfig, fit, scorer
from lakerec.spark import build_session

logs.configure()

max_len = int(sys.argv[1]) if len(sys.argv) > 1 else 100
seeds = [int(s) for s in (sys.argv[2] if len(sys.argv) > 2 else "0").split(",")]
torch.set_num_threads(2)
conf = load_conf(None, ["spark.config.spark.driver.memory=3g"])
spark = build_session(conf)
data = collect_split(leave_one_out(spark.table(conf.require("source.interactions.table"))),
                     spark.table(conf.require("source.items.table")))
results = {"most_popular": evaluate(most_popular(data), data), "als": evaluate(als(spark, data), data)}
for seed in seeds:
    start = time.time()
    fitted = fit(data, SASRecConfig(n_items=data.n_items, max_len=max_len),
                 TrainConfig(epochs=200, batch_size=128, lr=1e-3, eval_every=5, patience=4, seed=seed))
    results[f"sasrec_seed{seed}"] = {**evaluate(scorer(fitted.model, data, "test"), data),
                                     "train_s": round(time.time() - start, 1)}
print(json.dumps(results, indent=2))
