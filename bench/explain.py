"""Explanation generation side by side: LakeRec's explainer (onnxruntime-genai, loaded once per worker,
batched, KV cache) against what a user would write first (transformers `generate` on the GGUF model),
on the same grounded prompts, one process, one after the other.

  python bench/explain.py [--prompts 48] [--threads 2] [--batch-sizes 1,4,8,16]

Prompts: evidence for the newest history item of the first N users of the warehouse's prompts table
(MovieLens after `make demo`), through the champion's fp32 bundle, exactly as the recommender builds it.
Every approach decodes greedily from the same prompt text (chat template + answer opening) until
its end token or 40 new tokens; LakeRec's explainer also as served (it stops a batch once every
row has finished its first sentence). Tokens/s counts real generated tokens (up to the end token). Reported: explanations/s, generated tokens/s, model load time, and for LakeRec the
share passing the faithfulness check. transformers is measured on a few prompts only (it is slow)
at batch 1 and batch 8 (left padding). Writes bench/results/explain.{json,md}.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from bench.results_io import save  # noqa: E402
from lakerec.config import load_conf  # noqa: E402
from lakerec.model import explainer as explainer_model  # noqa: E402
from lakerec.registry import Registry  # noqa: E402
from rec_udf import explanations as ex  # noqa: E402
from rec_udf.explainer import Explainer, checked  # noqa: E402
from rec_udf.recommender import Recommender  # noqa: E402

MAX_NEW = 40


def evidence_of_users(conf, recommender: Recommender, n: int) -> list[ex.Evidence]:
    from deltalake import DeltaTable
    table = DeltaTable(str(Path(conf.require("warehouse_root")) / "tables" / "lakerec.db" / "prompts"))
    frame = table.to_pandas(columns=["user_id", "run_date", "sequence_item_ids", "sequence_ratings"])
    frame = frame[frame["run_date"] == frame["run_date"].max()].sort_values("user_id")
    out = []
    for sequence, ratings in zip(frame["sequence_item_ids"], frame["sequence_ratings"]):
        index = recommender.catalogue_index(sequence)
        if len(sequence) >= 2 and index[-1] >= 0:
            out.append(recommender.evidence(int(index[-1]), list(sequence[:-1]), list(ratings[:-1])))
        if len(out) == n:
            break
    return out


def lakerec_rows(directory: Path, label: str, prompts, evidence, index, threads: int, batch_sizes) -> list[dict]:
    rows = []
    start = time.perf_counter()
    explainer = Explainer(directory, threads=threads, max_new_tokens=MAX_NEW)
    load = time.perf_counter() - start
    for early_stop in (False, True):
        for batch in batch_sizes:
            explainer.batch_size, explainer.tokens_generated = batch, 0
            start = time.perf_counter()
            raw = explainer.generate(prompts, stop_at_sentence=early_stop)
            seconds = time.perf_counter() - start
            passed = sum(checked(e, ex.answer_prefix(e) + r, index).source == "llm" for e, r in zip(evidence, raw))
            rows.append({"approach": label, "batch": batch, "stop": "first sentence" if early_stop else "end token or 40",
                         "n": len(prompts), "seconds": round(seconds, 2),
                         "explanations_per_s": round(len(prompts) / seconds, 2),
                         "tokens_per_s": round(explainer.tokens_generated / seconds, 1), "load_s": round(load, 1),
                         "pass_rate": round(passed / len(prompts), 3)})
            print(rows[-1], flush=True)
    return rows


def transformers_rows(gguf: Path, prompts, threads: int, n: int) -> list[dict]:
    """The first attempt: transformers generate on the GGUF model (de-quantized to fp32 on load)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    torch.set_num_threads(threads)
    start = time.perf_counter()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32).eval()
    load = time.perf_counter() - start
    tokenizer.padding_side = "left"
    rows = []
    for batch in (1, 8):
        tokens = 0
        start = time.perf_counter()
        for b in range(0, n, batch):
            enc = tokenizer(prompts[b:b + batch], return_tensors="pt", padding=True, add_special_tokens=False)
            with torch.no_grad():
                out = model.generate(**enc, max_new_tokens=MAX_NEW, do_sample=False,
                                     pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
            new = out[:, enc["input_ids"].shape[1]:]
            for row in new.tolist():       # real tokens: up to the first end token
                tokens += row.index(tokenizer.eos_token_id) if tokenizer.eos_token_id in row else len(row)
        seconds = time.perf_counter() - start
        rows.append({"approach": "transformers generate, GGUF de-quantized (fp32), torch", "batch": batch,
                     "stop": "end token or 40", "n": n, "seconds": round(seconds, 2),
                     "explanations_per_s": round(n / seconds, 2), "tokens_per_s": round(tokens / seconds, 1),
                     "load_s": round(load, 1), "pass_rate": None})
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--prompts", type=int, default=48)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-sizes", default="1,4,8,16")
    parser.add_argument("--transformers-prompts", type=int, default=16)
    args = parser.parse_args()
    conf = load_conf(None, [])
    registry = Registry.from_conf(conf)
    version = registry.resolve("champion").name
    recommender = Recommender.open(registry.bundle_dir(version, "fp32"), prefer="cpu")
    evidence = evidence_of_users(conf, recommender, args.prompts)
    built = {p: explainer_model.prepare(conf.cache_dir, [p]).directories[p] for p in ("int4", "fp32")}
    reader = Explainer(built["int4"])
    prompts = [reader.prompt(e) for e in evidence]
    batch_sizes = [int(b) for b in args.batch_sizes.split(",")]
    rows = lakerec_rows(built["int4"], "LakeRec explainer: onnxruntime-genai int4", prompts, evidence,
                        recommender.title_index, args.threads, batch_sizes)
    rows += lakerec_rows(built["fp32"], "onnxruntime-genai fp32", prompts, evidence, recommender.title_index,
                         args.threads, [1, 8])
    gguf = explainer_model.home(conf.cache_dir) / "gguf" / Path(explainer_model.GGUF_MEMBER).name
    rows += transformers_rows(gguf, prompts, args.threads, min(args.transformers_prompts, len(prompts)))
    results = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "threads": args.threads, "max_new_tokens": MAX_NEW, "model_version": version,
               "explainer_self_trained": explainer_model.prepare(conf.cache_dir, ["int4"]).info["self_trained"],
               "rows": rows}
    print(save("explain", results, markdown, lambda r, p: None))


def markdown(results: dict, command: str) -> str:
    lines = [f"\n## {results['date']}: explanation generation, {results['machine']}, {results['threads']} threads",
             f"`{command}`; greedy, up to {results['max_new_tokens']} new tokens, the same prompts for every "
             f"approach; explainer self-trained: {results['explainer_self_trained']}.", "",
             "| approach | batch | stops at | prompts | explanations/s | generated tokens/s | load s | pass rate |",
             "|---|---|---|---|---|---|---|---|"]
    for r in results["rows"]:
        rate = "" if r["pass_rate"] is None else f"{r['pass_rate']:.1%}"
        lines.append(f"| {r['approach']} | {r['batch']} | {r['stop']} | {r['n']} | {r['explanations_per_s']} | "
                     f"{r['tokens_per_s']} | {r['load_s']} | {rate} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
