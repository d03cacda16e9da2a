"""RSLLM's alignment loss (InfoNCE over cosine similarities). The other contrastive loss, user vector
against the next item, is a softmax over the whole catalogue in `train_llm.Trainer.train_epoch`."""
from __future__ import annotations

import torch
from torch.nn import functional as F


def alignment_loss(id_vectors: torch.Tensor, text_vectors: torch.Tensor, temperature: float) -> torch.Tensor:
    """Contrastive loss 2: each item's projected ID embedding against its own text representation,
    symmetric, the other items of the batch as negatives. Both (M, D), L2-normalised, row i = item i."""
    target = torch.arange(len(id_vectors), device=id_vectors.device)
    logits = id_vectors @ text_vectors.T / temperature
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
