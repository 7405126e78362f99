"""benchmarks/report_stats.py against answers computed by hand.

Every expected number below is derived in its comment, not read back from
the code: the Wilcoxon p-value by counting sign patterns, Holm's adjustment
step by step, the penalty matrix and the ranking from toy grids whose
differences are built in.
"""

import numpy as np
import pandas as pd
import pytest

from benchmarks import report_stats as rs
from benchmarks.report_markdown import render_report
from benchmarks.report_data import validate_results


def test_wilcoxon_by_counting_sign_patterns():
    # |d| ranks 1..5; the negative one has rank 2, so W- = 2. Of the 2**5 = 32
    # equally likely sign patterns, W- <= 2 for {}, {1}, {2}: 3 patterns.
    # Two-sided: 2 * 3 / 32 = 0.1875.
    assert rs.wilcoxon_p([1.0, -2.0, 3.0, 4.0, 5.0]) == pytest.approx(0.1875)
    # All five of one sign: 2 * 1 / 32 = 0.0625, the floor at 5 pairs.
    assert rs.wilcoxon_p([0.1, 0.2, 0.3, 0.4, 0.5]) == pytest.approx(0.0625)
    assert rs.smallest_wilcoxon_p(5) == pytest.approx(0.0625)
    assert rs.smallest_wilcoxon_p(10) == pytest.approx(2 / 1024)
    assert rs.wilcoxon_p([0.0] * 5) == 1.0
    # Sign test: 4 wins of 5, P(X >= 4) = 6 / 32, two-sided 12 / 32 = 0.375.
    assert rs.sign_test_p([1, 1, 1, 1, -1]) == pytest.approx(0.375)


def test_holm_step_by_step():
    # Sorted: 0.005 * 4 = 0.02; 0.01 * 3 = 0.03; 0.03 * 2 = 0.06; 0.04 * 1 = 0.04,
    # raised to the running maximum 0.06. Back in the input order:
    adjusted = rs.holm([0.01, 0.04, 0.03, 0.005])
    np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
    # NaN is not in the family: m = 2 here, and the adjusted values cap at 1.
    adjusted = rs.holm([0.6, np.nan, 0.2])
    assert np.isnan(adjusted[1])
    np.testing.assert_allclose(adjusted[[0, 2]], [0.6, 0.4])
    np.testing.assert_allclose(rs.holm([0.7, 0.8]), [1.0, 1.0])
    assert rs.holm([]).shape == (0,)


def test_bootstrap_interval_is_deterministic_under_a_seed():
    values = [0.01, 0.03, -0.02, 0.05, 0.02]
    first = rs.bootstrap_mean_ci(values, n_boot=2000, random_state=7)
    assert first == rs.bootstrap_mean_ci(values, n_boot=2000, random_state=7)
    assert first != rs.bootstrap_mean_ci(values, n_boot=2000, random_state=8)
    low, high = first
    # A percentile interval of resampled means lies within the data's range
    # and holds the sample mean (0.018) for these values.
    assert -0.02 <= low < np.mean(values) < high <= 0.05
    assert rs.bootstrap_mean_ci([0.02] * 5) == (0.02, 0.02)  # no spread, no interval width
    assert all(np.isnan(rs.bootstrap_mean_ci([0.3])))


def _toy_grid(values, budgets=(10, 20), dataset="toy"):
    """Rows of a grid from ``values[method][budget_index]`` = one value per seed."""
    rows = []
    for method, per_budget in values.items():
        for b, seeds in enumerate(per_budget):
            for seed, acc in enumerate(seeds):
                rows.append({"method": method, "dataset": dataset, "seed": seed,
                             "cycle": b + 1, "n_labeled": budgets[b], "acc": acc,
                             "auc": acc, "train_seconds": 1.0, "query_seconds": 0.0})
    return pd.DataFrame(rows)


BASE = np.array([0.70, 0.72, 0.68, 0.71, 0.69])


