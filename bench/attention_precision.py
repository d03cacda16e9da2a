"""Why `lakerec.model.bert_glm.attention` leaves bf16 autocast on the CPU: PyTorch's CPU attention
kernels, forward + backward, at LM training's shapes (MiniLM-L6: 12 heads of 32; batch 16), with an
additive GLM mask, in fp32 and bf16, flash and math kernels, one process, all cores.

    python bench/attention_precision.py [--lengths 96,160,256] [--repeats 5]
Writes bench/results/attention_precision.json and appends to attention_precision.md."""
from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import time

import torch
from torch.nn import functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

import results_io   # bench/, first on sys.path when run as a script

KERNELS = {"flash": SDPBackend.FLASH_ATTENTION, "math": SDPBackend.MATH}
DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}


def forward_backward_ms(length: int, dtype: torch.dtype, kernel, repeats: int, batch=16, heads=12, head_dim=32) -> float:
    gen = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(batch, heads, length, head_dim, generator=gen, dtype=dtype).requires_grad_()
               for _ in range(3))
    allowed = torch.rand(batch, 1, length, length, generator=gen) > 0.3
    bias = torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)
    with sdpa_kernel(kernel):
        F.scaled_dot_product_attention(q, k, v, attn_mask=bias).float().sum().backward()   # warm-up
        start = time.perf_counter()
        for _ in range(repeats):
            F.scaled_dot_product_attention(q, k, v, attn_mask=bias).float().sum().backward()
    return round((time.perf_counter() - start) / repeats * 1000, 2)


def markdown(r: dict, command: str) -> str:
    rows = [f"| {length} | " + " | ".join(str(r["ms"][str(length)][name]) for name in r["variants"]) + " |"
            for length in r["lengths"]]
    return (f"\n## {r['date']} -- {r['machine']}, torch {r['torch']}\n\n`{command}`\n\n"
            "Forward + backward of one attention call, ms (batch 16, 12 heads of 32, additive mask):\n\n"
            "| tokens | " + " | ".join(r["variants"]) + " |\n|---|" + "---|" * len(r["variants"]) + "\n"
            + "\n".join(rows) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lengths", default="96,160,256")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)
    lengths = [int(n) for n in args.lengths.split(",")]
    variants = [f"{d} {k}" for d in DTYPES for k in KERNELS]
    ms = {str(n): {f"{d} {k}": forward_backward_ms(n, DTYPES[d], KERNELS[k], args.repeats)
                   for d in DTYPES for k in KERNELS} for n in lengths}
    r = {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} cores, no GPU",
         "torch": torch.__version__, "lengths": lengths, "variants": variants, "ms": ms}
    print(results_io.save("attention_precision", r, markdown, lambda *_: None))


if __name__ == "__main__":
    main()
