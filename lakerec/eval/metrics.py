"""Ranking metrics from the rank of each user's held-out item.

Full ranking: the held-out item is ranked against every item the user has not interacted with.
rank is 1-based; a user whose item is scored like k others gets the pessimistic rank (ties
count against the model, so a constant scorer cannot look good).
"""
from __future__ import annotations

from typing import Iterable, Sequence

import numpy as np

DEFAULT_KS = (1, 5, 10)


def target_rank(scores: np.ndarray, target: int, excluded: Iterable[int] = ()) -> int:
    """1-based rank of `target` among all candidate columns of `scores` (1-D, one per item),
    ignoring the `excluded` columns (the user's training history). Ties count against the target."""
    candidates = np.ones(scores.shape[0], dtype=bool)
    excluded = np.fromiter(excluded, dtype=np.int64)
    candidates[excluded[excluded != target]] = False
    return int(np.count_nonzero(scores[candidates] >= scores[target]))


def ndcg_at(ranks: Sequence[float] | np.ndarray, k: int = 10) -> np.ndarray:
    """Per-user NDCG@k with one relevant item: 1/log2(rank+1) when the 1-based rank is <= k, else 0.
    The one definition of the formula (ranking_metrics and the A/B metrics use it); a rank of
    np.inf stands for a held-out item that was not in the list at all."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if np.any(ranks < 1):
        raise ValueError("ranks are 1-based")
    return np.where(ranks <= k, 1.0 / np.log2(ranks + 1.0), 0.0)


def ranking_metrics(ranks: Sequence[int] | np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """HR@k, NDCG@k (one relevant item, see ndcg_at) and MRR, averaged over users."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if ranks.size == 0:
        raise ValueError("no users to evaluate")
    if np.any(ranks < 1):
        raise ValueError("ranks are 1-based")
    out = {}
    for k in ks:
        out[f"hr@{k}"] = float((ranks <= k).mean())
        out[f"ndcg@{k}"] = float(ndcg_at(ranks, k).mean())
    out["mrr"] = float((1.0 / ranks).mean())
    out["users"] = int(ranks.size)
    return out


def candidate_metrics(answers: Sequence[int | None], candidates: Sequence[Sequence[int]],
                      targets: Sequence[int]) -> dict[str, float]:
    """The LLaRA/RSLLM protocol: each user picks one of ~20 candidates.
    valid_ratio: share of answers that name one of the candidates;
    hit_ratio@1: share of all users whose answer is the held-out item (invalid answers are misses);
    hit_ratio@1_valid: the same over valid answers only, as LLaRA reports it."""
    valid = np.array([a is not None and a in set(c) for a, c in zip(answers, candidates)])
    hit = np.array([a is not None and a == t for a, t in zip(answers, targets)])
    n_valid = int(valid.sum())
    return {"valid_ratio": float(valid.mean()), "hit_ratio@1": float(hit.mean()),
            "hit_ratio@1_valid": float(hit.sum() / n_valid) if n_valid else 0.0, "users": len(valid)}


def rmse_mae(predicted: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    err = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return {"rmse": float(np.sqrt(np.mean(err ** 2))), "mae": float(np.mean(np.abs(err)))}
