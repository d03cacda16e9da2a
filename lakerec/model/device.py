"""The torch device a training run uses: the GPU when torch sees one, else the CPU."""
from __future__ import annotations

import torch


def device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
