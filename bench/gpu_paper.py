"""What a GPU would do with LakeRec's nightly work, on paper (no GPU is lent to this project): the
arithmetic per user counted from the champion's own ONNX graphs and prompts, divided by an H100's
bf16 rate at a stated utilisation.

  python bench/gpu_paper.py [--utilisation 0.3] [--explain-prompts 48]

Per user, in FLOPs (2 per multiply-add; `ceiling.matmul_weights` counts the weights a token meets):
  sequence encoder   SASRec over the padded ID sequence (every version runs it)
  LM user encoder    the backbone over the scoring prompt (only when the version serves the LM term)
  top-k              one dot product per catalogue item
  explanation        the explainer over its grounded chat prompt, then each generated token
Prompt lengths are measured: the scoring prompts' `prompt_tokens` in the prompts table, the explainer
prompts rendered for real users as `bench/explain.py` does, generated tokens from bench/results/explain.json.
Writes bench/results/gpu_paper.{json,md}.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import ceiling  # noqa: E402
from bench.results_io import RESULTS, save  # noqa: E402
from lakerec.config import load_conf  # noqa: E402
from lakerec.scoring.bundle_choice import bundle_for  # noqa: E402

H100_BF16_DENSE = 989e12        # FLOP/s, H100 SXM, dense bf16 tensor cores (NVIDIA's datasheet)
H100_HBM = 3.35e12              # bytes/s


def mean_scoring_prompt_tokens(conf) -> float:
    from deltalake import DeltaTable
    frame = DeltaTable(str(Path(conf.require("warehouse_root")) / "tables" / "lakerec.db" / "prompts")).to_pandas(
        columns=["run_date", "prompt_tokens"])
    return float(frame[frame["run_date"] == frame["run_date"].max()]["prompt_tokens"].mean())


def explainer_prompt_tokens(conf, bundle: Path, n: int) -> float:
    """Mean tokens of the grounded explanation prompts of the first n users, as the executors render them."""
    from explain import evidence_of_users
    from rec_udf.explainer import Explainer
    from rec_udf.recommender import Recommender
    from tokenizers import Tokenizer
    recommender = Recommender.open(bundle, prefer="cpu")
    explainer = Explainer(bundle / "explainer")
    tokenizer = Tokenizer.from_file(str(bundle / "explainer" / "tokenizer.json"))
    prompts = [explainer.prompt(e) for e in evidence_of_users(conf, recommender, n)]
    return sum(len(tokenizer.encode(p, add_special_tokens=False).ids) for p in prompts) / len(prompts)


def generated_tokens_per_explanation() -> float:
    rows = json.loads((RESULTS / "explain.json").read_text())["rows"]
    served = next(r for r in rows if r["stop"] == "first sentence" and r["approach"].startswith("LakeRec"))
    return served["tokens_per_s"] / served["explanations_per_s"]


def causal_prefill_flops(weights: int, tokens: float, hidden: int, layers: int) -> float:
    """A causal pass over `tokens` tokens: weights x 2 per token, plus scores and weighted sums over
    the tokens before each one (4 x hidden per attended token per layer; on average tokens / 2)."""
    return tokens * (2.0 * weights + 4.0 * (tokens / 2) * hidden * layers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utilisation", type=float, default=0.3, help="share of the bf16 peak reached")
    parser.add_argument("--explain-prompts", type=int, default=48)
    args = parser.parse_args()
    conf = load_conf(None, [])
    version, bundle, manifest = bundle_for(conf.with_overrides({"score.precision": "fp32"}), "champion")
    # SASRec: every position of its padded sequence through its layers (approximate: the user projector,
    # applied once, is counted at every position, and attention is left out; within 2x, and tiny).
    seq_len = manifest.limits.id_max_len
    seq_flops = 2.0 * ceiling.matmul_weights(bundle / manifest.graphs.sequence_encoder.file) * seq_len
    prompt_tokens = mean_scoring_prompt_tokens(conf)
    lm_flops = ceiling.flops_per_token(bundle / manifest.graphs.user_encoder.file, manifest, prompt_tokens) * prompt_tokens
    topk_flops = 2.0 * manifest.items.count * manifest.items.dim
    explainer_cfg = json.loads((bundle / "explainer" / "genai_config.json").read_text())["model"]["decoder"]
    e_weights = ceiling.matmul_weights(bundle / "explainer" / "model.onnx")
    e_hidden, e_layers = explainer_cfg["hidden_size"], explainer_cfg["num_hidden_layers"]
    e_prompt = explainer_prompt_tokens(conf, bundle, args.explain_prompts)
    e_new = generated_tokens_per_explanation()
    explain_flops = (causal_prefill_flops(e_weights, e_prompt, e_hidden, e_layers)
                     + e_new * (2.0 * e_weights + 4.0 * (e_prompt + e_new / 2) * e_hidden * e_layers))
    rate = H100_BF16_DENSE * args.utilisation
    serves_lm = manifest.hybrid.lm_weight > 0
    rows = {"sequence encoder (SASRec)": seq_flops, "LM user encoder": lm_flops, "top-k over the catalogue": topk_flops,
            "explanation (1 per user)": explain_flops}
    served = {"ranking as served": seq_flops + topk_flops + (lm_flops if serves_lm else 0.0),
              "ranking with the LM term": seq_flops + lm_flops + topk_flops}
    served["ranking as served + 1 explanation"] = served["ranking as served"] + explain_flops
    out = {"date": dt.date.today().isoformat(), "model_version": version, "serving": manifest.hybrid.serving,
           "utilisation": args.utilisation, "h100_bf16_dense_flops": H100_BF16_DENSE,
           "scoring_prompt_tokens": round(prompt_tokens, 1), "explainer_prompt_tokens": round(e_prompt, 1),
           "generated_tokens": round(e_new, 1), "explainer_matmul_weights": e_weights,
           "gflop_per_user": {k: round(v / 1e9, 4) for k, v in {**rows, **served}.items()},
           "users_per_hour_per_h100": {k: round(3600 * rate / v) for k, v in served.items()},
           # Decoding one token for a batch reads every weight once: the bandwidth floor per step.
           "decode_step_weight_read_ms_bf16": round(1e3 * 2 * e_weights / H100_HBM, 3)}
    print(save("gpu_paper", out, markdown, lambda r, p: None))


def markdown(r: dict, command: str) -> str:
    lines = [f"\n## {r['date']}: {r['model_version']} ({r['serving']}) on an H100 at {r['utilisation']:.0%} of "
             f"{r['h100_bf16_dense_flops'] / 1e12:.0f} TFLOP/s bf16, on paper", f"`{command}`", "",
             f"Prompts: scoring {r['scoring_prompt_tokens']} tokens, explainer {r['explainer_prompt_tokens']} tokens "
             f"+ {r['generated_tokens']} generated.", "", "| work per user | GFLOP |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in r["gflop_per_user"].items()]
    lines += ["", "| served as | users per hour per H100 |", "|---|---|"]
    lines += [f"| {k} | {v:,} |" for k, v in r["users_per_hour_per_h100"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
