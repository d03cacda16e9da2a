"""Effect of the bundle precision on quality and speed, side by side in one run: test NDCG@10 / HR@10
(leave-one-out, full ranking, the training job's protocol) of the torch model and of its fp32, fp16
and int8 ONNX bundles on the same users, plus user-encoding throughput of each on this machine.

Usage: python bench/export_precision.py [VERSION=champion] [USERS=all]
Needs the MovieLens warehouse and a registered model (`make demo` or `lakerec train`). A version
registered before models carried their catalogue gets it from the items table at the Delta version
its training read (lineage). Appends to bench/results/export_precision.md and writes a JSON beside it."""
import datetime as dt
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from lakerec import training
from lakerec import logs
from lakerec.config import load_conf
from lakerec.eval.metrics import ranking_metrics, target_rank
from lakerec.eval.protocol import seen_before
from lakerec.eval.split import TEST
from lakerec.model.examples import catalogue_items
from lakerec.registry import Registry
from lakerec.model.store import CATALOGUE_FILE, load_model
from lakerec.sources.schema import read_sources
from lakerec.spark import build_session
from lakerec.tables import read_at_version
from model_export.export import export_bundles
from model_export.parity import agreement, torch_user_vectors
from rec_udf.catalogue import write_catalogue
from rec_udf.glm_input import SpecialTokens
from rec_udf.recommender import Recommender

logs.configure()

version = sys.argv[1] if len(sys.argv) > 1 else "champion"
limit = int(sys.argv[2]) if len(sys.argv) > 2 else None
threads = os.cpu_count() or 1
torch.set_num_threads(threads)
conf = load_conf(None, ["spark.config.spark.driver.memory=3g"])
registry = Registry.from_conf(conf)
model_dir = registry.resolve(version)
info = registry.describe(model_dir.name)
spark = build_session(conf)
good = {role: source.df for role, source in read_sources(spark, conf).items()}
split, text, _ = training.prepare_data(spark, conf, good, dt.date.fromisoformat(info["lineage"]["run_date"]))
if not np.array_equal(split.item_ids, np.load(model_dir / "item_ids.npy")):
    sys.exit(f"{model_dir}: the warehouse's catalogue differs from the model's; cannot evaluate it here")
if not (model_dir / CATALOGUE_FILE).exists():
    items_table = conf.require("source.items.table")
    items_version = info["lineage"]["input_table_versions"].get(items_table)
    write_catalogue(model_dir / CATALOGUE_FILE, catalogue_items(read_at_version(spark, items_table, items_version),
                                                               split.item_ids))
    print(f"wrote {model_dir / CATALOGUE_FILE} from {items_table} version {items_version}", file=sys.stderr)

users = sorted(split.test)[:limit]
builder = training.builder_for(conf, text, None, None)
prompts = [builder.prompt(u, text.prefix_length(u, TEST)) for u in users]
sequences = [[int(split.item_ids[i]) for i in text.sequences[u][:text.prefix_length(u, TEST)]] for u in users]


def metrics(vectors: np.ndarray, item_matrix: np.ndarray) -> dict:
    scores = vectors @ item_matrix.T
    ranks = [target_rank(scores[row], split.test[u], seen_before(split, u, TEST)) for row, u in enumerate(users)]
    return {k: v for k, v in ranking_metrics(np.array(ranks)).items() if k in ("ndcg@10", "hr@10")}


results = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {threads} cores, no GPU",
           "model_version": model_dir.name, "profile": info.get("profile"), "users": len(users),
           "recorded_test_ndcg@10": info["metrics"]["test"]["ndcg@10"], "variants": {}}
exported = export_bundles(model_dir, registry.bundles_root, ("fp32", "fp16", "int8"))

model, id_model, _, tokenizer, item_ids = load_model(model_dir)
special = SpecialTokens.resolve(tokenizer)
t0 = time.time()
reference = torch_user_vectors(model, id_model, tokenizer, special, item_ids, prompts, sequences)
torch_seconds = time.time() - t0
item_matrix = np.load(Path(exported["fp32"]["path"]) / "item_matrix.npy")
results["variants"]["torch"] = {**metrics(reference, item_matrix), "users_per_s": len(users) / torch_seconds,
                                "max_abs_diff": 0.0, "top10_identical": 1.0}
for precision in ("fp32", "fp16", "int8"):
    recommender = Recommender.open(exported[precision]["path"], prefer="cpu", threads=threads)
    t0 = time.time()
    vectors = np.concatenate([recommender.user_vectors(prompts[b:b + 32], sequences[b:b + 32])
                              for b in range(0, len(users), 32)])
    seconds = time.time() - t0
    results["variants"][precision] = {
        **metrics(vectors, item_matrix), "users_per_s": len(users) / seconds,
        **agreement(vectors, reference, recommender, sequences), "bundle_mb": exported[precision]["bytes"] / 1e6}
    print(precision, results["variants"][precision], file=sys.stderr)

def markdown(results: dict, command: str) -> str:
    base = results["variants"]["torch"]
    lines = [f"\n## {results['date']} -- {results['model_version']} ({results['profile']} profile), "
             f"{results['users']} test users, {results['machine']}, `{command}`\n",
             f"Recorded at training: test NDCG@10 {results['recorded_test_ndcg@10']:.6f}.\n",
             "| variant | NDCG@10 | change vs torch | HR@10 | max abs diff (user vectors) | top-10 identical | "
             "users/s (encode, 1 process) | bundle MB |", "|---|---|---|---|---|---|---|---|"]
    for name, v in results["variants"].items():
        lines.append(f"| {name} | {v['ndcg@10']:.6f} | {v['ndcg@10'] - base['ndcg@10']:+.6f} | {v['hr@10']:.4f} | "
                     f"{v['max_abs_diff']:.2e} | {v['top10_identical']:.1%} | {v['users_per_s']:.1f} | "
                     f"{v['bundle_mb']:.0f} |" if "bundle_mb" in v else
                     f"| {name} | {v['ndcg@10']:.6f} | {0:+.6f} | {v['hr@10']:.4f} | - | - | {v['users_per_s']:.1f} | - |")
    return "\n".join(lines) + "\n"


out = Path(__file__).parent / "results"
(out / "export_precision.json").write_text(json.dumps(results, indent=2))
text = markdown(results, f"python bench/export_precision.py {' '.join(sys.argv[1:])}".strip())
with open(out / "export_precision.md", "a") as f:
    f.write(text)
print(text)
