"""Popularity groups, grouped metrics and the paired bootstrap on hand-made data (numpy only, fast)."""
import numpy as np
import pytest

from lakerec.eval.groups import (grouped_ranking_metrics, item_popularity, ndcg_at, paired_bootstrap,
                                 popularity_groups)
from lakerec.eval.metrics import ranking_metrics
from lakerec.eval.protocol import SplitData


def _split() -> SplitData:
    """10 items. Training counts: item 0: 4, 1: 3, 2: 2, 3: 2, 4: 1, 5: 1, 6-9: 0.
    Every validation and test target is item 6 or 9, which nobody trained on."""
    train = {1: np.array([0, 0, 0, 1, 2]), 2: np.array([0, 1, 3, 3]), 3: np.array([1, 2, 4, 5])}
    return SplitData(np.arange(100, 110), train, valid={1: 9, 2: 9, 3: 9}, test={1: 9, 2: 6, 3: 9})


def test_item_popularity_counts_training_only():
    pop = item_popularity(_split())
    assert pop.tolist() == [4, 3, 2, 2, 1, 1, 0, 0, 0, 0]
    assert pop[9] == 0 and pop[6] == 0          # targets of every user, yet never counted


def test_groups_partition_the_catalogue():
    g = popularity_groups(_split(), head_share=0.2, cold_max=1)
    assert np.flatnonzero(g["head"]).tolist() == [0, 1]                    # top 20% of 10 items
    assert (g["head"] | g["tail"]).all() and not (g["head"] & g["tail"]).any()
    assert np.flatnonzero(g["cold"]).tolist() == [4, 5, 6, 7, 8, 9]        # <= 1 interaction
    assert popularity_groups(_split())["cold"].all()                        # default cold_max=5


def test_head_ties_go_to_the_lower_item_index_and_share_rounds_up():
    # items 2 and 3 both have 2 interactions; only one fits in a 3-item head: the lower index
    assert np.flatnonzero(popularity_groups(_split(), head_share=0.3)["head"]).tolist() == [0, 1, 2]
    hundred = SplitData(np.arange(100), {1: np.array([5])}, {}, {})
    assert popularity_groups(hundred, head_share=0.07)["head"].sum() == 7   # not 8: 0.07 * 100 > 7 in floats
    assert popularity_groups(_split(), head_share=0.15)["head"].sum() == 2  # ceil(1.5)
    with pytest.raises(ValueError):
        popularity_groups(_split(), head_share=1.5)


def test_grouped_metrics_equal_ranking_metrics_on_the_subset():
    groups = popularity_groups(_split(), head_share=0.2, cold_max=1)
    groups["nobody"] = np.zeros(10, dtype=bool)
    ranks = np.array([1, 3, 12, 2, 50])
    targets = np.array([0, 1, 9, 0, 6])
    m = grouped_ranking_metrics(ranks, targets, groups, ks=(1, 5))
    assert m["head"] == ranking_metrics([1, 3, 2], ks=(1, 5))
    assert m["tail"] == ranking_metrics([12, 50], ks=(1, 5))
    assert m["cold"] == m["tail"] and m["cold"]["users"] == 2
    assert m["nobody"] == {"users": 0}
    with pytest.raises(ValueError):
        grouped_ranking_metrics(ranks, targets[:-1], groups)


def test_ndcg_at_is_the_formula_ranking_metrics_averages():
    ranks = np.array([1, 3, 12, np.inf])                 # inf: not in the list at all
    assert ndcg_at(ranks, k=10).tolist() == pytest.approx([1.0, 0.5, 0.0, 0.0])
    assert ndcg_at(ranks[:3], k=10).mean() == pytest.approx(ranking_metrics(ranks[:3], ks=(10,))["ndcg@10"])
    with pytest.raises(ValueError):
        ndcg_at([0, 1])


def test_paired_bootstrap_of_identical_models_is_exactly_zero():
    a = np.random.default_rng(1).random(100)
    r = paired_bootstrap(a, a.copy(), n=200)
    assert (r["diff"], r["ci_low"], r["ci_high"], r["ratio"]) == (0.0, 0.0, 0.0, 1.0)
    assert (r["users"], r["n_bootstrap"], r["confidence"]) == (100, 200, 0.95)


def test_paired_bootstrap_of_a_constant_shift_has_a_zero_width_interval():
    b = np.random.default_rng(2).random(200)
    r = paired_bootstrap(b + 0.1, b, n=300, seed=3)
    assert r["diff"] == pytest.approx(0.1)
    assert r["ci_low"] <= 0.1 + 1e-12 and r["ci_high"] >= 0.1 - 1e-12
    # resampling the same users for both cancels each user's noise; independent draws would not
    assert r["ci_high"] - r["ci_low"] < 1e-9
    assert r["ratio"] == pytest.approx(r["mean_a"] / r["mean_b"])


def test_paired_bootstrap_interval_surrounds_a_noisy_difference_and_is_seeded():
    rng = np.random.default_rng(4)
    b = rng.random(300)
    a = b + rng.normal(0.05, 0.1, 300)
    r = paired_bootstrap(a, b, n=500, seed=5)
    assert r["ci_low"] < r["diff"] < r["ci_high"] and r["ci_low"] > 0      # 0.05 is ~9 standard errors
    assert paired_bootstrap(a, b, n=500, seed=5) == r
    assert paired_bootstrap(a, b, n=500, seed=6)["ci_low"] != r["ci_low"]
    assert paired_bootstrap(a, b, n=500, confidence=0.5)["ci_high"] < r["ci_high"]


def test_paired_bootstrap_interval_is_the_percentile_interval_of_paired_resamples():
    rng = np.random.default_rng(7)
    a, b = rng.random(50), rng.random(50)
    picks = np.random.default_rng(8).integers(0, 50, size=(400, 50))    # one draw of users per resample
    diffs = a[picks].mean(axis=1) - b[picks].mean(axis=1)
    r = paired_bootstrap(a, b, n=400, seed=8, confidence=0.9)
    assert (r["ci_low"], r["ci_high"]) == pytest.approx((np.quantile(diffs, 0.05), np.quantile(diffs, 0.95)))


def test_paired_bootstrap_rejects_bad_input_and_handles_a_zero_baseline():
    assert paired_bootstrap(np.ones(3), np.zeros(3), n=10)["ratio"] is None
    with pytest.raises(ValueError):
        paired_bootstrap(np.ones(3), np.ones(4))
    with pytest.raises(ValueError):
        paired_bootstrap(np.array([]), np.array([]))
    with pytest.raises(ValueError):
        paired_bootstrap(np.ones(3), np.ones(3), confidence=1.0)
