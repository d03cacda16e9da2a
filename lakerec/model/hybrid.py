"""The hybrid ranking score: SASRec's logit + lm_weight * the LM's score.

    score(u, i) = h_u . e_i  +  w * cos(v_u, t_i) / temperature

h_u, e_i: SASRec's user state and item embedding; v_u, t_i: the LM's user vector (its mean-pooled
prompt) and item text vector. With w = 0 the hybrid *is* SASRec, so the product can never
serve a model worse than its ID model: w is chosen on validation from a grid that contains 0
(BIGRec's fusion weight; LLM-ESR sums an ID-view and a text-view logit the same way), and w = 0 is
the explicit fallback; the LM term is kept only when it also helps out of fold (`choose_weight`).

Why a weight fitted on validation rather than a gate trained with the LM: SASRec has already fit
the training targets, so an LM term trained jointly on those same targets learns to switch itself
off (the in-sample trap). The LM term is trained on its own loss, and the mix is chosen on the
validation items, which neither model trained on.

Export: one dot product at scoring time, `[h_u ; (w / temperature) v_u] . [e_i ; t_i]`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch

from lakerec.eval.metrics import ranking_metrics

if TYPE_CHECKING:                      # eval.protocol imports pyspark; the export path must not need it
    from lakerec.eval.protocol import SplitData

WEIGHT_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def mix(id_scores: np.ndarray, lm_scores: np.ndarray, weight: float) -> np.ndarray:
    return id_scores + weight * lm_scores


@dataclass
class Mix:
    weight: float                  # what is served: 0 unless the LM term helps out of fold
    table: dict[float, float]      # metric of each grid weight on all the users (in-sample for the choice)
    honest: dict                   # ranking metrics of the mix out of fold (== SASRec's when weight is 0)
    in_sample_weight: float        # the grid's best weight on all the users


def choose_weight(id_scores: np.ndarray, lm_scores: np.ndarray, users: np.ndarray, split: "SplitData", on: str,
                  grid=WEIGHT_GRID, metric: str = "ndcg@10", folds: int = 2, seed: int = 0) -> Mix:
    """The LM weight, chosen on the `on` items of `users` (rows of both score matrices, same order).

    The best grid weight on the same users that judge it is an optimistic estimate, so the choice is
    also cross-fitted: the users are split into `folds`, each fold is mixed with the weight chosen
    on the others, and the LM term is kept only when that out-of-fold mix beats SASRec alone on
    `metric`; otherwise the weight is 0 (the fallback). Ties go to the smaller weight."""
    from lakerec.eval.protocol import ranks, rows_of
    if not len(users) == len(id_scores) == len(lm_scores):
        raise ValueError(f"{len(users)} users, {len(id_scores)} ID-model rows, {len(lm_scores)} LM rows")
    per_weight = {float(w): ranks(rows_of(mix(id_scores, lm_scores, w), users), split, on, users=users)[1]
                  for w in grid}

    def best(rows) -> float:
        values = {w: ranking_metrics(r[rows])[metric] for w, r in per_weight.items()}
        top = max(values.values())
        return min(w for w, v in values.items() if v == top)

    everyone = np.arange(len(users))
    fold_of = np.random.default_rng(seed).permutation(len(users)) % folds
    out_of_fold = np.empty(len(users), dtype=np.int64)
    for fold in range(folds):
        here = fold_of == fold
        out_of_fold[here] = per_weight[best(everyone[~here])][here]
    honest, alone = ranking_metrics(out_of_fold), ranking_metrics(per_weight[0.0])
    table = {w: ranking_metrics(r)[metric] for w, r in per_weight.items()}
    chosen = best(everyone)
    if honest[metric] > alone[metric] and chosen > 0:
        return Mix(chosen, table, honest, chosen)
    return Mix(0.0, table, alone, chosen)


def user_vector(id_state: torch.Tensor, lm_user: torch.Tensor, lm_weight: float, temperature: float) -> torch.Tensor:
    """[h_u ; (w / temperature) v_u]: the exported user vector (see the module docstring)."""
    return torch.cat([id_state, lm_user * (lm_weight / temperature)], dim=-1)


def item_matrix(id_items: np.ndarray, text_items: np.ndarray) -> np.ndarray:
    """[e_i ; t_i] per catalogue row: the exported item matrix."""
    return np.concatenate([id_items, text_items], axis=1).astype(np.float32)
