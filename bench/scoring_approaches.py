"""The approaches bench/scoring.py compares, each timed on the same prompts: the bare ONNX model in
this process, LakeRec's Spark stage (+ its Delta write), a first-attempt pandas UDF and
predict_batch_udf with the torch model; plus the bare encoder's batch-size sweep and generation
with and without the key/value cache. Peak RSS of the Spark processes comes from /proc."""
from __future__ import annotations

import datetime as dt
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from pyspark.sql import functions as F

from lakerec.scoring.output import recommendation_rows
from lakerec.scoring.stage import score_prompts
from rec_udf.prompt_inputs import as_prompt
from rec_udf.scoring_udf import recommender_for, score_frames

import length_sorted      # bench/, first on sys.path when run as a script


def timed(fn):
    start = time.perf_counter()
    value = fn()
    return value, time.perf_counter() - start


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
            "tokens": scored.stats["tokens"], "partitions": scored.partitions, "model_loads": sum(scored.loads.values()),
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


def batch_sweep(frame: pd.DataFrame, spec, sizes=(1, 4, 16, 64, 256)) -> dict:
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
