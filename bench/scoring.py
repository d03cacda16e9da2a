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
repeated with new user ids up to --users, so every approach reads the same prompt lengths (the torch
baselines the first --slow-users of them when set), spread over spark.default.parallelism partitions.
With --warmup-users N each Spark approach first runs untimed on N further users (workers started,
models cached where the approach caches them), as the bare model is loaded before its clock starts.
With --explain-top-k 1 the torch baselines explain the top item with the explainer's base weights in
transformers (see scoring_approaches.torch_explainer), LakeRec and bare with the bundle's explainer.
Usage: python bench/scoring.py [--users 2000] [--batch-size 8] [--explain-top-k 0] [--skip first_attempt,...]
                              [--slow-users 0] [--warmup-users 0] [--set score.partitions=2] [--name scoring]
Appends to bench/results/<name>.md, writes bench/results/<name>.json and <name>.png. The approaches
are in bench/scoring_approaches.py, the report in bench/scoring_report.py."""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import resource
import sys
from dataclasses import replace
from pathlib import Path

from pyspark import StorageLevel
from pyspark.sql import Window, functions as F

from lakerec.config import load_conf
from lakerec.registry import Registry
from lakerec.scoring.bundle_choice import bundle_for
from lakerec.scoring.stage import scoring_spec
from lakerec.spark import build_session
from lakerec.tables import delta_version, read_at_version
from rec_udf import bundle as bundle_format
from rec_udf.recommender import auto_batch_size
from rec_udf.scoring_udf import BundleRef

import ceiling      # bench/, first on sys.path when run as a script
import results_io
from scoring_approaches import (batch_sweep, kv_cache, predict_batch_for, run_bare, run_first_attempt, run_lakerec,
                                run_predict_batch, spark_processes)
from scoring_report import markdown, plot, rates, ratios


def parse_args():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--users", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=None, help="default: conf score.batch_size")
    p.add_argument("--explain-top-k", type=int, default=0, help="explanations per user (0: scoring only)")
    p.add_argument("--model", default="champion")
    p.add_argument("--skip", default="", help="comma-separated approaches to leave out")
    p.add_argument("--bare-batch-size", type=int, default=32,
                   help="the bare model also runs at this batch size (one process, all cores: larger batches suit it)")
    p.add_argument("--slow-users", type=int, default=0,
                   help="run first_attempt and predict_batch on the first N users only (0: all); rates are per user")
    p.add_argument("--warmup-users", type=int, default=0,
                   help="run each Spark approach on N users outside the timed set first (0: cold, as a fresh job)")
    p.add_argument("--sweep-users", type=int, default=128, help="users in the bare batch-size sweep (0: none)")
    p.add_argument("--kv-users", type=int, default=16, help="users in the KV-cache comparison (0: none)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="a configuration override for every approach (e.g. score.partitions=2), repeatable")
    p.add_argument("--name", default="scoring", help="results file name under bench/results/ (a second row set, "
                   "e.g. scoring_explain with --explain-top-k 1, keeps the first)")
    return p.parse_args()


def bench_prompts(spark, conf, users: int):
    """(the newest prompts of the prompts table, repeated with fresh user ids up to `users` rows
    (persisted), their run date)."""
    table = conf.require("tables.prompts")
    base = read_at_version(spark, table, delta_version(spark, table))
    run_date = base.agg(F.max("run_date")).first()[0]
    base = base.where(F.col("run_date") == run_date)
    n = base.count()
    copies = spark.range(-(-users // n)).withColumnRenamed("id", "copy")
    prompts = (base.crossJoin(copies).withColumn("user_id", F.col("user_id") + F.col("copy") * 100_000_000)
               .orderBy("copy", "user_id").limit(users).drop("copy").persist(StorageLevel.MEMORY_AND_DISK))
    return prompts, run_date


def first_users(spark, prompts, n: int, skip: int = 0):
    """Rows skip .. skip + n of `prompts` by user id, spread over spark.default.parallelism partitions
    (persisted): every Spark approach starts from the same input with every core at work (orderBy +
    limit, or a window over all rows, leaves one partition)."""
    ranked = prompts.withColumn("_n", F.row_number().over(Window.orderBy("user_id")))
    rows = (ranked.where((F.col("_n") > skip) & (F.col("_n") <= skip + n)).drop("_n")
            .repartition(spark.sparkContext.defaultParallelism).persist(StorageLevel.MEMORY_AND_DISK))
    rows.count()
    return rows


def main() -> None:
    args = parse_args()
    skip = set(filter(None, args.skip.split(",")))
    overrides = [f"score.explain_top_k={args.explain_top_k}"]
    if args.batch_size:
        overrides.append(f"score.batch_size={args.batch_size}")
    overrides += args.set
    conf = load_conf(None, overrides)
    # The torch approaches' UDFs are defined in bench/ modules: their Python workers must import them too.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(__file__).resolve().parent),
                                                            os.environ.get("PYTHONPATH")]))
    spark = build_session(conf)
    registry = Registry.from_conf(conf)
    version, bundle_dir, manifest = bundle_for(conf, args.model, dict(spark.sparkContext.getConf().getAll()))
    model_dir = str(registry.resolve(version))
    item_matrix = str(bundle_dir / manifest.items.matrix)
    ref = BundleRef(bundle_format.sha256(bundle_dir / bundle_format.MANIFEST), path=str(bundle_dir))
    spec = scoring_spec(conf, ref, None, None)
    # `auto` resolved as a CPU worker resolves it, so that every approach uses the same batches
    spec = replace(spec, batch_size=spec.batch_size or auto_batch_size(manifest.hybrid.lm_weight, on_gpu=False))
    every, run_date = bench_prompts(spark, conf, args.users + args.warmup_users)
    prompts = first_users(spark, every, args.users)
    users = args.users
    print(f"{users} users from the prompts of {run_date}, model {version}", file=sys.stderr)
    columns = ["user_id", "prompt", "entity_spans", "sequence_item_ids", "seen_item_ids"]
    columns += ["sequence_ratings"] if "sequence_ratings" in prompts.columns else []   # the explainer's evidence
    frame = prompts.select(*columns).orderBy("user_id").toPandas()
    # the torch baselines on the first --slow-users users; every Spark approach warmed up on other users first
    slow = first_users(spark, prompts, args.slow_users) if 0 < args.slow_users < users else prompts
    warm = first_users(spark, every, args.warmup_users, skip=users) if args.warmup_users else None
    # with explanations on, the torch baselines explain the top item with the explainer's weights in torch
    explainer = None
    if spec.explain_k and spec.explainer == "llm":
        from lakerec.model.explainer import base_copy
        if manifest.explainer and manifest.explainer.self_trained:
            raise SystemExit(f"{version}'s explainer is self-trained: the torch baselines would run other weights")
        if spec.explain_k != 1:
            raise SystemExit("the torch baselines explain the top item only: use --explain-top-k 1")
        explainer = (str(bundle_dir), str(base_copy(conf.cache_dir)), spec.max_new_tokens)
    r = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores, "
         f"{round(os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30)} GiB, no GPU",
         "spark_master": conf.get("spark.master"), "users": users, "model_version": version,
         "precision": manifest.precision, "batch_size": spec.batch_size, "explain_top_k": spec.explain_k,
         "max_new_tokens": spec.max_new_tokens, "top_k": spec.top_k, "overrides": args.set,
         "slow_users": args.slow_users if 0 < args.slow_users < users else None,
         "warmup_users": args.warmup_users, "approaches": {}, "rss": {}}
    predict_batch = predict_batch_for(model_dir, item_matrix, spec.top_k, spec.batch_size,
                                      "sequence_ratings" in prompts.columns, explainer)
    run = {"bare": lambda _: run_bare(frame, spec),
           f"bare_batch{args.bare_batch_size}": lambda _: run_bare(frame, replace(spec, batch_size=args.bare_batch_size)),
           "lakerec": lambda p: run_lakerec(spark, conf, p, version),
           "first_attempt": lambda p: run_first_attempt(spark, p, model_dir, item_matrix, spec.top_k, explainer),
           "predict_batch": lambda p: run_predict_batch(spark, p, predict_batch)}
    timed_on = {"lakerec": prompts, "first_attempt": slow, "predict_batch": slow}
    for name in run:
        if name in skip or name.split("_batch")[0] in skip or (name != "bare" and name.startswith("bare") and
                                                args.bare_batch_size == spec.batch_size):
            continue
        if name in timed_on and warm is not None:
            # Python workers started, imports done and models cached where the approach caches them,
            # as the bare model is loaded before its clock starts
            print(f"warming up {name} on {args.warmup_users} other users ...", file=sys.stderr)
            run[name](warm)
        print(f"running {name} ...", file=sys.stderr)
        r["approaches"][name] = rates(run[name](timed_on.get(name)))
        print(name, r["approaches"][name], file=sys.stderr)
        if name == "lakerec":
            r["rss"]["lakerec_workers_mib"] = r["approaches"][name].pop("worker_peak_rss_mib")
    r["ratios"] = ratios(r["approaches"])
    # The arithmetic bound applies when the LM pass runs; a version serving the ID side alone does
    # ~0.04 GFLOP a user (bench/gpu_paper.py) and is bound by the pipeline, not by arithmetic.
    if manifest.hybrid.lm_weight and any("tokens" in v for v in r["approaches"].values()):
        r["ceiling"] = ceiling.report(r["approaches"], bundle_dir / manifest.graphs.user_encoder.file, manifest)
    if args.sweep_users:
        r["sweep_users"] = min(args.sweep_users, len(frame))
        r["batch_sweep"] = batch_sweep(frame.head(args.sweep_users), spec)
    if args.kv_users:
        r["kv_users"] = min(args.kv_users, len(frame))
        r["kv_cache"] = kv_cache(frame.head(args.kv_users), spec, spec.max_new_tokens)
    r["rss"]["driver_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    r["rss"]["workers_end_mib"] = spark_processes()
    print(results_io.save(args.name, r, markdown, plot))


if __name__ == "__main__":
    from lakerec import logs
    logs.configure()
    main()
