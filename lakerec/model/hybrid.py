"""The hybrid ranking score: the ID side (SASRec's logit, plus the text view's when it helps) +
lm_weight * the LM's score.

    score(u, i) = h_u . e_i  +  a * g_u . f_i  +  w * cos(v_u, t_i) / temperature

h_u, e_i: SASRec's user state and item embedding (with a seed ensemble of K SASRecs, the members'
mean: sum_k h^k_u . e^k_i / K, `IDSide`); g_u, f_i: the text view's (LLM-ESR's semantic view:
a SASRec whose item embeddings are an adapter over the LM backbone's frozen text features of each
item, `SASRecConfig.text_dim`), weighted by a = text_weight; v_u, t_i: the LM's user vector (its
mean-pooled prompt) and item text vector. With a = w = 0 the hybrid *is* its ID model, so the
product can never serve a model worse than its ID model: a and then w are chosen on validation from a grid
that contains 0 (BIGRec's fusion weight; LLM-ESR sums an ID-view and a text-view logit the same
way), and 0 is the explicit fallback; an added term is kept only when it also helps out of fold,
with a stated confidence (`choose_weights`). The confidence matters: on ML-100K a validation gain
of +0.002 NDCG@10 from the LM term (out of fold, but within noise) turned into a loss on test on
all three seeds (bench/results/quality_ml100k.md of 2026-11-24).

Why a weight fitted on validation rather than a gate trained with the LM: SASRec has already fit
the training targets, so an LM term trained jointly on those same targets learns to switch itself
off (the in-sample trap). The LM term is trained on its own loss, and the mix is chosen on the
validation items, which neither model trained on.

Why the seed ensemble is not gated on validation like the added terms: each member's epoch is the
best of its noisy validation checks, so a single member's validation score is a maximum over noise
that its average with another member does not get (ML-100K, full profile, seeds 0-2: the two-seed
ensemble 0.1140, 0.1171, 0.1151 on validation against its first member's 0.1135, 0.1165, 0.1125;
on test 0.0993, 0.1028, 0.0952 against 0.0892, 0.0976, 0.0928). Averaging seeds of one model is
variance reduction; the report shows the ensemble (`id_model`) beside its first member (`sasrec`)
on both splits.

Export: one dot product at scoring time, `[h_u ; a g_u ; (w / temperature) v_u] . [e_i ; f_i ; t_i]`,
with one `h_u / K`, `e_i` block per ensemble member
(`IDSide.score_state` and `score_items` are the first two blocks).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

import numpy as np
import torch
from torch import nn

from lakerec.eval.groups import paired_bootstrap
from lakerec.eval.metrics import ndcg_at, ranking_metrics
from lakerec.model.sasrec import SASRec

if TYPE_CHECKING:                      # eval.protocol imports pyspark; the export path must not need it
    from lakerec.eval.protocol import SplitData

WEIGHT_GRID = (0.0, 0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0)


def serving_label(lm_weight: float, text_weight: float) -> str:
    """What a version serves: `hybrid` (the LM term is in), `id_model+text_view`, or `id_model` (the ID model alone)."""
    if lm_weight > 0:
        return "hybrid"
    return "id_model+text_view" if text_weight > 0 else "id_model"


def mix(id_scores: np.ndarray, lm_scores: np.ndarray, weight: float) -> np.ndarray:
    return id_scores + weight * lm_scores


@dataclass
class Mix:
    weights: tuple[float, ...]     # what is served, one per added term: all 0 unless the mix helps out of fold
    table: dict[str, float]        # metric of each grid point ("w1,w2") on all the users (in-sample for the choice)
    honest: dict                   # ranking metrics of the mix out of fold (== the base's when the weights are 0)
    in_sample_weights: tuple[float, ...]   # the grid's best point on all the users
    confidence: float = 0.0        # share of paired bootstrap resamples in which the out-of-fold mix beats the base

    @property
    def weight(self) -> float:
        """The weight of a one-term mix (`choose_weight`)."""
        (weight,) = self.weights
        return weight

    @property
    def in_sample_weight(self) -> float:
        (weight,) = self.in_sample_weights
        return weight


def grid_key(weights) -> str:
    return ",".join(f"{w:g}" for w in weights)


def choose_weights(base: np.ndarray, terms: Sequence[np.ndarray], users: np.ndarray, split: "SplitData", on: str,
                   grid=WEIGHT_GRID, metric: str = "ndcg@10", folds: int = 2, seed: int = 0,
                   min_confidence: float = 0.0) -> Mix:
    """Weights of `terms` added to `base` (score matrices whose rows are `users`, same order), chosen
    jointly on the `on` items of `users` over the grid's points (every term's weight from `grid`).

    The best point on the same users that judge it is an optimistic estimate, so the choice is also
    cross-fitted: the users are split into `folds`, each fold is mixed with the point chosen on the
    others, and the terms are kept only when that out-of-fold mix beats `base` alone on `metric` and
    does so in at least `min_confidence` of paired bootstrap resamples of the users (per-user NDCG@10);
    otherwise every weight is 0 (the fallback). Ties go to the smaller weights."""
    from lakerec.eval.protocol import ranks, rows_of
    if not all(len(users) == len(m) for m in (base, *terms)):
        raise ValueError(f"{len(users)} users, but score matrices of {[len(m) for m in (base, *terms)]} rows")
    points = list(itertools.product((float(w) for w in grid), repeat=len(terms)))
    per_point = {}
    for point in points:
        scores = base + sum(w * term for w, term in zip(point, terms) if w)
        per_point[point] = ranks(rows_of(scores, users), split, on, users=users)[1]

    def best(rows) -> tuple:
        values = {point: ranking_metrics(r[rows])[metric] for point, r in per_point.items()}
        top = max(values.values())
        return min((point for point, v in values.items() if v == top), key=lambda point: (sum(point), point))

    everyone = np.arange(len(users))
    fold_of = np.random.default_rng(seed).permutation(len(users)) % folds
    out_of_fold = np.empty(len(users), dtype=np.int64)
    for fold in range(folds):
        here = fold_of == fold
        out_of_fold[here] = per_point[best(everyone[~here])][here]
    zero = (0.0,) * len(terms)
    honest, alone = ranking_metrics(out_of_fold), ranking_metrics(per_point[zero])
    table = {grid_key(point): ranking_metrics(r)[metric] for point, r in per_point.items()}
    chosen = best(everyone)
    confidence = paired_bootstrap(ndcg_at(out_of_fold), ndcg_at(per_point[zero]), seed=seed)["p_better"]
    if honest[metric] > alone[metric] and chosen != zero and confidence >= min_confidence:
        return Mix(chosen, table, honest, chosen, confidence)
    return Mix(zero, table, alone, chosen, confidence)


def choose_weight(id_scores: np.ndarray, term: np.ndarray, users: np.ndarray, split: "SplitData", on: str,
                  grid=WEIGHT_GRID, metric: str = "ndcg@10", folds: int = 2, seed: int = 0,
                  min_confidence: float = 0.0) -> Mix:
    """One term's weight (`choose_weights` with one term): `Mix.weight`, `Mix.in_sample_weight`."""
    return choose_weights(id_scores, [term], users, split, on, grid, metric, folds, seed, min_confidence)


