"""Scoring throughput, side by side in one run, on the same prompts and the same model version:

  bare            ONNX Runtime in this one process (rec_udf.scoring_udf.score_frames, no Spark; model
                  loaded before the clock starts; intra-op threads = all cores)
  lakerec         the scoring job's Spark stage (lakerec.scoring.stage.score_prompts: mapInPandas, Arrow,
                  worker-cached bundle), then writing the recommendation rows to a Delta table
  first_attempt   what a user writes first: a pandas UDF that loads the torch model inside the UDF
                  and scores one prompt at a time with torch eager (torch's default threads, full
                  argsort for top-k)
  predict_batch   pyspark.ml.functions.predict_batch_udf with the torch model (loaded once per
                  worker by Spark's cache), torch eager on one thread per task, batches of --batch-size

plus: a batch-size sweep of the bare encoder, explanation tokens/s with and without the KV cache,
and peak RSS of the driver and of each Python worker.

The prompts are the newest run_date of the prompts table (MovieLens-100K after `make demo`),
repeated with new user ids up to --users, so every approach reads the same prompt lengths.
Usage: python bench/scoring.py [--users 2000] [--batch-size 8] [--explain-top-k 0] [--skip first_attempt,...]
Appends to bench/results/scoring.md, writes bench/results/scoring.json and scoring.png."""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import functions as F

from lakerec.config import load_conf
from lakerec.model.registry import Registry
from lakerec.scoring.bundle_choice import bundle_for
from lakerec.scoring.output import recommendation_rows
from lakerec.scoring.stage import score_prompts, scoring_spec
from lakerec.spark import build_session
from lakerec.tables import delta_version, read_at_version
from rec_udf import bundle as bundle_format
from rec_udf.prompt_inputs import as_prompt
from rec_udf.scoring_udf import BundleRef, recommender_for, score_frames

import ceiling      # bench/, first on sys.path when run as a script
import length_sorted
import results_io



def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=None, help="default: conf score.batch_size")
    p.add_argument("--explain-top-k", type=int, default=0, help="explanations per user (0: scoring only)")
    p.add_argument("--model", default="champion")
    p.add_argument("--skip", default="", help="comma-separated approaches to leave out")
    p.add_argument("--bare-batch-size", type=int, default=32,
                   help="the bare model also runs at this batch size (one process, all cores: larger batches suit it)")
    p.add_argument("--sweep-users", type=int, default=128, help="users in the bare batch-size sweep (0: none)")
    p.add_argument("--kv-users", type=int, default=16, help="users in the KV-cache comparison (0: none)")
    return p.parse_args()


