"""Training throughput of the recommendation LM on this machine: examples/s of stage 1 (text-only)
and stage 2 (unified prompts, both contrastive losses), SASRec sequences/s, and user-vector
inference users/s, on MovieLens-100K prompts (needs the warehouse from `make demo`).
Usage: python bench/train_throughput.py [USERS=128] [BATCH=16]; appends to bench/results/train_throughput.md"""
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import torch

from lakerec.config import load_conf
from lakerec.eval.split import VALID
from lakerec.model.store import build_model
from lakerec.model.train_llm import Evaluator, LLMTrainConfig, Trainer
from lakerec.sources.schema import read_sources
from lakerec.spark import build_session
from lakerec import training

users = int(sys.argv[1]) if len(sys.argv) > 1 else 128
batch = int(sys.argv[2]) if len(sys.argv) > 2 else 16
torch.set_num_threads(os.cpu_count() or 1)
conf = load_conf(None, ["spark.config.spark.driver.memory=3g"])
spark = build_session(conf)
good = {role: source.df for role, source in read_sources(spark, conf).items()}
split, text, _ = training.prepare_data(spark, conf, good, dt.date.today())
profile = training.load_profile(conf, "full")
profile.sasrec_train.epochs, profile.sasrec_train.eval_every = 5, 5
fitted = training.train_id_model(split, profile, 0, None, None)
model, tokenizer, special, _ = build_model(profile.llm, split.n_items, fitted.model.eval())
model.to(training.device())
builder = training.builder_for(conf, text, tokenizer, special)
config = LLMTrainConfig(**{**profile.llm_train.to_dict(), "max_users": users, "batch_size": batch, "log_every": 10**9})
trainer = Trainer(model, builder, fitted.model, config, training.device())
optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=config.lr)
results = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
           "device": training.device(), "torch_threads": torch.get_num_threads(), "users": users, "batch": batch,
           "sasrec_sequences_per_s": round(fitted.examples_per_s, 1)}
for stage, unified in (("stage1", False), ("stage2", True)):
    stats = trainer.train_epoch(optimizer, unified, stage)
    results[f"{stage}_examples_per_s"] = round(stats["examples"] / stats["seconds"], 2)
evaluator = Evaluator(trainer)
ranked = evaluator._users(VALID)[:256]
start = time.time()
evaluator.user_matrix(ranked, VALID, unified=True)
results["user_vectors_per_s"] = round(len(ranked) / (time.time() - start), 1)
print(json.dumps(results, indent=2))
out = Path(__file__).resolve().parent / "results" / "train_throughput.md"
with out.open("a") as f:
    f.write(f"- {results['date']} ({results['machine']}, {results['device']}, batch {batch}, {users} users): "
            f"stage 1 {results['stage1_examples_per_s']} examples/s, stage 2 {results['stage2_examples_per_s']} "
            f"examples/s, SASRec {results['sasrec_sequences_per_s']} sequences/s, user vectors "
            f"{results['user_vectors_per_s']}/s\n")
