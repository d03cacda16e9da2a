"""Retrieval: for each user vector, the catalogue items with the highest dot product with the item
matrix, best first, leaving out the user's own history and items nobody may get."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from rec_udf.item_lookup import ItemLookup, ragged


def top_k(user_vectors: np.ndarray, item_matrix: np.ndarray, lookup: ItemLookup, k: int,
          exclude: Sequence[Sequence[int]] = (), blocked: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(catalogue indices (B, k), scores (B, k)), best first; `exclude` = item ids per user
    (their history); `blocked` = a catalogue-length bool mask of items nobody may get (e.g. no
    longer in the items table). argpartition, then a sort of the k survivors only. A score of
    -inf means the user had fewer than k items left to recommend."""
    scores = user_vectors @ item_matrix.T
    if blocked is not None:
        scores[:, blocked] = -np.inf
    if len(exclude):
        rows, ids = ragged(exclude)
        index = lookup.index(ids)
        scores[rows[index >= 0], index[index >= 0]] = -np.inf
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    part_scores = np.take_along_axis(scores, part, axis=1)
    order = np.argsort(-part_scores, axis=1, kind="stable")
    return np.take_along_axis(part, order, axis=1), np.take_along_axis(part_scores, order, axis=1)
