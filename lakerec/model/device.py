"""The torch device a training run uses (the GPU when torch sees one, else the CPU) and the
precision its LM training runs in."""
from __future__ import annotations

import contextlib
from functools import lru_cache
from pathlib import Path

import torch

PRECISIONS = ("auto", "bf16", "fp32")


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


@lru_cache(maxsize=None)
def native_bf16(device_name: str) -> bool:
    """Whether bf16 matrix products run natively on `device_name`: a CUDA GPU that supports bf16, or
    a CPU with AMX or AVX512-BF16 (oneDNN's kernels; elsewhere bf16 is emulated and slower than fp32)."""
    if device_name == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    try:
        flags = set(next(line for line in Path("/proc/cpuinfo").read_text().splitlines()
                         if line.startswith("flags")).split(":", 1)[1].split())
    except (OSError, StopIteration):
        return False
    return torch.backends.mkldnn.is_available() and bool(flags & {"amx_bf16", "avx512_bf16"})


def resolved_precision(precision: str, device_name: str) -> str:
    """`auto` -> bf16 where it is native (`native_bf16`), else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision {precision!r}: one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bf16" if native_bf16(device_name) else "fp32"
    return precision


def autocast(precision: str, device_name: str):
    """Mixed precision for a block of forward passes: matrix products in bf16, weights, gradients and
    the optimizer state stay fp32 (torch.autocast); `fp32` is a no-op."""
    if resolved_precision(precision, device_name) == "bf16":
        return torch.autocast(device_type=device_name, dtype=torch.bfloat16)
    return contextlib.nullcontext()