def test_penalty_matrix_on_three_methods():
    # Budget 10: a = b + 0.1 + small noise (a clearly and consistently better:
    # paired t p ~ 1e-6); c = b + differences that cancel (t = 0, p = 1).
    # Budget 20: all three equal (differences 0, p = 1). So a beats b and c at
    # 1 of 2 points, nothing else is significant.
    noise = np.array([0.0, 0.01, -0.01, 0.02, 0.0])
    grid = _toy_grid({
        "random": [BASE, BASE],
        "a": [BASE + 0.1 + noise, BASE],
        "c": [BASE + np.array([0.01, -0.01, 0.02, -0.02, 0.0]), BASE],
    })
    share, points = rs.penalty_matrix(validate_results(grid))
    assert list(share.index) == ["random", "a", "c"]
    assert (points.to_numpy()[~np.eye(3, dtype=bool)] == 2).all()
    expected = np.array([[np.nan, 0, 0], [0.5, np.nan, 0.5], [0, 0, np.nan]])
    np.testing.assert_array_equal(share.to_numpy(), expected)


def test_penalty_matrix_constant_difference_counts_as_a_win():
    # a = random + 0.05 on every seed: no variance, an infinite t, p = 0.
    grid = _toy_grid({"random": [BASE], "a": [BASE + 0.05]}, budgets=(10,))
    share, _ = rs.penalty_matrix(validate_results(grid))
    assert share.loc["a", "random"] == 1.0 and share.loc["random", "a"] == 0.0


def test_identical_methods_are_one_method_in_holm_and_ranking():
    # margin and entropy have the same rows; bald differs in one digit.
    up = BASE + np.array([0.01, 0.02, 0.03, 0.04, 0.05])
    grid = _toy_grid({"random": [BASE, BASE], "margin": [up, up], "entropy": [up, up],
                      "bald": [up, up + np.array([0, 0, 0, 0, 1e-9])]})
    results = validate_results(grid)
    groups = rs.identical_methods(results)
    assert groups == {"toy": [["entropy", "margin"]]}  # in method_order: random, then sorted
    paired = rs.paired_vs_baseline(rs.cell_areas(results), groups=groups).set_index("method")
    # Every method wins on 5 of 5 seeds: Wilcoxon p = 0.0625 each. Family of
    # 2 distinct methods (margin = entropy, bald): Holm 2 * 0.0625 = 0.125,
    # then max(0.125, 0.0625) = 0.125. Counted as 3 it would be 0.1875.
    assert paired["wilcoxon_p"].tolist() == pytest.approx([0.0625] * 3)
    assert paired["holm_p"].tolist() == pytest.approx([0.125] * 3)
    # Ranking: bald's mean area is higher by 1e-9 / 2 / 5 (seed 4, last budget), so bald 1,
    # margin = entropy ranked as one: 2, random 3 (not 3 and 4).
    ranking = rs.mean_rank(rs.cell_areas(results), groups=groups, n_boot=50)
    assert ranking["mean_rank"].to_dict() == {"bald": 1.0, "margin": 2.0, "entropy": 2.0,
                                              "random": 3.0}


def test_mean_rank_over_two_datasets_and_its_interval():
    # d1: a > b > random by a wide margin on every seed; d2: b > a > random.
    # Ranks a: 1, 2 -> 1.5; b: 2, 1 -> 1.5; random 3, 3 -> 3. The gaps are far
    # larger than the seed spread, so every resample gives the same ranks.
    d1 = _toy_grid({"random": [BASE], "a": [BASE + 0.2], "b": [BASE + 0.1]}, budgets=(10,),
                   dataset="d1")
    d2 = _toy_grid({"random": [BASE], "a": [BASE + 0.1], "b": [BASE + 0.2]}, budgets=(10,),
                   dataset="d2")
    areas = rs.cell_areas(validate_results(pd.concat([d1, d2])))
    ranking = rs.mean_rank(areas, n_boot=200, random_state=3)
    assert ranking.loc["random", "mean_rank"] == 3.0
    assert ranking.loc["a", "mean_rank"] == ranking.loc["b", "mean_rank"] == 1.5
    assert (ranking["rank_low"] == ranking["mean_rank"]).all()
    assert (ranking["rank_high"] == ranking["mean_rank"]).all()
    # a and b tie for first in every resample: each gets half.
    assert ranking.loc["a", "best_share"] == pytest.approx(0.5)
    assert ranking.loc["random", "best_share"] == 0.0
    pd.testing.assert_frame_equal(ranking, rs.mean_rank(areas, n_boot=200, random_state=3))