def user_vector(id_state: torch.Tensor, lm_user: torch.Tensor, lm_weight: float, temperature: float) -> torch.Tensor:
    """[h_u ; (w / temperature) v_u]: the exported user vector (see the module docstring)."""
    return torch.cat([id_state, lm_user * (lm_weight / temperature)], dim=-1)


def item_matrix(id_items: np.ndarray, text_items: np.ndarray) -> np.ndarray:
    """[e_i ; t_i] per catalogue row: the exported item matrix."""
    return np.concatenate([id_items, text_items], axis=1).astype(np.float32)


class IDSide(nn.Module):
    """The ID side of the hybrid: the ID model, and the text view weighted by `text_weight` when it
    helped on validation (None otherwise). The ID model is SASRec, or a seed ensemble of SASRecs
    (`sasrec` and its `partners`: the same network trained from other seeds) whose logit is the
    members' mean, so that one member scores exactly as SASRec alone. To the LM it is `sasrec` (`last_hidden`,
    `user_embedding`, `item_embeddings`, `config`: the projected ID tokens); to the score it is
    `score_state` against `score_items`, one dot product equal to the ID model's logit + text_weight *
    the text view's."""

    def __init__(self, sasrec: SASRec, text_view: SASRec | None = None, text_weight: float = 0.0,
                 partners: Sequence[SASRec] = ()):
        super().__init__()
        if text_view is not None and not text_weight:
            text_view = None                             # a weight of 0 is no text view at all
        self.sasrec, self.text_view = sasrec, text_view
        self.partners = nn.ModuleList(partners)
        self.text_weight = float(text_weight) if text_view is not None else 0.0
        self.config = sasrec.config

    @property
    def members(self) -> list[SASRec]:
        """The ID model's members: SASRec first, then its partners."""
        return [self.sasrec, *self.partners]

    def last_hidden(self, seq: torch.Tensor) -> torch.Tensor:
        return self.sasrec.last_hidden(seq)

    def user_embedding(self, seq: torch.Tensor) -> torch.Tensor:
        return self.sasrec.user_embedding(seq)

    def item_embeddings(self) -> torch.Tensor:
        return self.sasrec.item_embeddings()

    @property
    def score_dim(self) -> int:
        return sum(m.config.dim for m in self.members) + (self.text_view.config.dim if self.text_view is not None else 0)

    def score_state(self, seq: torch.Tensor, sasrec_state: torch.Tensor | None = None,
                    text_table: torch.Tensor | None = None) -> torch.Tensor:
        """(B, score_dim) [h_u / K ; h'_u / K ... ; a g_u] of left-padded sequences (K members);
        `sasrec_state`: h_u when the caller has it; `text_table`: the text view's `item_table()` when
        precomputed (the exported graph's constant)."""
        state = self.sasrec.last_hidden(seq) if sasrec_state is None else sasrec_state
        parts = [state] + [m.last_hidden(seq) for m in self.partners]
        if len(parts) > 1:
            parts = [p / len(parts) for p in parts]
        if self.text_view is not None:
            parts.append(self.text_weight * self.text_view.last_hidden(seq, text_table))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    @torch.no_grad()
    def full_sort_scores(self, seq: torch.Tensor) -> torch.Tensor:
        """The ID side's scores over the whole catalogue (SASRec's alone with one member and no text view)."""
        return self.score_state(seq) @ self.score_items().T

    @torch.no_grad()
    def score_items(self) -> torch.Tensor:
        """(n_items, score_dim) [e_i ; e'_i ... ; f_i]."""
        parts = [m.item_embeddings() for m in self.members]
        if self.text_view is not None:
            parts.append(self.text_view.item_embeddings())
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)


def id_side(model: "SASRec | IDSide") -> IDSide:
    return model if isinstance(model, IDSide) else IDSide(model)
