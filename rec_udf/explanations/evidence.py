"""The evidence behind a recommendation: among the user's history, the items closest to the
recommended item in the ranking model's own item space, liked ones first and among them those
sharing a genre with it, with their genres and the user's ratings. An explanation may say nothing
beyond it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping, Sequence

import numpy as np

from rec_udf.explanations.titles import genre_names
from rec_udf.textualizer import clean_text

EVIDENCE_ITEMS = 3          # history items quoted as evidence per explanation
GOOD_RATING = 4.0           # evidence prefers items rated at least this (when ratings are known)
DISLIKED_BELOW = 3.0        # items the user rated below this are never evidence


@dataclass(frozen=True)
class EvidenceItem:
    item_id: int
    title: str
    genres: tuple[str, ...]
    shared_genres: tuple[str, ...]
    rating: float | None


@dataclass(frozen=True)
class Evidence:
    """What an explanation of (user, item) may say: the item, the closest history items, the history."""
    item_id: int
    title: str
    genres: tuple[str, ...]
    release_year: int | None
    items: tuple[EvidenceItem, ...]
    history_titles: tuple[str, ...] = field(default=(), repr=False)

    @property
    def item_ids(self) -> list[int]:
        return [e.item_id for e in self.items]


def select_evidence(item_vectors: np.ndarray, target: int, history: Sequence[int],
                    ratings: Sequence[float | None] | None = None, k: int = EVIDENCE_ITEMS,
                    shares_genre: Sequence[bool] | None = None) -> list[int]:
    """Positions in `history` (catalogue indices) of the k items closest to catalogue index `target`
    by cosine in `item_vectors`, best first; items rated >= GOOD_RATING first when ratings are known,
    items rated below DISLIKED_BELOW never (a film the user disliked explains nothing). Within the
    liked (or the other) items, those that `shares_genre` with the target come first: the explainer
    writes 'like "<cited item>", it is a <genre>', which is true only of a genre both have."""
    history = np.asarray(history, dtype=np.int64)
    if ratings is not None and len(ratings) != len(history):
        raise ValueError(f"{len(ratings)} ratings for {len(history)} history items")
    if shares_genre is not None and len(shares_genre) != len(history):
        raise ValueError(f"{len(shares_genre)} genre flags for {len(history)} history items")
    if not len(history):
        return []
    vectors = item_vectors[history]
    norms = np.linalg.norm(vectors, axis=1) * max(float(np.linalg.norm(item_vectors[target])), 1e-12)
    similarity = vectors @ item_vectors[target] / np.maximum(norms, 1e-12)
    liked = np.zeros(len(history), dtype=bool)
    if ratings is not None:
        liked = np.array([r is not None and not np.isnan(r) and r >= GOOD_RATING for r in ratings], dtype=bool)
    disliked = np.zeros(len(history), dtype=bool)
    if ratings is not None:
        disliked = np.array([r is not None and not np.isnan(r) and r < DISLIKED_BELOW for r in ratings], dtype=bool)
    shares = np.zeros(len(history), dtype=bool) if shares_genre is None else np.asarray(shares_genre, dtype=bool)
    # distinct items only (a history may repeat one); liked first, then sharing a genre, then by similarity
    order = np.lexsort((-similarity, ~shares, ~liked))
    chosen, seen = [], set(history[disliked].tolist())
    for position in order:
        if int(history[position]) not in seen:
            seen.add(int(history[position]))
            chosen.append(int(position))
        if len(chosen) == k:
            break
    return chosen


def build_evidence(item: Mapping, history_items: Sequence[Mapping], ratings: Sequence[float | None],
                   all_history: Sequence[Mapping] = ()) -> Evidence:
    """`item` and `history_items` are catalogue rows (item_id, title, release_year, genres)."""
    genres = tuple(genre_names(item.get("genres")))
    evidence = []
    for row, rating in zip(history_items, ratings):
        own = tuple(genre_names(row.get("genres")))
        evidence.append(EvidenceItem(int(row["item_id"]), clean_text(row.get("title")), own,
                                     tuple(g for g in own if g in genres),
                                     None if rating is None or np.isnan(rating) else float(rating)))
    year = item.get("release_year")
    return Evidence(int(item["item_id"]), clean_text(item.get("title")), genres,
                    None if year is None else int(year), tuple(evidence),
                    tuple(clean_text(h.get("title")) for h in all_history))