def test_paired_by_budget_differences():
    grid = _toy_grid({"random": [BASE, BASE], "a": [BASE + 0.02, BASE - 0.01]})
    diffs = rs.paired_by_budget(validate_results(grid)).set_index("n_labeled")
    assert diffs.loc[10, "mean_diff"] == pytest.approx(0.02)
    assert diffs.loc[20, "mean_diff"] == pytest.approx(-0.01)
    assert (diffs.loc[10, "ci_low"], diffs.loc[10, "ci_high"]) == pytest.approx((0.02, 0.02))


def _report(grid):
    return render_report(validate_results(grid), analysis=None)


def test_answer_section_says_when_five_seeds_cannot_decide():
    up = BASE + np.array([0.01, 0.02, 0.03, 0.04, 0.05])
    md = _report(_toy_grid({"random": [BASE, BASE], "a": [up, up]}))
    answer = md[md.index("## Which method should I use?"):md.index("## toy")]
    assert "**Best mean rank by ACC area: `a`**" in answer
    assert "The evidence is not enough." in answer
    assert "0.0625" in answer
    assert "No method beats `random` after Holm's correction" in answer
    assert "the best bet is `a` (best mean rank), but more seeds are needed" in answer
    assert "Balanced accuracy (mean per-class recall): not in this grid" in answer
    assert "Balanced accuracy: not in this grid." in md[md.index("## toy"):]


def test_answer_says_where_the_best_bet_is_shown_and_where_not():
    # 10 seeds, one budget. d1: a = random + 0.10 on every seed (Wilcoxon
    # 2/1024, Holm over 2 methods 4/1024 < 0.05: shown); b gains 0.1 on five
    # seeds and loses 0.05 on five (mean +0.025, not shown). d2: a gains 0.3 on
    # five seeds and loses 0.1 on five (mean +0.100, not shown), b gains 0.02 on
    # every seed (shown). a ranks first on both, so it is the best bet, shown on
    # d1 and not on d2, where b is; no method is shown on both.
    base = np.array([0.70, 0.72, 0.68, 0.71, 0.69, 0.70, 0.73, 0.67, 0.71, 0.70])
    mixed = base + np.tile([0.3, -0.1], 5)
    grid = pd.concat([
        _toy_grid({"random": [base], "a": [base + 0.10], "b": [base + np.tile([0.1, -0.05], 5)]},
                  budgets=(10,), dataset="d1"),
        _toy_grid({"random": [base], "a": [mixed], "b": [base + 0.02]}, budgets=(10,),
                  dataset="d2")])
    md = _report(grid)
    answer = md[md.index("## Which method should I use?"):md.index("## d1")]
    assert ("**Answer:** no method is shown to beat `random` on every dataset. On these "
            "numbers the best bet is `a` (best mean rank): better than `random` after Holm's "
            "correction on d1; not shown on d2 (mean gain +0.100, Holm p = ") in answer
    assert "; better there: `b`). Significant on some datasets: `a`, `b`." in answer


def test_balanced_accuracy_is_compared_when_present():
    grid = _toy_grid({"random": [BASE, BASE], "a": [BASE + 0.02, BASE + 0.03]})
    grid["balanced_acc"] = grid["acc"] - 0.1
    md = _report(grid)
    assert "**Paired against `random`, balanced ACC area**" in md
    assert "not in this grid" not in md
    assert "Pairwise penalty matrix, balanced ACC" in md
