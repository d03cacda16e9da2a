"""Leave-one-out full-ranking evaluation, shared by every model and baseline.

`collect_split` gathers the split interactions into dense item indices; a model is any callable
`scores(user_ids) -> (len(user_ids), n_items)` array; `evaluate` ranks each user's held-out item
against every item the user has not interacted with (training history, plus the validation item
when evaluating on test) and returns the metrics of `metrics.ranking_metrics`.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from pyspark.sql import DataFrame, functions as F

from lakerec.eval.metrics import ranking_metrics, target_rank
from lakerec.eval.split import TEST, TRAIN, VALID
from lakerec.sources.schema import tie_order_column

# A model as evaluation sees it: user indices -> (users, items) scores.
ScoreFn = Callable[[np.ndarray], np.ndarray]


@dataclass
class SplitData:
    item_ids: np.ndarray              # item index -> item id
    train: dict[int, np.ndarray]      # user id -> training item indices, oldest first
    valid: dict[int, int]             # user id -> validation item index
    test: dict[int, int]              # user id -> test item index

    @property
    def n_items(self) -> int:
        return len(self.item_ids)


def collect_split(split_df: DataFrame, catalog_item_ids: DataFrame) -> SplitData:
    """split_df: user_id, item_id, event_time, split. catalog_item_ids: one column item_id (every
    rankable item, including items nobody trained on)."""
    item_ids = np.array(sorted(r.item_id for r in catalog_item_ids.select("item_id").distinct().collect()),
                        dtype=np.int64)
    index = {int(item): i for i, item in enumerate(item_ids)}
    rows = (split_df.groupBy("user_id", "split")
            .agg(F.sort_array(F.collect_list(F.struct("event_time", tie_order_column().alias("tie"), "item_id")))
                 .alias("events"))
            .collect())
    train, valid, test = {}, {}, {}
    for row in rows:
        items = [index[e.item_id] for e in row.events]
        if row.split == TRAIN:
            train[row.user_id] = np.array(items, dtype=np.int64)
        elif row.split == VALID:
            valid[row.user_id] = items[-1]
        elif row.split == TEST:
            test[row.user_id] = items[-1]
    return SplitData(item_ids, train, valid, test)


def seen_before(data: SplitData, user: int, on: str) -> np.ndarray:
    """What a model may see when predicting the `on` item (and what is excluded from its ranking):
    the training items, plus the validation item when predicting the test item."""
    items = data.train.get(user, np.empty(0, dtype=np.int64))
    if on == TEST and user in data.valid:
        items = np.append(items, data.valid[user])
    return items


def ranks(scores: ScoreFn, data: SplitData, on: str = TEST, batch_size: int = 1024,
          users=None) -> tuple[np.ndarray, np.ndarray]:
    """(users, 1-based rank of each user's held-out `on` item among the items the user has not
    seen): what every ranking metric, group split and paired comparison is computed from.
    `users`: the users to rank (default: every user with an `on` item, sorted by id)."""
    targets = data.test if on == TEST else data.valid
    users = np.array(sorted(targets) if users is None else list(users), dtype=np.int64)
    out = np.empty(len(users), dtype=np.int64)
    for start in range(0, len(users), batch_size):
        batch = users[start:start + batch_size]
        matrix = np.asarray(scores(batch), dtype=np.float64)
        for row, user in enumerate(batch):
            out[start + row] = target_rank(matrix[row], targets[int(user)], seen_before(data, int(user), on))
    return users, out


def rows_of(matrix: np.ndarray, users) -> ScoreFn:
    """A ScoreFn over a precomputed score matrix whose rows are `users`."""
    row = {int(u): k for k, u in enumerate(users)}
    return lambda batch: matrix[[row[int(u)] for u in batch]]


def matrix_ranks(scores: np.ndarray, users, data: SplitData, on: str) -> np.ndarray:
    """Ranks of the `on` items of `users` under a precomputed score matrix (rows = users)."""
    return ranks(rows_of(scores, users), data, on, users=users)[1]


def evaluate(scores: ScoreFn, data: SplitData, on: str = TEST, batch_size: int = 1024,
             ks=(1, 5, 10)) -> dict[str, float]:
    return ranking_metrics(ranks(scores, data, on, batch_size)[1], ks)


def coverage(scores: np.ndarray, users, data: SplitData, on: str, k: int = 10) -> float:
    """Catalogue coverage: the share of items in at least one user's top-k (items the user has seen
    excluded). `scores`: one row per user of `users`."""
    shown = np.zeros(data.n_items, dtype=bool)
    k = min(k, data.n_items)
    for row, user in enumerate(users):
        masked = np.array(scores[row], dtype=np.float64)
        masked[seen_before(data, int(user), on)] = -np.inf
        top = np.argpartition(-masked, k - 1)[:k]
        shown[top[np.isfinite(masked[top])]] = True           # a user with fewer than k unseen items
    return float(shown.mean())


def candidate_lists(data: SplitData, users, on: str, seed: int = 2024, k: int = 20) -> dict[int, list[int]]:
    """The LLaRA/RSLLM protocol's lists: per user the held-out item plus k-1 random items the user
    has not seen, at a random position; a fixed seed so every model answers the same lists."""
    targets = data.test if on == TEST else data.valid
    rng = np.random.default_rng(seed)
    lists = {}
    for user in users:
        seen = set(seen_before(data, int(user), on).tolist()) | {targets[user]}
        pool = [int(c) for c in rng.permutation(data.n_items) if int(c) not in seen][:k - 1]
        pool.insert(int(rng.integers(k)), targets[user])
        lists[user] = pool
    return lists
