"""Plots and a markdown report from the benchmark grid's tidy results CSV.

The input is the CSV that ``benchmarks/run_all.py`` writes: one row per cycle
of each (method, dataset, seed) cell, with the columns
:data:`skal.results.RESULT_COLUMNS` (files written before ``test_loss`` and
``query_cpu_seconds`` existed are read too). For each dataset the report gives

- ``curves_<dataset>.png``: ACC and AUC against the labeled count, mean with
  a band of one standard deviation over seeds, one line per method
  (``random`` dashed), the full-data ceiling as a dotted line where known;
- in ``report.md``: ACC and AUC at each budget as mean ± std over seeds,
  the normalised area under the budget curve (ACC and AUC) with the methods'
  ranks, the MedMNIST v2 full-data ResNet-18 ceiling, a paired comparison of
  every method with ``random`` over seeds, incomplete and missing cells, and
  the wall time per cycle;

and, for the whole grid, the failed cells and the wall time per method.

Conventions: standard deviations are over seeds with ``ddof=1`` (one seed
gives no std); a cell's area is computed only when it reached every budget
of its dataset with a finite metric at each, so areas, ranks and paired
tests compare like with like, while the per-budget tables use every row.
A rerun that wrote the same (method, dataset, seed, cycle) twice keeps the
row written last.

Usage::

    python benchmarks/report.py results/results.csv --out results/report
    python benchmarks/report.py results/results.csv --study-table   # the study's table
    python benchmarks/report.py results.csv --out report \
        --command "python benchmarks/run_all.py ..."

From Python (as ``run_all.py`` does at the end)::

    paths = write_report("results.csv", "report", command=cmd, failures=failures)
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from scipy import stats

# The grid's curves are scored exactly as skal's GridSearchCV scorer scores them.
from skal.metrics import budget_curve_area
from skal.results import FAILURE_COLUMNS, LATER_COLUMNS, NUMBER_COLUMNS, RESULT_COLUMNS

__all__ = [
    "BASELINE",
    "FULL_DATA_CEILINGS",
    "KEY_COLUMNS",
    "REQUIRED_COLUMNS",
    "area_summary",
    "budget_curve_area",
    "budget_table",
    "cell_areas",
    "format_mean_std",
    "incomplete_cells",
    "load_failures",
    "load_results",
    "main",
    "method_order",
    "missing_cells",
    "paired_vs_baseline",
    "plot_curves",
    "rank_methods",
    "render_report",
    "smallest_sign_p",
    "study_table",
    "timing_summary",
    "validate_results",
    "write_report",
]

#: Columns the results CSV must have: skal's one result schema, less the
#: columns added later (a file without them reads as NaN there).
REQUIRED_COLUMNS = tuple(c for c in RESULT_COLUMNS if c not in LATER_COLUMNS)
#: One row per value of these; a duplicate is a rerun, and the last one is kept.
KEY_COLUMNS = ("method", "dataset", "seed", "cycle")
#: The method every other is compared with.
BASELINE = "random"
#: Fewest seed pairs for which the paired tests are run.
MIN_PAIRS = 5

#: MedMNIST v2 paper, ResNet-18 at 28×28 trained on the full training split:
#: test AUC and ACC. The paper gives none for chestmnist, organcmnist and
#: organsmnist here (the report writes "n/a" for those).
FULL_DATA_CEILINGS = {
    "pathmnist": {"auc": 0.983, "acc": 0.907},
    "dermamnist": {"auc": 0.917, "acc": 0.735},
    "octmnist": {"auc": 0.943, "acc": 0.743},
    "pneumoniamnist": {"auc": 0.944, "acc": 0.854},
    "retinamnist": {"auc": 0.717, "acc": 0.524},
    "breastmnist": {"auc": 0.901, "acc": 0.863},
    "bloodmnist": {"auc": 0.998, "acc": 0.958},
    "tissuemnist": {"auc": 0.930, "acc": 0.676},
    "organamnist": {"auc": 0.997, "acc": 0.935},
}

METRICS = ("acc", "auc")
_CELL = ["dataset", "method", "seed"]


# --------------------------------------------------------------------------- loading


def validate_results(df):
    """Check the columns, coerce the types and drop reruns (keeping the last).

    Parameters
    ----------
    df : pandas.DataFrame
        Rows as read from the results CSV, in file order.

    Returns
    -------
    clean : pandas.DataFrame
        The rows with ``method`` and ``dataset`` as str, ``seed``, ``cycle``
        and ``n_labeled`` as int64 and the other columns as float64 (a value
        that is not a number, e.g. an empty ``acc`` after a failed
        evaluation, becomes NaN), sorted by dataset, method, seed and cycle.
        ``clean.attrs["duplicates_dropped"]`` is the number of rows that an
        identical key written later replaced.

    Raises
    ------
    ValueError
        When a required column is missing (the message names every missing
        one), when there are no rows, or when a key column has empty values.
    """
    if "seed" not in df.columns and "trial" in df.columns:
        df = df.rename(columns={"trial": "seed"})  # skal run's files before the `seed` name
    missing = [c for c in REQUIRED_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(
            f"results are missing required column(s) {', '.join(missing)}; "
            f"expected columns: {', '.join(REQUIRED_COLUMNS)}."
        )
    if len(df) == 0:
        raise ValueError("results have no rows: nothing to report.")
    df = df.reindex(columns=list(RESULT_COLUMNS))  # LATER_COLUMNS absent: NaN
    for column in ("method", "dataset"):
        if df[column].isna().any():
            raise ValueError(f"column {column!r} has empty values.")
        df[column] = df[column].astype(str).str.strip()
    for column in ("seed", "cycle", "n_labeled"):
        values = pd.to_numeric(df[column], errors="coerce")
        if values.isna().any():
            raise ValueError(f"column {column!r} has empty or non-numeric values.")
        df[column] = values.astype("int64")
    for column in NUMBER_COLUMNS:
        df[column] = pd.to_numeric(df[column], errors="coerce").astype("float64")
    n_before = len(df)
    df = df.drop_duplicates(subset=list(KEY_COLUMNS), keep="last")
    df = df.sort_values(["dataset", "method", "seed", "cycle"], kind="stable")
    df = df.reset_index(drop=True)
    df.attrs["duplicates_dropped"] = n_before - len(df)
    return df


def load_results(csv_path):
    """Read the results CSV and validate it (see :func:`validate_results`).

    Parameters
    ----------
    csv_path : path-like

    Returns
    -------
    results : pandas.DataFrame

    Raises
    ------
    ValueError
        For an empty file, missing columns or no rows.
    """
    try:
        df = pd.read_csv(csv_path)
    except pd.errors.EmptyDataError:
        raise ValueError(
            f"results file {csv_path} is empty; expected a header with the columns "
            f"{', '.join(REQUIRED_COLUMNS)}."
        ) from None
    return validate_results(df)


def load_failures(failures=None, csv_path=None):
    """Failed cells from ``failures`` and from a ``failures.csv`` next to the results.

    Parameters
    ----------
    failures : list of dict or None
        Each with keys ``method``, ``dataset``, ``seed`` and ``error`` (any
        missing key is shown as empty).
    csv_path : path-like or None
        The results CSV; a ``failures.csv`` in its folder is read too.

    Returns
    -------
    failures : pandas.DataFrame
        Columns ``method, dataset, seed, error`` (all str), one row per
        distinct failure, in the order given (the list first).
    """
    frames = []
    if failures:
        frames.append(pd.DataFrame(list(failures)))
    if csv_path is not None:
        path = Path(csv_path).with_name("failures.csv")
        if path.is_file():
            try:
                frames.append(pd.read_csv(path, dtype=str, keep_default_na=False))
            except pd.errors.EmptyDataError:
                pass
    if not frames:
        return pd.DataFrame(columns=list(FAILURE_COLUMNS), dtype=str)
    out = pd.concat(frames, ignore_index=True)
    for column in FAILURE_COLUMNS:
        if column not in out.columns:
            out[column] = ""
    out = out.loc[:, list(FAILURE_COLUMNS)].fillna("").astype(str)
    return out.drop_duplicates(ignore_index=True)


def method_order(methods):
    """The baseline first, then the other methods in the order given.

    Parameters
    ----------
    methods : iterable of str

    Returns
    -------
    order : list of str
        Distinct methods.
    """
    seen = list(dict.fromkeys(methods))
    return ([BASELINE] if BASELINE in seen else []) + [m for m in seen if m != BASELINE]


# --------------------------------------------------------------------------- statistics


def budget_table(results):
    """ACC and AUC at each budget: mean, std and count over seeds.

    Parameters
    ----------
    results : pandas.DataFrame
        Validated results (:func:`validate_results`).

    Returns
    -------
    table : pandas.DataFrame
        One row per (dataset, method, n_labeled) with columns ``acc_mean``,
        ``acc_std`` (``ddof=1``; NaN for one seed), ``acc_n`` (seeds with a
        finite value) and the same for ``auc``. Every row at a budget is
        used, incomplete cells included.
    """
    grouped = results.groupby(["dataset", "method", "n_labeled"], sort=True)
    table = grouped[list(METRICS)].agg(["mean", "std", "count"])
    table.columns = [f"{metric}_{stat.replace('count', 'n')}" for metric, stat in table.columns]
    return table.reset_index()


def incomplete_cells(results):
    """Cells with fewer cycles than the most any cell of their dataset has.

    Parameters
    ----------
    results : pandas.DataFrame
        Validated results.

    Returns
    -------
    cells : pandas.DataFrame
        Columns ``dataset, method, seed, n_cycles, expected_cycles``.
    """
    counts = results.groupby(_CELL, sort=True)["cycle"].nunique().rename("n_cycles").reset_index()
    counts["expected_cycles"] = results.groupby("dataset")["cycle"].nunique().reindex(
        counts["dataset"]).to_numpy()
    return counts[counts["n_cycles"] < counts["expected_cycles"]].reset_index(drop=True)


def missing_cells(results):
    """(method, seed) pairs absent from a dataset where both occur elsewhere in it.

    Parameters
    ----------
    results : pandas.DataFrame
        Validated results.

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
    return pd.DataFrame(rows, columns=_CELL)