def peak_rss_mib(pid: int) -> float:
    """Peak resident set (VmHWM) of a live process, MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def spark_processes() -> dict[str, float]:
    """Peak RSS (MiB) of the processes under this driver: the JVM and each Python worker (by pid)."""
    import psutil
    out = {}
    for child in psutil.Process().children(recursive=True):
        try:
            name = "jvm" if child.name() == "java" else f"python {child.pid}"
            out[name] = round(peak_rss_mib(child.pid), 1)
        except (psutil.Error, FileNotFoundError):
            pass
    return out


def bench_prompts(spark, conf, users: int):
    """The newest prompts of the prompts table, repeated with fresh user ids up to `users` rows (persisted)."""
    table = conf.require("tables.prompts")
    base = read_at_version(spark, table, delta_version(spark, table))
    run_date = base.agg(F.max("run_date")).first()[0]
    base = base.where(F.col("run_date") == run_date)
    n = base.count()
    copies = spark.range(-(-users // n)).withColumnRenamed("id", "copy")
    prompts = (base.crossJoin(copies).withColumn("user_id", F.col("user_id") + F.col("copy") * 100_000_000)
               .orderBy("copy", "user_id").limit(users).drop("copy").persist(StorageLevel.MEMORY_AND_DISK))
    return prompts, prompts.count(), run_date


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


def run_bare(frame: pd.DataFrame, spec) -> dict:
    recommender = recommender_for(spec)                  # load outside the clock
    out, seconds = timed(lambda: pd.concat(list(score_frames(iter([frame]), spec))))
    tokens = int(out.loc[out["rank"] == 1, "prompt_tokens"].sum())
    return {"seconds": seconds, "users": int(out["user_id"].nunique()), "tokens": tokens,
            "threads": recommender.device.threads, "provider": recommender.provider}


def run_lakerec(spark, conf, prompts, model: str) -> dict:
    scored = score_prompts(spark, conf, prompts, model)
    with tempfile.TemporaryDirectory(prefix="lakerec-bench-") as out:
        recs = recommendation_rows(scored.rows, scored.items, prompts, version=scored.version, variant="bench",
                                   input_version=None, run_id="bench", run_date=dt.date.today(), holdout=False)
        _, write_seconds = timed(lambda: recs.write.format("delta").save(out))
    scored.release()
    return {"seconds": scored.seconds, "write_seconds": write_seconds, "users": scored.stats["users"],
            "tokens": scored.stats["tokens"], "model_loads": sum(scored.loads.values()),
            "loads_per_worker": scored.loads, "worker_peak_rss_mib": spark_processes()}


def torch_top_items(model_dir: str, item_matrix_path: str, k: int):
    """top_items(prompts, spans, sequences, seen) -> (B, k) item ids, with the torch model on the training
    code path."""
    import torch
    from lakerec.model.store import load_model
    from model_export.parity import torch_user_vectors
    from rec_udf.glm_input import SpecialTokens
    model, id_model, _, tokenizer, item_ids = load_model(Path(model_dir))
    special = SpecialTokens.resolve(tokenizer)
    item_matrix = np.load(item_matrix_path)
    index = {int(i): n for n, i in enumerate(item_ids)}

    def top_items(texts, spans, sequences, seen, partial_sort=True):
        prompts = [as_prompt(t, s) for t, s in zip(texts, spans)]
        with torch.no_grad():
            vectors = torch_user_vectors(model, id_model, tokenizer, special, item_ids, prompts,
                                         [list(map(int, s)) for s in sequences], batch_size=len(prompts))
        scores = vectors @ item_matrix.T
        for row, history in enumerate(seen):
            scores[row, [index[int(i)] for i in history if int(i) in index]] = -np.inf
        top = (np.argpartition(-scores, k - 1, axis=1)[:, :k] if partial_sort else np.argsort(-scores, axis=1)[:, :k])
        return item_ids[top]
    return top_items


def run_first_attempt(spark, prompts, model_dir: str, item_matrix: str, k: int) -> dict:
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("array<bigint>")
    def recommend(text: pd.Series, spans: pd.Series, sequence: pd.Series, seen: pd.Series) -> pd.Series:
        top_items = torch_top_items(model_dir, item_matrix, k)          # the model is loaded inside the UDF
        return pd.Series([top_items([t], [s], [q], [h], partial_sort=False)[0]
                          for t, s, q, h in zip(text, spans, sequence, seen)])

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "10000")   # Spark's default
    out = prompts.select("user_id", recommend("prompt", "entity_spans", "sequence_item_ids", "seen_item_ids")
                         .alias("items"))
    _, seconds = timed(lambda: out.write.format("noop").mode("overwrite").save())
    return {"seconds": seconds, "users": prompts.count()}


def run_predict_batch(spark, prompts, model_dir: str, item_matrix: str, k: int, batch_size: int) -> dict:
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, LongType

    def make_predict_fn():
        import torch
        torch.set_num_threads(1)     # one thread per Spark task, as LakeRec's ONNX sessions (no oversubscription)
        top_items = torch_top_items(model_dir, item_matrix, k)

        def predict(text, spans, sequence, seen):
            return top_items(list(text), [json.loads(s) for s in spans], [json.loads(q) for q in sequence],
                             [json.loads(h) for h in seen])
        return predict

    recommend = predict_batch_udf(make_predict_fn, return_type=ArrayType(LongType()), batch_size=batch_size)
    # predict_batch_udf takes scalar or fixed-shape tensor columns: variable-length ones travel as JSON
    out = prompts.select("user_id", recommend(F.col("prompt"), F.to_json("entity_spans"),
                                              F.to_json("sequence_item_ids"), F.to_json("seen_item_ids")).alias("items"))
    _, seconds = timed(lambda: out.write.format("noop").mode("overwrite").save())
    return {"seconds": seconds, "users": prompts.count()}


def batch_sweep(frame: pd.DataFrame, spec, sizes=(1, 4, 8, 16, 32, 64)) -> dict:
    """Encoder + top-k users/s per batch size with ONE intra-op thread, as each Spark task runs it
    (spark.task.cpus = 1), batches of similar lengths as the job makes them; explanations off."""
    from rec_udf.recommender import Recommender
    recommender = Recommender.open(spec.bundle.directory(), prefer="cpu", threads=1)
    prepared = length_sorted.prepare(recommender, frame)
    out = {}
    for size in sizes:
        _, seconds = timed(lambda: length_sorted.encode_top_k(recommender, prepared, size, spec.top_k))
        out[size] = round(len(frame) / seconds, 2)
    return out


def kv_cache(frame: pd.DataFrame, spec, max_new_tokens: int) -> dict:
    """Explanation tokens/s, greedy, with and without the key/value cache, same users and items."""
    recommender = recommender_for(spec)
    prompts = [as_prompt(t, s) for t, s in zip(frame["prompt"], frame["entity_spans"])]
    sequences = [list(map(int, s)) for s in frame["sequence_item_ids"]]
    out = {}
    for cached in (True, False):
        texts, seconds = timed(lambda: recommender.explain(prompts, sequences, list(range(len(prompts))), max_new_tokens,
                                                      use_cache=cached))
        out["cached" if cached else "uncached"] = {"seconds": round(seconds, 2), "texts": texts}
        out[f"{'cached' if cached else 'uncached'}_steps_per_s"] = round(len(prompts) * max_new_tokens / seconds, 2)
    out["same_text"] = out["cached"]["texts"] == out["uncached"]["texts"]
    for key in ("cached", "uncached"):
        out[key].pop("texts")
    return out


def rates(result: dict) -> dict:
    seconds = result["seconds"]
    return {**result, "seconds": round(seconds, 2), "users_per_s": round(result["users"] / seconds, 2),
            **({"prompt_tokens_per_s": round(result["tokens"] / seconds, 1)} if "tokens" in result else {})}


def ratios(approaches: dict) -> dict:
    """The issue's goals: lakerec / best bare (>= 0.9), / first_attempt (>= 5), / predict_batch (>= 1.5)."""
    speed = {name: v["users_per_s"] for name, v in approaches.items()}
    if "lakerec" not in speed:
        return {}
    out = {}
    bare = [v for name, v in speed.items() if name.startswith("bare")]
    if bare:
        out["lakerec_vs_best_bare"] = round(speed["lakerec"] / max(bare), 3)
    for name in ("first_attempt", "predict_batch"):
        if name in speed:
            out[f"lakerec_vs_{name}"] = round(speed["lakerec"] / speed[name], 2)
    return out


