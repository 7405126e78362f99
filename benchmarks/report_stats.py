"""The benchmark report's statistics: every number the report shows is computed here.

Input is the validated results table of :mod:`benchmarks.report_data` (one
row per cycle of each (method, dataset, seed) cell). Nothing here reads
files, draws or formats text.

Conventions, the same everywhere in the report:

- standard deviations are over seeds with ``ddof=1``;
- a cell's area (:func:`skal.metrics.budget_curve_area`) is computed only
  when the cell reached every budget of its dataset with a finite metric at
  each, so areas, ranks and paired tests compare like with like;
- "paired" means paired by seed: the same seed gives every method the same
  initial set and the same network initialisation;
- methods whose every result row is equal (on a binary task least
  confidence, margin and entropy order the pool identically) are one method
  for the multiplicity correction and the ranking (:func:`identical_methods`).
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import stats

from benchmarks.report_data import OPTIONAL_COLUMNS
from skal.metrics import budget_curve_area

__all__ = [
    "ALPHA",
    "BASELINE",
    "CELL",
    "CONFIDENCE",
    "MIN_PAIRS",
    "N_BOOT",
    "area_metrics",
    "area_summary",
    "bootstrap_mean_ci",
    "budget_table",
    "cell_areas",
    "holm",
    "identical_methods",
    "incomplete_cells",
    "mean_rank",
    "method_order",
    "missing_cells",
    "paired_by_budget",
    "paired_vs_baseline",
    "penalty_matrix",
    "rank_methods",
    "sign_test_p",
    "smallest_sign_p",
    "smallest_wilcoxon_p",
    "timing_summary",
    "wilcoxon_p",
]

#: The method every other is compared with.
BASELINE = "random"
#: Fewest seed pairs for which the paired tests are run.
MIN_PAIRS = 5
#: Significance level of the penalty matrix's tests and of the answer section.
ALPHA = 0.05
#: Bootstrap resamples and the intervals' confidence level.
N_BOOT = 10_000
CONFIDENCE = 0.95
#: The metrics of every row; the optional ones (balanced ACC) only where the grid has them.
METRICS = ("acc", "auc")
OPTIONAL_METRICS = OPTIONAL_COLUMNS
CELL = ["dataset", "method", "seed"]


def metrics_of(results):
    """The per-cycle metrics the results have: ACC, AUC, and balanced ACC when present.

    A column that is absent or entirely empty (a grid written before it
    existed) is left out.
    """
    return list(METRICS) + [m for m in OPTIONAL_METRICS
                            if m in results.columns and results[m].notna().any()]


def area_metrics(results):
    """The metrics compared by area and paired tests: ACC, and balanced ACC when present."""
    return [m for m in metrics_of(results) if m != "auc"]


def method_order(methods):
    """The baseline first, then the other methods in the order given (distinct)."""
    seen = list(dict.fromkeys(methods))
    return ([BASELINE] if BASELINE in seen else []) + [m for m in seen if m != BASELINE]


# --------------------------------------------------------------------------- tests


def sign_test_p(differences):
    """Two-sided sign test (exact binomial on wins vs losses; ties left out).

    Parameters
    ----------
    differences : array-like of shape (n_pairs,), float

    Returns
    -------
    p : float
        1.0 when every difference is 0.
    """
    differences = np.asarray(differences, dtype=float)
    wins, losses = int(np.sum(differences > 0)), int(np.sum(differences < 0))
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(wins, wins + losses, 0.5).pvalue)


def wilcoxon_p(differences):
    """Two-sided Wilcoxon signed-rank p-value (scipy's; exact for small samples).

    Parameters
    ----------
    differences : array-like of shape (n_pairs,), float

    Returns
    -------
    p : float
        1.0 when every difference is 0 (scipy raises there).
    """
    differences = np.asarray(differences, dtype=float)
    if np.all(differences == 0):
        return 1.0
    return float(stats.wilcoxon(differences).pvalue)


def smallest_sign_p(n_pairs):
    """Smallest two-sided sign-test p-value with ``n_pairs`` pairs: ``2 * 0.5 ** n``."""
    return min(1.0, 2 * 0.5 ** int(n_pairs))


def smallest_wilcoxon_p(n_pairs):
    """Smallest two-sided exact Wilcoxon p-value with ``n_pairs`` pairs (all of one sign).

    Only one of the ``2 ** n`` sign patterns gives the largest rank sum, so
    the floor is ``2 / 2 ** n``, the sign test's.
    """
    return smallest_sign_p(n_pairs)


def holm(pvalues):
    """Holm's step-down adjusted p-values (family-wise error control).

    Hand-written: scipy offers only the false-discovery-rate corrections
    (``scipy.stats.false_discovery_control``) and statsmodels, which has
    Holm, is not a dependency. The adjusted value of the ``i``-th smallest of
    ``m`` p-values is ``max_{j <= i} min(1, (m - j + 1) p_(j))``.

    Parameters
    ----------
    pvalues : array-like of shape (m,), float
        NaN entries are left out of the family and stay NaN.

    Returns
    -------
    adjusted : ndarray of shape (m,), float
    """
    p = np.asarray(pvalues, dtype=float)
    out = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    m = len(finite)
    if m == 0:
        return out
    order = finite[np.argsort(p[finite], kind="stable")]
    scaled = (m - np.arange(m)) * p[order]
    out[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return out


def bootstrap_mean_ci(values, n_boot=N_BOOT, confidence=CONFIDENCE, random_state=0):
    """Percentile bootstrap interval of a mean (scipy's ``bootstrap``).

    The percentile method, not BCa: with 5 seeds BCa's acceleration is
    estimated from 5 jackknife values and fails outright when the values
    are all equal (e.g. two methods with identical rows).

    Parameters
    ----------
    values : array-like of shape (n,), float
    n_boot : int
    confidence : float
    random_state : int
        Seeds the resampling: the same seed gives the same interval.

    Returns
    -------
    (low, high) : tuple of float
        NaN for fewer than 2 values.
    """
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return np.nan, np.nan
    if np.all(values == values[0]):
        return float(values[0]), float(values[0])
    result = stats.bootstrap((values,), np.mean, n_resamples=n_boot, confidence_level=confidence,
                             method="percentile", rng=np.random.default_rng(random_state))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


# --------------------------------------------------------------------------- tables


def budget_table(results):
    """Each metric at each budget: mean, std and count over seeds.

    Parameters
    ----------
    results : pandas.DataFrame
        Validated results.

    Returns
    -------
    table : pandas.DataFrame
        One row per (dataset, method, n_labeled) with columns ``<m>_mean``,
        ``<m>_std`` (``ddof=1``; NaN for one seed) and ``<m>_n`` (seeds with
        a finite value) for every metric of :func:`metrics_of`. Every row at a
        budget is used, incomplete cells included.
    """
    grouped = results.groupby(["dataset", "method", "n_labeled"], sort=True)
    table = grouped[metrics_of(results)].agg(["mean", "std", "count"])
    table.columns = [f"{metric}_{stat.replace('count', 'n')}" for metric, stat in table.columns]
    return table.reset_index()


def incomplete_cells(results):
    """Cells with fewer cycles than the most any cell of their dataset has.

    Returns
    -------
    cells : pandas.DataFrame
        Columns ``dataset, method, seed, n_cycles, expected_cycles``.
    """
    counts = results.groupby(CELL, sort=True)["cycle"].nunique().rename("n_cycles").reset_index()
    counts["expected_cycles"] = results.groupby("dataset")["cycle"].nunique().reindex(
        counts["dataset"]).to_numpy()
    return counts[counts["n_cycles"] < counts["expected_cycles"]].reset_index(drop=True)


def missing_cells(results):
    """(method, seed) pairs absent from a dataset where both occur elsewhere in it.

    Returns
    -------
    cells : pandas.DataFrame
        Columns ``dataset, method, seed``.
    """
    rows = []
    for dataset, part in results.groupby("dataset", sort=True):
        present = set(map(tuple, part[["method", "seed"]].drop_duplicates().to_numpy()))
        for method in method_order(part["method"]):
            for seed in sorted(part["seed"].unique()):
                if (method, seed) not in present:
                    rows.append((dataset, method, int(seed)))
    return pd.DataFrame(rows, columns=CELL)


def cell_areas(results):
    """The area under the budget curve (:func:`budget_curve_area`) of every cell and metric.

    Returns
    -------
    areas : pandas.DataFrame
        One row per (dataset, method, seed) with ``n_cycles``, ``complete``
        (bool: the cell has every cycle any cell of its dataset has) and
        ``<m>_area`` for every metric of :func:`metrics_of`. An area is NaN
        when the cell is incomplete, when its labeled count does not
        strictly increase with the cycle, or when a value of that metric is
        NaN, so that only curves over the same budgets are compared.
    """
    metrics = metrics_of(results)
    cycles = {d: set(p["cycle"]) for d, p in results.groupby("dataset")}
    rows = []
    for (dataset, method, seed), cell in results.groupby(CELL, sort=True):
        cell = cell.sort_values("cycle")
        complete = set(cell["cycle"]) == cycles[dataset]
        # A cell whose labeled count does not grow has no budget curve to integrate.
        usable = complete and bool(np.all(np.diff(cell["n_labeled"].to_numpy()) > 0))
        row = {"dataset": dataset, "method": method, "seed": seed,
               "n_cycles": len(cell), "complete": complete}
        for metric in metrics:
            row[f"{metric}_area"] = (budget_curve_area(cell["n_labeled"], cell[metric])
                                     if usable else np.nan)
        rows.append(row)
    return pd.DataFrame(rows, columns=["dataset", "method", "seed", "n_cycles", "complete"]
                        + [f"{m}_area" for m in metrics])


def rank_methods(mean_area):
    """Rank methods within each dataset by mean area, 1 the best, ties averaged.

    Parameters
    ----------
    mean_area : pandas.Series
        Indexed by (dataset, method).

    Returns
    -------
    ranks : pandas.Series
        Same index, float; NaN where the mean area is NaN.
    """
    return mean_area.groupby(level="dataset").rank(ascending=False, method="average")


def area_summary(areas):
    """Mean ± std over seeds of the areas, and each method's rank by mean ACC area.

    Returns
    -------
    summary : pandas.DataFrame
        Indexed by (dataset, method), with ``<m>_area_mean``,
        ``<m>_area_std``, ``<m>_area_n`` (seeds with an area) for every area
        column of ``areas``, and ``rank`` (by ``acc_area_mean``; see
        :func:`rank_methods`).
    """
    columns = [c for c in areas.columns if c.endswith("_area")]
    summary = areas.groupby(["dataset", "method"], sort=True)[columns].agg(
        ["mean", "std", "count"])
    summary.columns = [f"{col}_{stat.replace('count', 'n')}" for col, stat in summary.columns]
    summary["rank"] = rank_methods(summary["acc_area_mean"])
    return summary


def timing_summary(results, by=("method",)):
    """Mean training seconds per cycle and query seconds per query.

    Parameters
    ----------
    results : pandas.DataFrame
        Validated results.
    by : tuple of str, default=("method",)
        Grouping columns, e.g. ``("dataset", "method")``.

    Returns
    -------
    timing : pandas.DataFrame
        One row per group with ``cycles`` (rows), ``train_s`` (mean
        ``train_seconds``), ``query_s`` (mean ``query_seconds`` over rows
        with a query, i.e. ``query_seconds > 0``: the last cycle queries
        nothing and records 0) and ``total_h`` (all seconds summed, in hours).
    """
    df = results.assign(query_only=results["query_seconds"].where(results["query_seconds"] > 0),
                        total=results["train_seconds"].fillna(0)
                        + results["query_seconds"].fillna(0))
    grouped = df.groupby(list(by), sort=False)
    timing = pd.DataFrame({
        "cycles": grouped["cycle"].size(),
        "train_s": grouped["train_seconds"].mean(),
        "query_s": grouped["query_only"].mean(),
        "total_h": grouped["total"].sum() / 3600.0,
    })
    return timing.reset_index()


# --------------------------------------------------------------------------- identical methods


def identical_methods(results):
    """Methods whose every row is equal, digit for digit, within a dataset.

    Two methods are identical on a dataset when they have the same (seed,
    cycle) rows with equal ``n_labeled`` and equal values of every metric
    (ACC, AUC, test loss and balanced ACC where present). On a binary task
    least confidence, margin and entropy order the pool the same way, so
    they pick the same items and train the same networks.

    Returns
    -------
    groups : dict of str to list of list of str
        Per dataset, the groups of two or more identical methods, each in
        :func:`method_order`; datasets without any are absent.
    """
    columns = ["n_labeled"] + [c for c in metrics_of(results) + ["test_loss"]
                               if c in results.columns]
    groups = {}
    for dataset, part in results.groupby("dataset", sort=False):
        signature = {}
        for method in method_order(part["method"]):
            rows = part[part["method"] == method].sort_values(["seed", "cycle"])
            key = (tuple(rows["seed"]), tuple(rows["cycle"]),
                   rows[columns].to_numpy(dtype=float).tobytes())
            signature.setdefault(key, []).append(method)
        found = [g for g in signature.values() if len(g) > 1]
        if found:
            groups[dataset] = found
    return groups


def representatives(methods, groups):
    """``methods`` with each group of identical methods kept once (its first member)."""
    dropped = {m for g in groups for m in g[1:]}
    return [m for m in methods if m not in dropped]


def group_of(method, groups):
    """The group of identical methods ``method`` is in (itself alone if none)."""
    for g in groups:
        if method in g:
            return g
    return [method]


# --------------------------------------------------------------------------- paired tests


def paired_vs_baseline(areas, baseline=BASELINE, metric="acc", min_pairs=MIN_PAIRS,
                       groups=None, n_boot=N_BOOT, random_state=0):
    """Each method's area against the baseline's on the same seeds.

    Parameters
    ----------
    areas : pandas.DataFrame
        From :func:`cell_areas`.
    baseline : str, default="random"
    metric : str, default="acc"
        The area compared (``<metric>_area``).
    min_pairs : int, default=5
        Fewer pairs than this give no p-values.
    groups : dict or None
        :func:`identical_methods`: members of a group after its first are
        left out of the Holm family (they repeat its test) and get its
        adjusted p-value.
    n_boot : int
    random_state : int
        Seeds every bootstrap interval.

    Returns
    -------
    paired : pandas.DataFrame
        One row per (dataset, method other than the baseline) of a dataset
        that has the baseline, with ``n_pairs``, ``wins``, ``ties``,
        ``losses`` (the method's area above, equal to, below the
        baseline's), ``mean_diff``, ``std_diff`` (method − baseline, ddof 1),
        ``ci_low``, ``ci_high`` (bootstrap 95 % of the mean difference),
        ``sign_p``, ``wilcoxon_p`` (NaN below ``min_pairs``), and
        ``holm_p`` (Wilcoxon p adjusted over the dataset's distinct methods).
    """
    column = f"{metric}_area"
    groups = groups or {}
    rows = []
    for dataset, part in areas.groupby("dataset", sort=False):
        wide = part.pivot(index="seed", columns="method", values=column)
        if baseline not in wide.columns:
            continue
        dataset_rows = []
        for method in method_order(part["method"]):
            if method == baseline:
                continue
            pair = wide[[method, baseline]].dropna()
            diff = (pair[method] - pair[baseline]).to_numpy()
            enough = len(diff) >= min_pairs
            low, high = bootstrap_mean_ci(diff, n_boot=n_boot, random_state=random_state)
            dataset_rows.append({
                "dataset": dataset, "method": method, "n_pairs": len(diff),
                "wins": int(np.sum(diff > 0)), "ties": int(np.sum(diff == 0)),
                "losses": int(np.sum(diff < 0)),
                "mean_diff": float(np.mean(diff)) if len(diff) else np.nan,
                "std_diff": float(np.std(diff, ddof=1)) if len(diff) > 1 else np.nan,
                "ci_low": low, "ci_high": high,
                "sign_p": sign_test_p(diff) if enough else np.nan,
                "wilcoxon_p": wilcoxon_p(diff) if enough else np.nan,
            })
        family = representatives([r["method"] for r in dataset_rows],
                                 groups.get(dataset, []))
        in_family = [r for r in dataset_rows if r["method"] in family]
        adjusted = dict(zip([r["method"] for r in in_family],
                            holm([r["wilcoxon_p"] for r in in_family])))
        for r in dataset_rows:
            r["holm_p"] = adjusted[group_of(r["method"], groups.get(dataset, []))[0]]
        rows += dataset_rows
    return pd.DataFrame(rows, columns=["dataset", "method", "n_pairs", "wins", "ties", "losses",
                                       "mean_diff", "std_diff", "ci_low", "ci_high", "sign_p",
                                       "wilcoxon_p", "holm_p"])


def paired_by_budget(results, baseline=BASELINE, metric="acc", n_boot=N_BOOT, random_state=0):
    """Each method's paired difference to the baseline at each budget, with its interval.

    Returns
    -------
    diffs : pandas.DataFrame
        One row per (dataset, method, n_labeled) with ``n_pairs``,
        ``mean_diff`` and ``ci_low``, ``ci_high`` (bootstrap 95 % of the mean).
    """
    rows = []
    for dataset, part in results.groupby("dataset", sort=False):
        if baseline not in set(part["method"]):
            continue
        wide = part.pivot_table(index=["n_labeled", "seed"], columns="method", values=metric,
                                aggfunc="last")
        for method in method_order(part["method"]):
            if method == baseline:
                continue
            for budget, at in wide[[method, baseline]].dropna().groupby(level="n_labeled"):
                diff = (at[method] - at[baseline]).to_numpy()
                low, high = bootstrap_mean_ci(diff, n_boot=n_boot, random_state=random_state)
                rows.append({"dataset": dataset, "method": method, "n_labeled": int(budget),
                             "n_pairs": len(diff), "mean_diff": float(np.mean(diff)),
                             "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows, columns=["dataset", "method", "n_labeled", "n_pairs", "mean_diff",
                                       "ci_low", "ci_high"])


def _pairwise_t_p(values, min_pairs=2):
    """Two-sided paired t-test p-values of every pair of columns (scipy's ``ttest_rel``).

    Parameters
    ----------
    values : ndarray of shape (n_seeds, k), float
        NaN where a method has no value for a seed; each pair uses the seeds
        both have.
    min_pairs : int

    Returns
    -------
    p : ndarray of shape (k, k), float
        Symmetric; NaN on the diagonal and for pairs with fewer than
        ``min_pairs`` seeds in common. Differences all 0 give 1.0;
        differences all equal but not 0 have no variance, scipy's t is
        infinite there and p = 0 is kept (a consistent win).
    """
    k = values.shape[1]
    p = np.full((k, k), np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero variance: t = ±inf or nan
        if len(values) >= min_pairs and not np.isnan(values).any():
            # The common case, one vectorised call for every pair of the point.
            diff = values[:, :, None] - values[:, None, :]  # (n_seeds, k, k)
            p = stats.ttest_rel(values[:, :, None], values[:, None, :], axis=0).pvalue
            constant = np.all(diff == diff[:1], axis=0)
            p = np.where(constant, np.where(diff[0] == 0, 1.0, 0.0), p)
        else:
            for i in range(k):
                for j in range(i + 1, k):
                    both = ~np.isnan(values[:, i]) & ~np.isnan(values[:, j])
                    if both.sum() < min_pairs:
                        continue
                    d = values[both, i] - values[both, j]
                    p[i, j] = p[j, i] = (
                        (1.0 if d[0] == 0 else 0.0) if np.all(d == d[0])
                        else stats.ttest_rel(values[both, i], values[both, j]).pvalue)
    np.fill_diagonal(p, np.nan)
    return p


def penalty_matrix(results, metric="acc", alpha=ALPHA, min_pairs=2):
    """Ash et al. (2020, BADGE)'s pairwise penalty matrix over (dataset, budget) points.

    At every (dataset, budget) point, each pair of methods is compared by a
    two-sided paired t-test over the seeds both have there (as Ash et al.
    do); row ``i`` "beats" column ``j`` at that point when ``p < alpha`` and
    ``i``'s mean is higher. The t-test, not Wilcoxon: with 5 seeds no
    Wilcoxon p-value can fall below 0.0625, so a Wilcoxon matrix would be all
    zeros whatever the methods do. Uncorrected, as in the paper.

    Parameters
    ----------
    results : pandas.DataFrame
        Validated results.
    metric : str, default="acc"
    alpha : float, default=0.05
    min_pairs : int, default=2
        Points where a pair has fewer seeds in common are not counted.

    Returns
    -------
    share : pandas.DataFrame
        Methods × methods (:func:`method_order`): the share of the points
        (both methods present, at least ``min_pairs`` seeds) where the row
        method is significantly better than the column method. The diagonal
        is NaN.
    n_points : pandas.DataFrame
        Methods × methods, int: the number of points each share is over.
    """
    methods = method_order(results["method"])
    k = len(methods)
    wins, points = np.zeros((k, k)), np.zeros((k, k), dtype=int)
    for _, at in results.groupby(["dataset", "n_labeled"], sort=False):
        wide = at.pivot_table(index="seed", columns="method", values=metric,
                              aggfunc="last").reindex(columns=methods)
        values = wide.to_numpy(dtype=float)  # (n_seeds, k), NaN where absent
        p = _pairwise_t_p(values, min_pairs)  # (k, k), NaN where not compared
        compared = ~np.isnan(p)
        points += compared
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a pair with no common seed
            # Mean of row − column over the seeds both have.
            mean_diff = np.nanmean(values[:, :, None] - values[:, None, :], axis=0)
        wins += compared & (p < alpha) & (mean_diff > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        share = np.where(points > 0, wins / np.maximum(points, 1), np.nan)
    np.fill_diagonal(share, np.nan)
    return (pd.DataFrame(share, index=methods, columns=methods),
            pd.DataFrame(points, index=methods, columns=methods))


# --------------------------------------------------------------------------- ranking


def _ranks(means, groups, methods):
    """Ranks (1 best, ties averaged) of mean areas, each group of identical methods once.

    Parameters
    ----------
    means : ndarray of shape (n_draws, len(methods)), float
    groups : list of list of str
    methods : list of str

    Returns
    -------
    ranks : ndarray of shape (n_draws, len(methods)), float
        A group's members all get the group's rank.
    """
    kept = representatives(methods, groups)
    column = {m: i for i, m in enumerate(methods)}
    ranks = stats.rankdata(-means[:, [column[m] for m in kept]], method="average", axis=1)
    position = {m: i for i, m in enumerate(kept)}
    return ranks[:, [position[group_of(m, groups)[0]] for m in methods]]


def mean_rank(areas, metric="acc", groups=None, n_boot=2_000, confidence=CONFIDENCE,
              random_state=0):
    """Overall ranking: each method's mean over datasets of its rank by mean area.

    The interval comes from a bootstrap over seeds: each dataset's seeds are
    resampled with replacement (the same draw for every method, which keeps
    the pairing), the per-dataset mean areas, ranks and the mean rank
    recomputed. Hand-written rather than ``scipy.stats.bootstrap``: the
    statistic is a ranking of a whole resampled table, one seed draw per
    dataset, not a function of one sample.

    Parameters
    ----------
    areas : pandas.DataFrame
        From :func:`cell_areas`; on each dataset the seeds where every
        method has an area are used.
    metric : str, default="acc"
    groups : dict or None
        :func:`identical_methods`.
    n_boot : int
    confidence : float
    random_state : int
        Seeds the resampling: the same seed gives the same intervals.

    Returns
    -------
    ranking : pandas.DataFrame
        Indexed by method, sorted by ``mean_rank``, with ``mean_rank``,
        ``rank_low``, ``rank_high`` (the interval), ``n_datasets`` and
        ``best_share`` (the share of resamples in which the method has the
        best mean rank, ties shared).
    """
    groups = groups or {}
    tables = {d: p.pivot(index="seed", columns="method", values=f"{metric}_area").dropna()
              for d, p in areas.groupby("dataset", sort=False)}
    tables = {d: t for d, t in tables.items() if len(t)}
    methods = method_order(m for t in tables.values() for m in t.columns)
    rng = np.random.default_rng(random_state)
    point = np.full((len(tables), len(methods)), np.nan)
    boot = np.full((len(tables), n_boot, len(methods)), np.nan)
    for d, (dataset, table) in enumerate(tables.items()):
        present = list(table.columns)
        where = [methods.index(m) for m in present]
        values = table.to_numpy(dtype=float)  # (n_seeds, n_present)
        point[d, where] = _ranks(values.mean(axis=0, keepdims=True),
                                 groups.get(dataset, []), present)[0]
        draws = rng.integers(0, len(values), size=(n_boot, len(values)))
        boot[d][:, where] = _ranks(values[draws].mean(axis=1), groups.get(dataset, []),
                                   present)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a method absent from every dataset
        point_mean, boot_mean = np.nanmean(point, axis=0), np.nanmean(boot, axis=0)
    top = np.isclose(boot_mean, np.nanmin(boot_mean, axis=1, keepdims=True))
    tail = (1 - confidence) / 2
    out = pd.DataFrame({
        "mean_rank": point_mean,
        "rank_low": np.quantile(boot_mean, tail, axis=0),
        "rank_high": np.quantile(boot_mean, 1 - tail, axis=0),
        "n_datasets": (~np.isnan(point)).sum(axis=0),
        "best_share": (top / top.sum(axis=1, keepdims=True)).mean(axis=0),
    }, index=pd.Index(methods, name="method"))
    return out.sort_values("mean_rank", kind="stable")


# --------------------------------------------------------------------------- everything at once


def analyze(results, n_boot=N_BOOT, random_state=0):
    """Every table the report shows, computed once (figures and markdown read these).

    Parameters
    ----------
    results : pandas.DataFrame
        Validated results.
    n_boot : int
        Resamples of each bootstrap interval (the ranking uses a fifth).
    random_state : int
        Seeds every bootstrap: the same results give the same report.

    Returns
    -------
    analysis : dict
        ``methods`` (:func:`method_order`), ``datasets`` (in file order),
        ``metrics`` (:func:`metrics_of`), ``area_metrics``
        (:func:`area_metrics`), ``identical`` (:func:`identical_methods`),
        ``table`` (:func:`budget_table`), ``areas`` (:func:`cell_areas`),
        ``summary`` (:func:`area_summary`), ``incomplete``, ``missing``, and
        per area metric ``m``: ``paired[m]`` (:func:`paired_vs_baseline`),
        ``by_budget[m]`` (:func:`paired_by_budget`), ``penalty[m]`` (the
        pair of :func:`penalty_matrix`) and ``ranking[m]`` (:func:`mean_rank`).
    """
    identical = identical_methods(results)
    areas = cell_areas(results)
    metrics = area_metrics(results)
    return {
        "methods": method_order(results["method"]),
        "datasets": list(dict.fromkeys(results["dataset"])),
        "metrics": metrics_of(results),
        "area_metrics": metrics,
        "identical": identical,
        "table": budget_table(results),
        "areas": areas,
        "summary": area_summary(areas),
        "incomplete": incomplete_cells(results),
        "missing": missing_cells(results),
        "paired": {m: paired_vs_baseline(areas, metric=m, groups=identical, n_boot=n_boot,
                                         random_state=random_state) for m in metrics},
        "by_budget": {m: paired_by_budget(results, metric=m, n_boot=max(200, n_boot // 5),
                                          random_state=random_state) for m in metrics},
        "penalty": {m: penalty_matrix(results, metric=m) for m in metrics},
        "ranking": {m: mean_rank(areas, metric=m, groups=identical,
                                 n_boot=max(200, n_boot // 5), random_state=random_state)
                    for m in metrics},
    }