def cell_areas(results):
    """ACC and AUC areas (:func:`budget_curve_area`) of every cell.

    Parameters
    ----------
    results : pandas.DataFrame
        Validated results.

    Returns
    -------
    areas : pandas.DataFrame
        One row per (dataset, method, seed) with ``n_cycles``, ``complete``
        (bool: the cell has every cycle any cell of its dataset has) and
        ``acc_area``, ``auc_area``. An area is NaN when the cell is
        incomplete, when its labeled count does not strictly increase with
        the cycle, or when a value of that metric is NaN, so that only
        curves over the same budgets are compared.
    """
    cycles = {d: set(p["cycle"]) for d, p in results.groupby("dataset")}
    rows = []
    for (dataset, method, seed), cell in results.groupby(_CELL, sort=True):
        cell = cell.sort_values("cycle")
        complete = set(cell["cycle"]) == cycles[dataset]
        # A cell whose labeled count does not grow has no budget curve to integrate.
        usable = complete and bool(np.all(np.diff(cell["n_labeled"].to_numpy()) > 0))
        row = {"dataset": dataset, "method": method, "seed": seed,
               "n_cycles": len(cell), "complete": complete}
        for metric in METRICS:
            row[f"{metric}_area"] = (budget_curve_area(cell["n_labeled"], cell[metric])
                                     if usable else np.nan)
        rows.append(row)
    return pd.DataFrame(rows, columns=["dataset", "method", "seed", "n_cycles", "complete",
                                       "acc_area", "auc_area"])


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

    Parameters
    ----------
    areas : pandas.DataFrame
        From :func:`cell_areas`.

    Returns
    -------
    summary : pandas.DataFrame
        Indexed by (dataset, method), with ``acc_area_mean``,
        ``acc_area_std``, ``acc_area_n`` (seeds with an area), the same for
        ``auc_area``, and ``rank`` (by ``acc_area_mean``; see
        :func:`rank_methods`).
    """
    summary = areas.groupby(["dataset", "method"], sort=True)[["acc_area", "auc_area"]].agg(
        ["mean", "std", "count"])
    summary.columns = [f"{col}_{stat.replace('count', 'n')}" for col, stat in summary.columns]
    summary["rank"] = rank_methods(summary["acc_area_mean"])
    return summary


def _sign_test(differences):
    """Two-sided sign test (exact binomial on wins vs losses; ties left out)."""
    wins, losses = int(np.sum(differences > 0)), int(np.sum(differences < 0))
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(wins, wins + losses, 0.5).pvalue)


def _wilcoxon(differences):
    """Two-sided Wilcoxon signed-rank p-value; 1.0 when every difference is 0."""
    if np.all(differences == 0):
        return 1.0
    return float(stats.wilcoxon(differences).pvalue)


def paired_vs_baseline(areas, baseline=BASELINE, metric="acc", min_pairs=MIN_PAIRS):
    """Compare each method's area with the baseline's on the same seeds.

    Parameters
    ----------
    areas : pandas.DataFrame
        From :func:`cell_areas`.
    baseline : str, default="random"
    metric : {"acc", "auc"}, default="acc"
    min_pairs : int, default=5
        Fewer pairs than this give no p-values.

    Returns
    -------
    paired : pandas.DataFrame
        One row per (dataset, method other than the baseline) of a dataset
        that has the baseline, with ``n_pairs`` (seeds where both have an
        area), ``wins``, ``ties``, ``losses`` (the method's area above, equal
        to, below the baseline's), ``mean_diff`` and ``std_diff`` (method
        minus baseline), ``sign_p`` (two-sided sign test,
        :func:`scipy.stats.binomtest`) and ``wilcoxon_p`` (two-sided,
        :func:`scipy.stats.wilcoxon`); the p-values are NaN below
        ``min_pairs`` pairs.
    """
    column = f"{metric}_area"
    rows = []
    for dataset, part in areas.groupby("dataset", sort=True):
        wide = part.pivot(index="seed", columns="method", values=column)
        if baseline not in wide.columns:
            continue
        for method in method_order(part["method"]):
            if method == baseline:
                continue
            pair = wide[[method, baseline]].dropna()
            diff = (pair[method] - pair[baseline]).to_numpy()
            enough = len(diff) >= min_pairs
            rows.append({
                "dataset": dataset, "method": method, "n_pairs": len(diff),
                "wins": int(np.sum(diff > 0)), "ties": int(np.sum(diff == 0)),
                "losses": int(np.sum(diff < 0)),
                "mean_diff": float(np.mean(diff)) if len(diff) else np.nan,
                "std_diff": float(np.std(diff, ddof=1)) if len(diff) > 1 else np.nan,
                "sign_p": _sign_test(diff) if enough else np.nan,
                "wilcoxon_p": _wilcoxon(diff) if enough else np.nan,
            })
    return pd.DataFrame(rows, columns=["dataset", "method", "n_pairs", "wins", "ties", "losses",
                                       "mean_diff", "std_diff", "sign_p", "wilcoxon_p"])


def smallest_sign_p(n_pairs):
    """The smallest two-sided sign-test p-value ``n_pairs`` pairs can give (all agree).

    Parameters
    ----------
    n_pairs : int

    Returns
    -------
    p : float
        ``2 * 0.5 ** n_pairs`` (capped at 1), from :func:`scipy.stats.binomtest`.
    """
    return float(stats.binomtest(n_pairs, n_pairs, 0.5).pvalue) if n_pairs else 1.0


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


# --------------------------------------------------------------------------- plotting


def plot_curves(table, dataset, path, n_seeds, methods=None, ceiling=None):
    """Write the learning-curve figure of one dataset (ACC and AUC panels).

    Parameters
    ----------
    table : pandas.DataFrame
        From :func:`budget_table` (rows of other datasets are ignored).
    dataset : str
    path : path-like
        The PNG to write.
    n_seeds : int
        Shown in the title.
    methods : list of str or None
        Methods in plotting order; the i-th gets colour ``Ci``, so passing
        the same list for every dataset keeps a method's colour. Methods
        without rows in ``dataset`` are skipped. Default: those of
        ``dataset`` in :func:`method_order`.
    ceiling : dict or None
        ``{"acc": float, "auc": float}``, drawn as dotted horizontal lines.

    Returns
    -------
    path : pathlib.Path
    """
    part = table[table["dataset"] == dataset]
    if methods is None:
        methods = method_order(part["method"])
    colors = {m: f"C{i % 10}" for i, m in enumerate(methods)}
    fig = Figure(figsize=(11, 4.2), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    for ax, metric in zip(axes, METRICS):
        for method in methods:
            curve = part[part["method"] == method].sort_values("n_labeled")
            if curve.empty:
                continue
            x = curve["n_labeled"].to_numpy(dtype=float)
            mean = curve[f"{metric}_mean"].to_numpy(dtype=float)
            std = curve[f"{metric}_std"].fillna(0.0).to_numpy(dtype=float)
            style = "--" if method == BASELINE else "-"
            ax.plot(x, mean, style, marker="o", markersize=3, color=colors[method], label=method)
            ax.fill_between(x, mean - std, mean + std, color=colors[method], alpha=0.15,
                            linewidth=0)
        if ceiling is not None:
            ax.axhline(ceiling[metric], color="0.4", linestyle=":", linewidth=1,
                       label="full-data ResNet-18")
        ax.set_xlabel("labeled images")
        ax.set_ylabel(metric.upper())
        ax.set_title(metric.upper())
        ax.grid(alpha=0.3)
    axes[1].legend(loc="lower right", fontsize="small")
    seeds = "seed" if n_seeds == 1 else "seeds"
    fig.suptitle(f"{dataset}: mean ± 1 std over {n_seeds} {seeds}")
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


# --------------------------------------------------------------------------- markdown


def format_mean_std(mean, std, n=None, n_expected=None, digits=3):
    """``"0.812 ± 0.014"``; ``"–"`` for no value; ``" (n=k)"`` when k < n_expected.

    Parameters
    ----------
    mean, std : float
        ``std`` NaN (one seed) prints the mean alone.
    n, n_expected : int or None
        Number of values behind the mean, and the number there should be.
    digits : int, default=3

    Returns
    -------
    text : str
    """
    if mean is None or not np.isfinite(mean):
        return "–"
    text = f"{mean:.{digits}f}"
    if std is not None and np.isfinite(std):
        text += f" ± {std:.{digits}f}"
    if n is not None and n_expected is not None and n < n_expected:
        text += f" (n={int(n)})"
    return text


def _format_p(p):
    return "–" if not np.isfinite(p) else f"{p:.3g}"


def _format_diff(mean, std):
    if not np.isfinite(mean):
        return "–"
    return f"{mean:+.3f}" + (f" ± {std:.3f}" if np.isfinite(std) else "")


def _format_rank(rank):
    if not np.isfinite(rank):
        return "–"
    return f"{rank:g}"


def _table(header, rows):
    """A GitHub-markdown table; cells are str."""
    def clean(cell):
        return str(cell).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(map(clean, header)) + " |",
             "| " + " | ".join("---" for _ in header) + " |"]
    lines += ["| " + " | ".join(map(clean, row)) + " |" for row in rows]
    return "\n".join(lines)


def _ceiling(dataset):
    return FULL_DATA_CEILINGS.get(str(dataset).lower())


def _budget_markdown(table, dataset, methods, n_seeds):
    part = table[table["dataset"] == dataset]
    budgets = sorted(part["n_labeled"].unique())
    out = []
    for metric in METRICS:
        rows = []
        for method in methods:
            cells = part[part["method"] == method].set_index("n_labeled")
            row = [method]
            for b in budgets:
                if b in cells.index:
                    r = cells.loc[b]
                    row.append(format_mean_std(r[f"{metric}_mean"], r[f"{metric}_std"],
                                               r[f"{metric}_n"], n_seeds))
                else:
                    row.append("–")
            rows.append(row)
        out.append(f"**{metric.upper()} at each budget** "
                   "(labeled images; mean ± std over seeds)\n")
        out.append(_table(["method"] + [str(b) for b in budgets], rows))
        out.append("")
    return out


def study_table(results, digits=4):
    """The study's summary: per dataset, ACC and AUC at each cycle, one row per method.

    The layout of the study's tables (and of its summary script, which prints
    the mean ACC over trials per cycle): a method per row, a cycle per column
    (headed ``cycle (labeled images)``), each cell ``mean ± std`` over the
    trials (``ddof=1``, as everywhere in this report), ``(n=k)`` where fewer
    trials than the dataset's reached that cycle.

    Parameters
    ----------
    results : pandas.DataFrame
        Validated results (:func:`validate_results`).
    digits : int, default=4

    Returns
    -------
    text : str
        Markdown: a heading and two tables (ACC, AUC) per dataset.
    """
    table = budget_table(results)
    cycles = results.groupby(["dataset", "n_labeled"])["cycle"].max()
    out = []
    for dataset in sorted(results["dataset"].unique()):
        part = table[table["dataset"] == dataset]
        methods = method_order(results.loc[results["dataset"] == dataset, "method"])
        n_trials = results[results["dataset"] == dataset].groupby("method")["seed"].nunique().max()
        budgets = sorted(part["n_labeled"].unique())
        out.append(f"## {dataset} (mean ± std over {n_trials} trial(s))\n")
        for metric in METRICS:
            rows = []
            for method in methods:
                cells = part[part["method"] == method].set_index("n_labeled")
                rows.append([method] + [
                    format_mean_std(cells.loc[b, f"{metric}_mean"], cells.loc[b, f"{metric}_std"],
                                    cells.loc[b, f"{metric}_n"], n_trials, digits=digits)
                    if b in cells.index else "–" for b in budgets])
            out.append(f"**{metric.upper()}**\n")
            out.append(_table(["method"] + [f"{cycles[(dataset, b)]} ({b})" for b in budgets],
                              rows))
            out.append("")
    return "\n".join(out)


def _area_markdown(summary, dataset, methods, n_seeds):
    ceiling = _ceiling(dataset)
    rows = []
    for method in methods:
        if (dataset, method) not in summary.index:
            continue
        s = summary.loc[(dataset, method)]
        rows.append([method] + [
            format_mean_std(s[f"{m}_area_mean"], s[f"{m}_area_std"], s[f"{m}_area_n"], n_seeds)
            for m in METRICS] + [_format_rank(s["rank"])])
    if ceiling is None:
        rows.append(["*full-data ResNet-18 (MedMNIST v2)*", "n/a", "n/a", ""])
    else:
        rows.append(["*full-data ResNet-18 (MedMNIST v2)*", f"ACC {ceiling['acc']:.3f}",
                     f"AUC {ceiling['auc']:.3f}", ""])
    return [
        "**Area under the budget curve** (trapezoid area of the metric against the labeled "
        "count, divided by the labeled-count range: the curve's mean height; per seed, then "
        "mean ± std over seeds; rank by mean ACC area, 1 best, ties averaged). The last row is "
        "the published full-data ceiling, test ACC and AUC of a ResNet-18 trained on the whole "
        "training split.\n",
        _table(["method", "ACC area", "AUC area", "rank"], rows),
        "",
    ]


def _paired_markdown(paired, dataset, has_baseline):
    if not has_baseline:
        return [f"No `{BASELINE}` cells for this dataset: no paired comparison.", ""]
    part = paired[paired["dataset"] == dataset]
    if part.empty:
        return []
    rows = []
    for r in part.itertuples():
        if r.n_pairs >= MIN_PAIRS:
            sign_p, wilcoxon_p = _format_p(r.sign_p), _format_p(r.wilcoxon_p)
        else:
            sign_p = wilcoxon_p = f"too few seeds ({r.n_pairs} < {MIN_PAIRS})"
        rows.append([r.method, str(r.n_pairs), f"{r.wins} / {r.ties} / {r.losses}",
                     _format_diff(r.mean_diff, r.std_diff),
                     sign_p, wilcoxon_p])
    return [
        f"**Paired against `{BASELINE}`** (ACC area, paired by seed; wins / ties / losses "
        f"count the seeds on which the method's area is above / equal to / below "
        f"`{BASELINE}`'s; difference is method − {BASELINE}, mean ± std over pairs; "
        "two-sided p-values)\n",
        _table(["method", "pairs", "wins / ties / losses", "ACC-area difference",
                "sign test p", "Wilcoxon p"], rows),
        "",
    ]


def _timing_markdown(timing, methods=None):
    if methods is not None:
        timing = timing.set_index("method").reindex(
            [m for m in methods if m in set(timing["method"])]).reset_index()
    rows = [[r.method, str(r.cycles), f"{r.train_s:.2f}" if np.isfinite(r.train_s) else "–",
             f"{r.query_s:.2f}" if np.isfinite(r.query_s) else "–", f"{r.total_h:.2f}"]
            for r in timing.itertuples()]
    return _table(["method", "cycles", "train s / cycle", "query s / query", "total h"], rows)


def _cell_list(cells, with_cycles=False):
    parts = []
    for r in cells.itertuples():
        text = f"{r.method} seed {r.seed}"
        if with_cycles:
            text += f" ({r.n_cycles} of {r.expected_cycles} cycles)"
        parts.append(text)
    return ", ".join(parts)


def _dataset_section(results, dataset, table, areas, summary, paired, incomplete, missing, methods):
    part = results[results["dataset"] == dataset]
    methods = [m for m in methods if m in set(part["method"])]
    seeds = sorted(part["seed"].unique())
    n_seeds = len(seeds)
    budgets = sorted(part["n_labeled"].unique())
    ceiling = _ceiling(dataset)
    out = [f"## {dataset}", ""]
    out.append(f"{n_seeds} seed(s) ({', '.join(map(str, seeds))}), {len(budgets)} budget(s) "
               f"from {budgets[0]} to {budgets[-1]} labeled images, methods: "
               f"{', '.join(methods)}.")
    if ceiling is None:
        out.append("Full-data ceiling (MedMNIST v2 ResNet-18): n/a (none given).")
    else:
        out.append(f"Full-data ceiling (MedMNIST v2 ResNet-18, test): ACC {ceiling['acc']:.3f}, "
                   f"AUC {ceiling['auc']:.3f}.")
    out.append("")
    inc = incomplete[incomplete["dataset"] == dataset]
    if len(inc):
        out.append(f"**Incomplete cells** (fewer cycles than the dataset's "
                   f"{int(inc['expected_cycles'].iloc[0])}): {_cell_list(inc, True)}. They count "
                   "at the budgets they reached and are left out of the areas, ranks and paired "
                   "tests.")
        out.append("")
    mis = missing[missing["dataset"] == dataset]
    if len(mis):
        out.append(f"**Missing cells** (no rows at all): {_cell_list(mis)}.")
        out.append("")
    nan_cells = areas[(areas["dataset"] == dataset) & areas["complete"]
                      & areas[["acc_area", "auc_area"]].isna().any(axis=1)]
    if len(nan_cells):
        out.append(f"**Failed evaluations** (NaN ACC or AUC in a complete cell; that area is "
                   f"left out): {_cell_list(nan_cells)}.")
        out.append("")
    out.append(f"![learning curves of {dataset}](curves_{dataset}.png)")
    out.append("")
    out += _budget_markdown(table, dataset, methods, n_seeds)
    out += _area_markdown(summary, dataset, methods, n_seeds)
    out += _paired_markdown(paired, dataset, BASELINE in set(part["method"]))
    out.append("**Wall time**\n")
    out.append(_timing_markdown(timing_summary(part), methods))
    out.append("")
    return out


def _pvalue_note(paired):
    counts = sorted({int(n) for n in paired["n_pairs"] if n >= MIN_PAIRS})
    if not counts:
        return (f"No method has {MIN_PAIRS} or more seed pairs with `{BASELINE}`, so no "
                "p-values are given: with so few seeds no test could show a difference.")
    floors = ", ".join(f"{smallest_sign_p(n):.4g} with {n} pairs" for n in counts)
    note = (f"How to read the p-values: both tests are two-sided and only use the sign (sign "
            f"test) or signed ranks (Wilcoxon) of the paired differences, so their smallest "
            f"possible p-value, reached only when every pair agrees, is {floors}. ")
    if counts[0] <= 5:
        note += ("With 5 seeds even 5 wins out of 5 gives p = 0.0625, so no difference can reach "
                 "p < 0.05 with either test: 5/5 is the strongest evidence this grid can give, "
                 "and 4 wins out of 5 gives p = 0.375. ")
    note += "The p-values are not corrected for the number of comparisons."
    return note


def render_report(results, command=None, failures=None, source=None):
    """The markdown report (see the module docstring) as a string.

    Parameters
    ----------
    results : pandas.DataFrame
        Validated results (:func:`validate_results`).
    command : str or None
        The command that produced the results, shown at the top.
    failures : pandas.DataFrame or None
        From :func:`load_failures`.
    source : str or None
        Name of the results file, shown at the top.

    Returns
    -------
    markdown : str
    """
    methods = method_order(results["method"])
    table = budget_table(results)
    areas = cell_areas(results)
    summary = area_summary(areas)
    paired = paired_vs_baseline(areas)
    incomplete = incomplete_cells(results)
    missing = missing_cells(results)
    datasets = list(dict.fromkeys(results["dataset"]))

    out = ["# skal benchmark report", ""]
    if command:
        out += ["Command:", "", "```bash", str(command), "```", ""]
    n_cells = results.groupby(_CELL).ngroups
    line = (f"{len(results)} rows, {n_cells} cells (method × dataset × seed), "
            f"{len(methods)} methods, {len(datasets)} datasets")
    if source:
        line = f"Results: `{source}`: " + line
    dropped = results.attrs.get("duplicates_dropped", 0)
    if dropped:
        line += (f"; {dropped} duplicated row(s) of the same (method, dataset, seed, cycle) were "
                 "replaced by the row written last (a rerun)")
    out += [line + ".", ""]
    out += ["Standard deviations are over seeds (ddof = 1); `(n=k)` marks a number over fewer "
            "seeds than the dataset has; `–` means no value.", ""]
    if not paired.empty:
        out += [_pvalue_note(paired), ""]

    for dataset in datasets:
        out += _dataset_section(results, dataset, table, areas, summary, paired, incomplete,
                                missing, methods)

    out += ["## Wall time per method (all datasets)", "",
            "Mean seconds of training per cycle and of querying per query (the last cycle, which "
            "queries nothing, is left out of the query mean), over every dataset and seed; the "
            "datasets differ in size, so compare methods within a dataset above.", "",
            _timing_markdown(timing_summary(results), methods), ""]

    out += ["## Failures", ""]
    if failures is None or failures.empty:
        out += ["None recorded.", ""]
    else:
        rows = [[r.method, r.dataset, r.seed, _short_error(r.error)] for r in failures.itertuples()]
        out += [_table(["method", "dataset", "seed", "error"], rows), ""]
    return "\n".join(out)


def _short_error(error, limit=200):
    """The last non-empty line of an error (a traceback's message), at most ``limit`` chars."""
    lines = [ln.strip() for ln in str(error).splitlines() if ln.strip()]
    text = lines[-1] if lines else ""
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --------------------------------------------------------------------------- entry points


def write_report(csv_path, out_dir, command=None, failures=None):
    """Write ``report.md`` and one ``curves_<dataset>.png`` per dataset.

    Parameters
    ----------
    csv_path : path-like
        The tidy results CSV.
    out_dir : path-like
        Created if needed.
    command : str or None
        The command that produced the results, shown at the top of the report.
    failures : list of dict or None
        Failed cells (keys ``method``, ``dataset``, ``seed``, ``error``);
        a ``failures.csv`` next to ``csv_path`` is read as well.

    Returns
    -------
    paths : dict of str to pathlib.Path
        ``"report"``: the markdown file; ``"curves_<dataset>"``: each figure.

    Raises
    ------
    ValueError
        For an empty CSV or missing columns (named in the message).
    """
    results = load_results(csv_path)
    failure_table = load_failures(failures, csv_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    methods = method_order(results["method"])
    table = budget_table(results)
    paths = {}
    for dataset, part in results.groupby("dataset", sort=False):
        paths[f"curves_{dataset}"] = plot_curves(
            table, dataset, out_dir / f"curves_{dataset}.png", n_seeds=part["seed"].nunique(),
            methods=methods, ceiling=_ceiling(dataset))
    report = out_dir / "report.md"
    report.write_text(render_report(results, command=command, failures=failure_table,
                                    source=Path(csv_path).name), encoding="utf-8")
    paths["report"] = report
    return paths


def main(argv=None):
    """Command line: ``report.py RESULTS.csv --out DIR [--command CMD] [--failures CSV]``,
    or ``report.py RESULTS.csv --study-table`` (the study's table on stdout).

    Parameters
    ----------
    argv : list of str or None
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    status : int
        0 on success.
    """
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("results", help="tidy results CSV written by run_all.py")
    parser.add_argument("--out", help="folder for report.md and the PNGs")
    parser.add_argument("--study-table", action="store_true",
                        help="print the study's table instead (per dataset, ACC and AUC mean "
                             "± std over trials at each cycle, a row per method); no --out")
    parser.add_argument("--command", default=None,
                        help="the command that produced the results, shown at the top")
    parser.add_argument("--failures", default=None,
                        help="CSV of failed cells (method, dataset, seed, error); a "
                             "failures.csv next to RESULTS is read anyway")
    args = parser.parse_args(argv)
    if args.study_table:
        print(study_table(load_results(args.results)))
        return 0
    if not args.out:
        parser.error("--out is required (or --study-table to print the study's table)")
    failures = None
    if args.failures:
        failures = pd.read_csv(args.failures, dtype=str, keep_default_na=False).to_dict("records")
    paths = write_report(args.results, args.out, command=args.command, failures=failures)
    for path in paths.values():
        print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