def markdown(r: dict, command: str) -> str:
    a = r["approaches"]
    lines = [f"\n## {r['date']} -- {r['users']} users, model {r['model_version']} ({r['precision']}), "
             f"batch {r['batch_size']}, explanations per user {r['explain_top_k']}, {r['machine']}\n",
             f"`{command}`\n", "| approach | users/s | prompt tokens/s | seconds | vs lakerec |", "|---|---|---|---|---|"]
    base = a.get("lakerec", {}).get("users_per_s")
    for name, v in a.items():
        ratio = f"{base / v['users_per_s']:.2f}x slower" if base and name != "lakerec" else "-"
        if name.startswith("bare") and base:
            ratio = f"lakerec at {base / v['users_per_s']:.0%} of this"
        lines.append(f"| {name} | {v['users_per_s']} | {v.get('prompt_tokens_per_s', '-')} | {v['seconds']} | {ratio} |")
    if r["ratios"]:
        lines.append("\nRatios (goal): " + ", ".join(f"{k} {v}" for k, v in r["ratios"].items())
                     + " (goals: >= 0.9, >= 5, >= 1.5)")
    if r.get("ceiling"):
        c = r["ceiling"]
        lines.append(f"\nArithmetic of the full pass (the exported graphs skip the last layer's per-token work, ~1/8 of "
                     f"it, so ONNX rates are overstated by that): {c['gflop_per_user']} GFLOP per user "
                     f"({c['mean_prompt_tokens']} prompt tokens); this "
                     f"machine's fp32 rate on one 2048x2048 matmul, all cores: {c['gemm_gflops_all_cores']} GFLOP/s. "
                     + ", ".join(f"{n} {v['gflops']} GFLOP/s ({v['share_of_gemm']:.0%})" for n, v in c["approaches"].items()))
        if "five_x_first_attempt_needs" in c:
            need = c["five_x_first_attempt_needs"]
            lines.append(f"5x the first attempt would need {need['gflops']} GFLOP/s, {need['share_of_gemm']:.0%} of that rate.")
    if "lakerec" in a:
        lines.append(f"\nLakeRec write of the recommendation rows to Delta: {a['lakerec']['write_seconds']:.1f} s; "
                     f"model loads {a['lakerec']['model_loads']} ({a['lakerec']['loads_per_worker']}).")
    if r.get("batch_sweep"):
        lines.append(f"\nEncoder + top-k users/s by batch size, one thread ({r['sweep_users']} users): "
                     + ", ".join(f"{b}: {u}" for b, u in r["batch_sweep"].items()))
    if r.get("kv_cache"):
        kv = r["kv_cache"]
        lines.append(f"\nExplanations, {r['kv_users']} users x {r['max_new_tokens']} greedy steps: "
                     f"{kv['cached_steps_per_s']} tokens/s with the KV cache, {kv['uncached_steps_per_s']} without "
                     f"({kv['cached_steps_per_s'] / kv['uncached_steps_per_s']:.1f}x); identical text: {kv['same_text']}")
    lines.append(f"\nPeak RSS: driver {r['rss']['driver_mib']:.0f} MiB; Spark processes (JVM, Python workers) after the LakeRec stage "
                 f"{r['rss'].get('lakerec_workers_mib')}; after all stages {r['rss']['workers_end_mib']}")
    return "\n".join(lines) + "\n"


