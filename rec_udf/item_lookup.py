"""Item ids -> the bundle's catalogue indices, whole arrays at once, and the ID model's input built
from them: each user's item ids as one left-padded row of catalogue index + 1, newest last."""
from __future__ import annotations

from typing import Sequence

import numpy as np


def ragged(lists: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """(row of each value, values) of a list of int lists (None counts as empty), flattened."""
    lengths = np.fromiter((0 if v is None else len(v) for v in lists), dtype=np.int64, count=len(lists))
    values = [np.asarray(v, dtype=np.int64) for v in lists if v is not None and len(v)]
    flat = np.concatenate(values) if values else np.zeros(0, dtype=np.int64)
    return np.repeat(np.arange(len(lists)), lengths), flat


class ItemLookup:
    """The catalogue's item ids (catalogue order), sorted once for vectorised lookups."""

    def __init__(self, item_ids: np.ndarray):
        self._by_id = np.argsort(item_ids, kind="stable")
        self._sorted_ids = np.asarray(item_ids)[self._by_id]

    def index(self, item_ids) -> np.ndarray:
        """Catalogue index of each item id (any int array), -1 for ids the model does not know."""
        ids = np.asarray(item_ids, dtype=np.int64)
        if not len(self._sorted_ids):
            return np.full(ids.shape, -1, dtype=np.int64)
        at = np.minimum(np.searchsorted(self._sorted_ids, ids), len(self._sorted_ids) - 1)
        return np.where(self._sorted_ids[at] == ids, self._by_id[at], -1)

    def id_sequences(self, sequences: Sequence[Sequence[int]], width: int) -> np.ndarray:
        """Item ids oldest first -> (B, width) catalogue index + 1, newest last, left-padded with 0.
        Items the model does not know are skipped."""
        out = np.zeros((len(sequences), width), dtype=np.int64)
        rows, ids = ragged(sequences)
        index = self.index(ids)
        rows, index = rows[index >= 0], index[index >= 0]
        # rows are ascending: an item's place in its row, then its distance from the row's end (newest = 1)
        place = np.arange(len(rows)) - np.searchsorted(rows, rows)
        from_end = np.bincount(rows, minlength=len(sequences))[rows] - place
        keep = from_end <= width
        out[rows[keep], width - from_end[keep]] = index[keep] + 1
        return out
