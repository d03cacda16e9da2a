"""The LM trainer's optimizer set-up: two learning rates and a warm-up/cosine schedule."""
from __future__ import annotations

import math

import torch
from torch import nn


def param_groups(model: nn.Module, config) -> list[dict]:
    """LoRA adapters at `config.lr`; everything else that trains (fresh weights) at `config.head_lr`."""
    lora, fresh = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (lora if "lora_" in name else fresh).append(p)
    return [{"params": lora, "lr": config.lr}, {"params": fresh, "lr": config.head_lr}]


def warmup_schedule(optimizer, total_steps: int, warmup: float):
    """Linear warm-up over the first `warmup` share of the steps, then cosine decay to 10%."""
    ramp = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < ramp:
            return (step + 1) / ramp
        progress = (step - ramp) / max(1, total_steps - ramp)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