def plot(r: dict, path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    names = list(r["approaches"])
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.barh(names, [r["approaches"][n]["users_per_s"] for n in names])
    ax.set_xlabel("users/s (higher is better)")
    ax.set_title(f"{r['users']} users, {r['machine']}, {r['date']}", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    args = parse_args()
    skip = set(filter(None, args.skip.split(",")))
    overrides = [f"score.explain_top_k={args.explain_top_k}"]
    if args.batch_size:
        overrides.append(f"score.batch_size={args.batch_size}")
    conf = load_conf(None, overrides)
    spark = build_session(conf)
    registry = Registry.from_conf(conf)
    version, bundle_dir, manifest = bundle_for(conf, args.model)
    model_dir = str(registry.resolve(version))
    item_matrix = str(bundle_dir / manifest.items.matrix)
    ref = BundleRef(bundle_format.sha256(bundle_dir / bundle_format.MANIFEST), path=str(bundle_dir))
    spec = scoring_spec(conf, ref, None, None)
    prompts, users, run_date = bench_prompts(spark, conf, args.users)
    print(f"{users} users from the prompts of {run_date}, model {version}", file=sys.stderr)
    columns = ["user_id", "prompt", "entity_spans", "sequence_item_ids", "seen_item_ids"]
    frame = prompts.select(*columns).toPandas()
    r = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
         f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, no GPU",
         "spark_master": conf.get("spark.master"), "users": users, "model_version": version,
         "precision": manifest.precision, "batch_size": spec.batch_size, "explain_top_k": spec.explain_k,
         "max_new_tokens": spec.max_new_tokens, "top_k": spec.top_k, "approaches": {}, "rss": {}}
    from dataclasses import replace
    run = {"bare": lambda: run_bare(frame, spec),
           f"bare_batch{args.bare_batch_size}": lambda: run_bare(frame, replace(spec, batch_size=args.bare_batch_size)),
           "lakerec": lambda: run_lakerec(spark, conf, prompts, version),
           "first_attempt": lambda: run_first_attempt(spark, prompts, model_dir, item_matrix, spec.top_k),
           "predict_batch": lambda: run_predict_batch(spark, prompts, model_dir, item_matrix, spec.top_k,
                                                      spec.batch_size)}
    for name in run:
        if name in skip or name.split("_batch")[0] in skip or (name != "bare" and name.startswith("bare") and
                                                args.bare_batch_size == spec.batch_size):
            continue
        print(f"running {name} ...", file=sys.stderr)
        r["approaches"][name] = rates(run[name]())
        print(name, r["approaches"][name], file=sys.stderr)
        if name == "lakerec":
            r["rss"]["lakerec_workers_mib"] = r["approaches"][name].pop("worker_peak_rss_mib")
    r["ratios"] = ratios(r["approaches"])
    if any("tokens" in v for v in r["approaches"].values()):
        r["ceiling"] = ceiling.report(r["approaches"], bundle_dir / manifest.graphs.user_encoder.file, manifest)
    if args.sweep_users:
        r["sweep_users"] = min(args.sweep_users, len(frame))
        r["batch_sweep"] = batch_sweep(frame.head(args.sweep_users), spec)
    if args.kv_users:
        r["kv_users"] = min(args.kv_users, len(frame))
        r["kv_cache"] = kv_cache(frame.head(args.kv_users), spec, spec.max_new_tokens)
    r["rss"]["driver_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    r["rss"]["workers_end_mib"] = spark_processes()
    print(results_io.save("scoring", r, markdown, plot))


if __name__ == "__main__":
    from lakerec import logs
    logs.configure()
    main()
