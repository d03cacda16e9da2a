"""RecSysLLM's training-side inputs: entity-aware masking and batching (torch) over the pure-Python
tokenization and GLM layout in `rec_udf.glm_input` (shared with the scoring runtime).

Masking levels pick runs of whole entities; `collate` lays out part A of every example at columns
[0, A) and part B at [A, A + B) and builds the attention mask: part A attends bidirectionally within
part A; part B attends to part A and causally within part B.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from rec_udf.glm_input import IGNORE, MAX_INTER, MAX_INTRA, GLMExample, TokenizedPrompt

# --- entity-aware masking ----------------------------------------------------------------------

LEVELS = ("entity", "sentence", "document")


def choose_masked_entities(n_entities: int, level: str, rng: np.random.Generator,
                           entity_ratio: float = 0.15) -> list[tuple[int, int]]:
    """Runs of whole entities to blank, as [first, last] entity numbers (1-based, inclusive),
    sorted chronologically and never overlapping. entity: a few single entities; sentence: one run
    of 2-4 consecutive entities; document: the newest ~30% of the history as one span."""
    if n_entities == 0:
        return []
    if level == "entity":
        k = max(1, int(round(n_entities * entity_ratio)))
        chosen = sorted(rng.choice(np.arange(1, n_entities + 1), size=min(k, n_entities), replace=False))
        return [(int(e), int(e)) for e in chosen]
    if level == "sentence":
        length = int(min(n_entities, rng.integers(2, 5)))
        first = int(rng.integers(1, n_entities - length + 2))
        return [(first, first + length - 1)]
    if level == "document":
        length = max(1, int(round(n_entities * 0.3)))
        return [(n_entities - length + 1, n_entities)]
    raise ValueError(f"unknown masking level {level!r}; expected one of {LEVELS}")


def mask_token_ranges(prompt: TokenizedPrompt, runs: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Entity runs -> token ranges [start, end): from the first token of the first entity to the last
    token of the last one (separators between them included), so no range cuts an entity."""
    ranges = prompt.entity_ranges()
    return [(ranges[first - 1][0], ranges[last - 1][1]) for first, last in runs]


@dataclass
class Batch:
    ids: torch.Tensor        # (B, L)
    slot: torch.Tensor
    item: torch.Tensor
    pos: torch.Tensor
    inter: torch.Tensor
    intra: torch.Tensor
    labels: torch.Tensor
    allowed: torch.Tensor    # (B, L, L) bool
    part_a: torch.Tensor     # (B, L) bool, real part-A tokens
    blank: torch.Tensor      # (B,)

    def to(self, device) -> "Batch":
        return Batch(**{k: v.to(device) for k, v in self.__dict__.items()})


def collate(examples: Sequence[GLMExample], pad_id: int) -> Batch:
    """Part A of every example at columns [0, A), part B at [A, A + B); padding anywhere is masked."""
    a_len = max(e.part_a for e in examples)
    b_len = max(len(e.ids) - e.part_a for e in examples)
    length = a_len + b_len
    n = len(examples)

    def grid(fill):
        return np.full((n, length), fill, dtype=np.int64)

    ids, slot, item, pos, inter, intra, labels = (grid(pad_id), grid(0), grid(0), grid(0), grid(0), grid(0),
                                                   grid(IGNORE))
    valid = np.zeros((n, length), dtype=bool)
    in_a = np.zeros((n, length), dtype=bool)
    for row, e in enumerate(examples):
        b = len(e.ids) - e.part_a
        cols = np.r_[0:e.part_a, a_len:a_len + b]
        for target, source in ((ids, e.ids), (slot, e.slot), (item, e.item), (pos, e.pos), (inter, e.inter),
                               (intra, e.intra), (labels, e.labels)):
            target[row, cols] = source
        valid[row, cols] = True
        in_a[row, :e.part_a] = True
    in_b = valid & ~in_a
    # part A rows see part A; part B rows see part A and part B columns at or before them.
    causal = np.tril(np.ones((length, length), dtype=bool))
    allowed = (in_a[:, None, :] & valid[:, :, None]) | (in_b[:, :, None] & in_b[:, None, :] & causal[None])
    t = torch.from_numpy
    return Batch(t(ids), t(slot), t(item), t(pos), t(np.minimum(inter, MAX_INTER - 1)),
                 t(np.minimum(intra, MAX_INTRA - 1)), t(labels), t(allowed), t(in_a),
                 torch.tensor([e.blank for e in examples]))


__all__ = ["LEVELS", "choose_masked_entities", "mask_token_ranges", "Batch", "collate"]
