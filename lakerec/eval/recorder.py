"""The evaluation bookkeeping of a training run: each model's score matrix on the evaluated users,
and the long-format metric rows (`lakerec.model_metrics`) and per-user ranks recorded from it."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lakerec.eval.groups import grouped_ranking_metrics, paired_bootstrap, popularity_groups
from lakerec.eval.metrics import candidate_metrics, ndcg_at, ranking_metrics
from lakerec.eval.protocol import ScoreFn, SplitData, candidate_lists, coverage, matrix_ranks
from lakerec.eval.split import TEST


def score_matrix(scorer: ScoreFn, users: np.ndarray, batch: int = 512) -> np.ndarray:
    return np.concatenate([np.asarray(scorer(users[b:b + batch]), dtype=np.float32)
                           for b in range(0, len(users), batch)])


@dataclass
class Evaluated:
    """One model's scores on the evaluated users of one split, and what the report needs of them."""
    users: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray


def evaluated(scores: np.ndarray, users: np.ndarray, split: SplitData, on: str) -> Evaluated:
    return Evaluated(users, scores, matrix_ranks(scores, users, split, on))


def scored_candidates(scores: np.ndarray, users: np.ndarray, split: SplitData, on: str,
                      lists: dict[int, list[int]]) -> dict:
    """The 20-candidate protocol by candidate scoring: the model's own user-item score restricted
    to the 20 candidates picks the answer (valid by construction). `scores`: rows of `users`;
    `lists`: `candidate_lists` of those users (fixed seed: the free-generation rows' lists too)."""
    targets = split.test if on == TEST else split.valid
    answers = [lists[int(u)][int(np.argmax(scores[row][lists[int(u)]]))] for row, u in enumerate(users)]
    return candidate_metrics(answers, [lists[int(u)] for u in users], [targets[int(u)] for u in users])


class Recorder:
    """The run's long-format metric rows (`lakerec.model_metrics`) and the per-user ranks that the
    paired comparisons and the quality summary are computed from. Every ranking row of a split is
    computed on the same users (`users` is recorded beside each row)."""

    def __init__(self, split: SplitData):
        self.split, self.rows, self.ranks = split, [], {}
        self.groups = popularity_groups(split)
        self._candidate_lists: dict[tuple, dict] = {}     # the same lists for every model: built once

    def add(self, model: str, seed, split_name: str, metrics: dict, template: str = "trained",
            family: str = "ranking") -> None:
        for metric, value in metrics.items():
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                self.rows.append({"model": model, "seed": seed, "split": split_name, "family": family,
                                  "template": template, "metric": metric, "value": float(value)})

    def ranking(self, model: str, seed, on: str, result: Evaluated) -> dict:
        """Full-ranking rows, and on test the head / tail / cold rows and candidate scoring."""
        metrics = ranking_metrics(result.ranks)
        if on == TEST:
            metrics["coverage@10"] = coverage(result.scores, result.users, self.split, on)
        self.add(model, seed, on, metrics)
        if on == TEST:
            self.ranks[(model, seed)] = result.ranks
            targets = np.array([self.split.test[int(u)] for u in result.users])
            for group, values in grouped_ranking_metrics(result.ranks, targets, self.groups).items():
                self.add(model, seed, on, values, family=f"ranking_{group}")
            key = (on, tuple(int(u) for u in result.users))
            if key not in self._candidate_lists:
                self._candidate_lists[key] = candidate_lists(self.split, list(key[1]), on)
            self.add(model, seed, on, scored_candidates(result.scores, result.users, self.split, on,
                                                        self._candidate_lists[key]), family="direct")
        return metrics

    def paired(self, model: str, baseline: str, seed) -> dict:
        return paired_bootstrap(ndcg_at(self.ranks[(model, seed)]), ndcg_at(self.ranks[(baseline, seed)]))
