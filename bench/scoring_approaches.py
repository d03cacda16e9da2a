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


def torch_explainer(bundle_dir: str, hf_dir: str, max_new_tokens: int):
    """explain(top item ids, sequences, ratings) -> one sentence each: the explainer LLM (the same
    SmolLM2 weights as the bundle's base explainer) in torch eager with transformers' generate,
    greedy, no repeated 3-gram, on LakeRec's grounded prompt and answer opening with LakeRec's
    evidence -- but as a first version would: each batch runs to max_new_tokens (no stop at the
    first sentence), no faithfulness check and no retries."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from rec_udf import explanations as ex
    from rec_udf.recommender import Recommender
    evidence_of = Recommender.open(bundle_dir, prefer="cpu", threads=1)     # evidence only: no graph runs
    index = {int(i): n for n, i in enumerate(evidence_of.bundle.item_ids)}
    tokenizer = AutoTokenizer.from_pretrained(hf_dir)
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(hf_dir, dtype=torch.float32).eval()

    def explain(items, sequences, ratings):
        evidence = [evidence_of.evidence(index[int(i)], list(map(int, q)), r) for i, q, r in zip(items, sequences, ratings)]
        prompts = [tokenizer.apply_chat_template(ex.explanation_messages(e, evidence_of.noun), add_generation_prompt=True,
                                                 tokenize=False) + ex.answer_prefix(e) for e in evidence]
        batch = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
        with torch.no_grad():
            out = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False, no_repeat_ngram_size=3,
                                 pad_token_id=tokenizer.pad_token_id or tokenizer.eos_token_id)
        texts = tokenizer.batch_decode(out[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
        return [ex.first_sentence(ex.answer_prefix(e) + t) or "" for e, t in zip(evidence, texts)]
    return explain


def _ratings(frame_ratings, n):
    return [None] * n if frame_ratings is None else [None if r is None else list(r) for r in frame_ratings]


def run_first_attempt(spark, prompts, model_dir: str, item_matrix: str, k: int, explainer=None) -> dict:
    """explainer: None (ranking only) or (bundle_dir, hf_dir, max_new_tokens): the top item explained too."""
    from pyspark.sql.functions import pandas_udf
    ratings = "sequence_ratings" in prompts.columns

    @pandas_udf("struct<items:array<bigint>,explanation:string>")
    def recommend(text: pd.Series, spans: pd.Series, sequence: pd.Series, seen: pd.Series,
                  rated: pd.Series) -> pd.DataFrame:
        top_items = torch_top_items(model_dir, item_matrix, k)          # the models are loaded inside the UDF
        explain = torch_explainer(*explainer) if explainer else None
        rows = []
        for t, s, q, h, r in zip(text, spans, sequence, seen, _ratings(rated if ratings else None, len(text))):
            top = top_items([t], [s], [q], [h], partial_sort=False)[0]
            rows.append((top, explain([top[0]], [q], [r])[0] if explain else None))
        return pd.DataFrame(rows, columns=["items", "explanation"])

    spark.conf.set("spark.sql.execution.arrow.maxRecordsPerBatch", "10000")   # Spark's default
    rated = F.col("sequence_ratings") if ratings else F.lit(None).cast("array<double>")
    out = prompts.select("user_id", recommend("prompt", "entity_spans", "sequence_item_ids", "seen_item_ids", rated)
                         .alias("recs"))
    _, seconds = timed(lambda: out.write.format("noop").mode("overwrite").save())
    return {"seconds": seconds, "users": prompts.count()}


def predict_batch_for(model_dir: str, item_matrix: str, k: int, batch_size: int, ratings: bool, explainer=None):
    """The predict_batch_udf: build it once and pass it to every run_predict_batch, so that a warm-up
    leaves its models cached in the workers (each predict_batch_udf call makes a new cache key).
    explainer: as run_first_attempt's; the explainer then runs on the same batches."""
    from pyspark.ml.functions import predict_batch_udf
    from pyspark.sql.types import ArrayType, LongType, StringType, StructField, StructType

    def make_predict_fn():
        import torch
        torch.set_num_threads(1)     # one thread per Spark task, as LakeRec's ONNX sessions (no oversubscription)
        top_items = torch_top_items(model_dir, item_matrix, k)
        explain = torch_explainer(*explainer) if explainer else None

        def predict(text, spans, sequence, seen, rated):
            sequences = [json.loads(q) for q in sequence]
            # rank order matters when the top item is explained: a full sort, as first_attempt's
            top = top_items(list(text), [json.loads(s) for s in spans], sequences, [json.loads(h) for h in seen],
                            partial_sort=explain is None)
            said = (explain(top[:, 0], sequences, [json.loads(r) if ratings else None for r in rated])
                    if explain else [None] * len(top))
            return {"items": top, "explanation": np.array(said, dtype=object)}
        return predict

    schema = StructType([StructField("items", ArrayType(LongType())), StructField("explanation", StringType())])
    return predict_batch_udf(make_predict_fn, return_type=schema, batch_size=batch_size)


def run_predict_batch(spark, prompts, recommend) -> dict:
    """`recommend`: predict_batch_for's UDF."""
    # predict_batch_udf takes scalar or fixed-shape tensor columns: variable-length ones travel as JSON
    rated = F.to_json("sequence_ratings") if "sequence_ratings" in prompts.columns else F.lit("null")
    out = prompts.select("user_id", recommend(F.col("prompt"), F.to_json("entity_spans"),
                                              F.to_json("sequence_item_ids"), F.to_json("seen_item_ids"),
                                              rated).alias("recs"))
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
