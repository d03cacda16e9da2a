"""The hybrid ranking score: SASRec's logit + lm_weight * the LM's score.

    score(u, i) = h_u . e_i  +  w * cos(v_u, t_i) / temperature

h_u, e_i: SASRec's user state and item embedding; v_u, t_i: the LM's user vector (the prompt's
answer blank) and item text vector. With w = 0 the hybrid *is* SASRec, so the product can never
serve a model worse than its ID model: w is chosen on validation from a grid that contains 0
(BIGRec's fusion weight; LLM-ESR sums an ID-view and a text-view logit the same way), and w = 0 is
the explicit fallback.

Why a weight fitted on validation rather than a gate trained with the LM: SASRec has already fit
the training targets, so an LM term trained jointly on those same targets learns to switch itself
off (the in-sample trap). The LM term is trained on its own loss, and the mix is chosen on the
validation items, which neither model trained on.

Export: one dot product at scoring time, `[h_u ; (w / temperature) v_u] . [e_i ; t_i]`.
"""
from __future__ import annotations

import numpy as np
import torch

from lakerec.eval.metrics import ranking_metrics
from lakerec.eval.protocol import SplitData, ranks

WEIGHT_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def mix(id_scores: np.ndarray, lm_scores: np.ndarray, weight: float) -> np.ndarray:
    return id_scores + weight * lm_scores


def choose_weight(id_scores: np.ndarray, lm_scores: np.ndarray, users: np.ndarray, split: SplitData, on: str,
                  grid=WEIGHT_GRID, metric: str = "ndcg@10") -> tuple[float, dict[float, float]]:
    """The grid weight with the best `metric` on the `on` items of `users` (rows of both score
    matrices, in the same order). Ties go to the smaller weight, so 0 (SASRec alone) wins unless
    the LM term strictly helps."""
    table = {}
    for weight in grid:
        mixed = mix(id_scores, lm_scores, weight)
        _, r = ranks(rows_of(mixed, users), split, on, users=users)
        table[float(weight)] = ranking_metrics(r)[metric]
    best = max(table.values())
    return min(w for w, v in table.items() if v == best), table


def rows_of(matrix: np.ndarray, users) -> "callable":
    """A Scorer (eval.protocol) over a precomputed score matrix whose rows are `users`."""
    row = {int(u): k for k, u in enumerate(users)}
    return lambda batch: matrix[[row[int(u)] for u in batch]]


def user_vector(id_state: torch.Tensor, lm_user: torch.Tensor, lm_weight: float, temperature: float) -> torch.Tensor:
    """[h_u ; (w / temperature) v_u]: the exported user vector (see the module docstring)."""
    return torch.cat([id_state, lm_user * (lm_weight / temperature)], dim=-1)


def item_matrix(id_items: np.ndarray, text_items: np.ndarray) -> np.ndarray:
    """[e_i ; t_i] per catalogue row: the exported item matrix."""
    return np.concatenate([id_items, text_items], axis=1).astype(np.float32)
