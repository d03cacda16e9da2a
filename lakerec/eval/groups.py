"""Evaluation by item popularity group, and the paired bootstrap (numpy only: no torch, no Spark).

Items are grouped by how often they occur in the split's training interactions (never the
validation or test targets, so a model's own targets cannot move an item between groups); the
leave-one-out metrics are then computed per group over the users whose held-out item is in it.
`paired_bootstrap` compares two models scored on the same users: both are resampled with the same
user indices, so the per-user differences, not each model's spread, set the interval.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

from lakerec.eval.metrics import DEFAULT_KS, ndcg_at, ranking_metrics

if TYPE_CHECKING:                                   # protocol.py imports pyspark; only the type is needed
    from lakerec.eval.protocol import SplitData

__all__ = ["item_popularity", "popularity_groups", "grouped_ranking_metrics", "ndcg_at",
           "bootstrap_means", "paired_bootstrap"]


def item_popularity(split: SplitData) -> np.ndarray:
    """(n_items,) int64: training interactions per catalogue item index (split.train only)."""
    if not split.train:
        return np.zeros(split.n_items, dtype=np.int64)
    items = np.concatenate([np.asarray(v, dtype=np.int64) for v in split.train.values()])
    return np.bincount(items, minlength=split.n_items).astype(np.int64)


def popularity_groups(split: SplitData, head_share: float = 0.2, cold_max: int = 5) -> dict[str, np.ndarray]:
    """Boolean masks over item indices.

    head: the ceil(head_share * n_items) most popular items by training interactions; items with the
          same count are ordered by item index, lower first (so the rule is deterministic).
    tail: every other item (head and tail partition the catalogue).
    cold: items with <= cold_max training interactions (may overlap head when few items are popular).
    """
    if not 0.0 <= head_share <= 1.0:
        raise ValueError(f"head_share must be in [0, 1], not {head_share}")
    popularity = item_popularity(split)
    n_head = math.ceil(head_share * split.n_items - 1e-9)     # the epsilon: 0.7 * 10 is 7.000000000000001
    order = np.argsort(-popularity, kind="stable")            # stable: ties keep index order
    head = np.zeros(split.n_items, dtype=bool)
    head[order[:n_head]] = True
    return {"head": head, "tail": ~head, "cold": popularity <= cold_max}


def grouped_ranking_metrics(ranks: np.ndarray, targets: np.ndarray, groups: dict[str, np.ndarray],
                            ks: Sequence[int] = DEFAULT_KS) -> dict[str, dict]:
    """Per group, metrics.ranking_metrics over the users whose target item index is in the group.
    ranks[u] is user u's 1-based rank of targets[u]; a group without users gives {"users": 0}."""
    ranks, targets = np.asarray(ranks), np.asarray(targets, dtype=np.int64)
    if ranks.shape != targets.shape:
        raise ValueError(f"ranks {ranks.shape} and targets {targets.shape} differ in shape")
    out = {}
    for name, mask in groups.items():
        users = np.asarray(mask, dtype=bool)[targets]
        out[name] = ranking_metrics(ranks[users], ks) if users.any() else {"users": 0}
    return out


def bootstrap_means(values: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    """(n, columns) means of n resamples of the rows with replacement (the same rows for every column)."""
    picks = rng.integers(0, len(values), size=(n, len(values)))
    return values[picks].mean(axis=1)


def paired_bootstrap(a: np.ndarray, b: np.ndarray, n: int = 1000, seed: int = 0,
                     confidence: float = 0.95) -> dict:
    """Paired bootstrap of mean(a) - mean(b): a and b are per-user values of two models on the same
    users in the same order; each resample draws user indices once and uses them for both.
    ci_low/ci_high: the percentile interval of the difference at `confidence`; p_better: the share of
    resamples in which a's mean is above b's."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"a {a.shape} and b {b.shape} must be 1-D per-user values of the same users")
    if a.size == 0:
        raise ValueError("no users to compare")
    if n < 1 or not 0.0 < confidence < 1.0:
        raise ValueError(f"need n >= 1 and 0 < confidence < 1, not n={n}, confidence={confidence}")
    means = bootstrap_means(np.stack([a, b], axis=1), n, np.random.default_rng(seed))
    diffs = means[:, 0] - means[:, 1]
    alpha = (1.0 - confidence) / 2.0
    mean_a, mean_b = float(a.mean()), float(b.mean())
    return {"mean_a": mean_a, "mean_b": mean_b, "diff": mean_a - mean_b,
            "ci_low": float(np.quantile(diffs, alpha)), "ci_high": float(np.quantile(diffs, 1.0 - alpha)),
            "p_better": float((diffs > 0).mean()),
            "ratio": mean_a / mean_b if mean_b != 0 else None,
            "users": int(a.size), "n_bootstrap": int(n), "confidence": float(confidence)}
