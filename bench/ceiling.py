"""How close an approach runs to what this CPU can do: the user encoder's arithmetic per prompt token
(counted from its ONNX graph) times the prompt tokens it scores per second, against this machine's
fp32 rate on one large matrix multiply using all cores (torch). No approach that runs the same fp32
model can go much past that rate, so it bounds every speed-up ratio. The count is the full pass, which
is what the user encoder runs (it mean-pools every prompt position)."""
from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from rec_udf.manifest import Manifest


def matmul_weights(graph: Path) -> int:
    """Weights multiplied once per token: the 2-D initializers feeding MatMul/Gemm nodes (embedding
    tables are gathered, not multiplied, and are left out)."""
    import onnx
    model = onnx.load(str(graph), load_external_data=False)      # shapes only: no weights read
    sizes = {t.name: int(np.prod(t.dims)) for t in model.graph.initializer if len(t.dims) == 2}
    return sum(sizes.get(name, 0) for node in model.graph.node if node.op_type in ("MatMul", "Gemm")
               for name in node.input)


def flops_per_token(graph: Path, manifest: Manifest, mean_tokens: float) -> float:
    """2 FLOPs per weight (multiply-add), plus attention: scores and weighted sum, 4 x tokens x hidden
    per token per layer."""
    g = manifest.graphs.generator
    hidden = g.heads * g.head_dim
    return 2.0 * matmul_weights(graph) + 4.0 * mean_tokens * hidden * g.layers


def gemm_gflops(n: int = 2048, repeats: int = 5) -> float:
    """fp32 GFLOP/s of one n x n matrix multiply on all cores (best of `repeats`)."""
    import torch
    threads = torch.get_num_threads()
    torch.set_num_threads(os.cpu_count() or 1)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b                                      # warm-up
        best = min(_timed(lambda: a @ b) for _ in range(repeats))
    finally:
        torch.set_num_threads(threads)
    return 2 * n ** 3 / best / 1e9


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def report(approaches: dict, graph: Path, manifest: Manifest) -> dict:
    """GFLOP/s and share of the GEMM rate of each approach; what 5x the first attempt would need."""
    lakerec = approaches.get("lakerec") or next(iter(approaches.values()))
    mean_tokens = lakerec["tokens"] / lakerec["users"]         # every approach reads the same prompts
    per_user = flops_per_token(graph, manifest, mean_tokens) * mean_tokens
    peak = gemm_gflops()
    out = {"mean_prompt_tokens": round(mean_tokens, 1), "gflop_per_user": round(per_user / 1e9, 3),
           "gemm_gflops_all_cores": round(peak, 1), "approaches": {}}
    for name, v in approaches.items():
        rate = v["users_per_s"] * per_user / 1e9
        out["approaches"][name] = {"gflops": round(rate, 1), "share_of_gemm": round(rate / peak, 3)}
    if "first_attempt" in approaches:
        needed = 5 * out["approaches"]["first_attempt"]["gflops"]
        out["five_x_first_attempt_needs"] = {"gflops": round(needed, 1), "share_of_gemm": round(needed / peak, 3)}
    return out
