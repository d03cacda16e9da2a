"""The two RSLLM contrastive losses (InfoNCE over cosine similarities)."""
from __future__ import annotations

import torch
from torch.nn import functional as F


def info_nce(queries: torch.Tensor, keys: torch.Tensor, positives: torch.Tensor, temperature: float,
             false_negatives: torch.Tensor | None = None) -> torch.Tensor:
    """queries (B, D), keys (N, D), both L2-normalised; positives (B,) index of each query's key.
    Every other key is a negative (in-batch positives of other queries plus sampled items), except
    where `false_negatives` (B, N) is True: a key that is the same item as the positive, or one the
    user has, must not be pushed away."""
    logits = queries @ keys.T / temperature
    if false_negatives is not None:
        keep = torch.zeros_like(false_negatives)
        keep[torch.arange(len(positives)), positives] = True
        logits = logits.masked_fill(false_negatives & ~keep, torch.finfo(logits.dtype).min)
    return F.cross_entropy(logits, positives)


def user_item_loss(users: torch.Tensor, items: torch.Tensor, positives: torch.Tensor, item_ids: torch.Tensor,
                   temperature: float) -> torch.Tensor:
    """Contrastive loss 1: each user-sequence representation against its next item's representation;
    `items` holds the batch's unique items (positives and sampled negatives), `item_ids` their ids.
    A key with the same id as the positive is never a negative."""
    same_item = item_ids[positives][:, None] == item_ids[None, :]
    return info_nce(users, items, positives, temperature, same_item)


def alignment_loss(id_vectors: torch.Tensor, text_vectors: torch.Tensor, temperature: float) -> torch.Tensor:
    """Contrastive loss 2: each item's projected ID embedding against its own text representation,
    symmetric, the other items of the batch as negatives. Both (M, D), L2-normalised, row i = item i."""
    target = torch.arange(len(id_vectors), device=id_vectors.device)
    logits = id_vectors @ text_vectors.T / temperature
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))
