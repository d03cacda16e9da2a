"""Ranking metrics against values computed by hand."""
import math

import numpy as np
import pytest

from lakerec.eval.metrics import candidate_metrics, ranking_metrics, rmse_mae, target_rank


def test_ranking_metrics_on_a_toy_ranking():
    # three users; their held-out items rank 1st, 3rd and 12th
    m = ranking_metrics([1, 3, 12])
    assert m["hr@1"] == pytest.approx(1 / 3)
    assert m["hr@5"] == pytest.approx(2 / 3)
    assert m["hr@10"] == pytest.approx(2 / 3)
    assert m["ndcg@5"] == pytest.approx((1 / math.log2(2) + 1 / math.log2(4)) / 3)   # (1 + 0.5) / 3
    assert m["ndcg@10"] == pytest.approx(0.5)
    assert m["mrr"] == pytest.approx((1 + 1 / 3 + 1 / 12) / 3)
    assert m["users"] == 3


def test_target_rank_excludes_history_and_counts_ties_against_the_target():
    scores = np.array([0.9, 0.1, 0.5, 0.5, 0.7])
    assert target_rank(scores, target=2) == 4          # 0.9, 0.7 and the tie 0.5 are >= 0.5
    assert target_rank(scores, target=2, excluded=[0, 4]) == 2
    assert target_rank(scores, target=0, excluded=[0]) == 1   # the target itself is never excluded
    assert target_rank(np.zeros(5), target=3) == 5     # a constant scorer gets the worst rank


def test_candidate_protocol_counts_invalid_answers():
    cands = [[1, 2, 3], [4, 5, 6], [7, 8, 9], [1, 5, 9]]
    m = candidate_metrics([2, 99, 7, None], cands, targets=[2, 4, 8, 1])
    assert m["valid_ratio"] == pytest.approx(0.5)
    assert m["hit_ratio@1"] == pytest.approx(0.25)
    assert m["hit_ratio@1_valid"] == pytest.approx(0.5)


def test_rmse_mae():
    m = rmse_mae(np.array([3.0, 4.0, 5.0]), np.array([4.0, 4.0, 3.0]))
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 3)) and m["mae"] == pytest.approx(1.0)


def test_empty_or_zero_ranks_are_rejected():
    with pytest.raises(ValueError):
        ranking_metrics([])
    with pytest.raises(ValueError):
        ranking_metrics([0, 1])
