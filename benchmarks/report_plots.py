"""The benchmark report's figures: one function per figure, each writes one PNG.

Every number drawn comes from a table of :mod:`benchmarks.report_stats`;
nothing is computed here but the layout. Figures are drawn on matplotlib's
object API with the Agg canvas (no pyplot state, no display needed).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from benchmarks.report_data import METRIC_LABELS
from benchmarks.report_stats import BASELINE, METRICS, method_order

__all__ = ["plot_curves", "plot_differences", "plot_penalty"]


def _colors(methods):
    """Colour ``Ci`` for the i-th method: the same list everywhere keeps a method's colour."""
    return {m: f"C{i % 10}" for i, m in enumerate(methods)}


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
    colors = _colors(methods)
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


def plot_differences(diffs, dataset, path, methods=None, metric="acc", identical=()):
    """Small multiples: each method's paired difference to the baseline against the budget.

    One panel per method (shared axes), the mean difference over seeds with
    its bootstrap 95 % interval as a band, a zero line; a reader sees at a
    glance which method beats the baseline at which budget.

    Parameters
    ----------
    diffs : pandas.DataFrame
        From :func:`benchmarks.report_stats.paired_by_budget` (rows of other
        datasets are ignored).
    dataset : str
    path : path-like
        The PNG to write.
    methods : list of str or None
        Panel order and colours (as :func:`plot_curves`); default those of
        ``dataset``.
    metric : str, default="acc"
        Named on the y axis.
    identical : list of list of str
        Groups of identical methods on this dataset: one panel per group,
        titled with every member.

    Returns
    -------
    path : pathlib.Path
    """
    part = diffs[diffs["dataset"] == dataset]
    if methods is None:
        methods = method_order(part["method"])
    colors = _colors(methods)
    dropped = {m for g in identical for m in g[1:]}
    panels = [m for m in methods if m != BASELINE and m in set(part["method"])
              and m not in dropped]
    titles = {m: " = ".join(next((g for g in identical if g[0] == m), [m])) for m in panels}
    n_cols = min(4, max(1, len(panels)))
    n_rows = max(1, -(-len(panels) // n_cols))
    fig = Figure(figsize=(3.1 * n_cols, 2.3 * n_rows + 0.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(n_rows, n_cols, sharex=True, sharey=True, squeeze=False))
    label = METRIC_LABELS.get(metric, metric)
    for ax, method in zip(axes.flat, panels):
        curve = part[part["method"] == method].sort_values("n_labeled")
        x = curve["n_labeled"].to_numpy(dtype=float)
        ax.axhline(0.0, color="0.3", linewidth=0.8)
        ax.fill_between(x, curve["ci_low"].to_numpy(dtype=float),
                        curve["ci_high"].to_numpy(dtype=float), color=colors[method],
                        alpha=0.25, linewidth=0)
        ax.plot(x, curve["mean_diff"].to_numpy(dtype=float), marker="o", markersize=3,
                color=colors[method])
        ax.set_title(titles[method], fontsize="small")
        ax.grid(alpha=0.3)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("labeled images")
    for ax in axes[:, 0]:
        ax.set_ylabel(f"{label} − {BASELINE}")
    fig.suptitle(f"{dataset}: {label} minus {BASELINE}'s, paired by seed "
                 f"(mean and bootstrap 95 % interval)")
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path


def plot_penalty(share, path, metric="acc", title_note=""):
    """The pairwise penalty matrix as a heat-map.

    Parameters
    ----------
    share : pandas.DataFrame
        Methods × methods, from :func:`benchmarks.report_stats.penalty_matrix`:
        the share of points where the row method is significantly better than
        the column method (diagonal NaN).
    path : path-like
    metric : str
        Named in the title.
    title_note : str
        Appended to the title (e.g. the test and the number of points).

    Returns
    -------
    path : pathlib.Path
    """
    methods = list(share.index)
    values = share.to_numpy(dtype=float)
    fig = Figure(figsize=(1.0 + 0.62 * len(methods), 0.9 + 0.55 * len(methods)),
                 layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="Reds", vmin=0.0,
                      vmax=max(0.05, float(np.nanmax(values)) if np.isfinite(values).any() else 0))
    for i in range(len(methods)):
        for j in range(len(methods)):
            if np.isfinite(values[i, j]):
                ax.text(j, i, f"{values[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if values[i, j] > 0.6 * np.nanmax(values) else "black")
    ax.set_xticks(range(len(methods)), methods, rotation=45, ha="right", fontsize="small")
    ax.set_yticks(range(len(methods)), methods, fontsize="small")
    ax.set_xlabel("… than this method")
    ax.set_ylabel("this method is significantly better …")
    fig.colorbar(image, ax=ax, shrink=0.8, label="share of (dataset, budget) points")
    ax.set_title(f"Pairwise penalty matrix, {METRIC_LABELS.get(metric, metric)}{title_note}",
                 fontsize="medium")
    path = Path(path)
    fig.savefig(path, dpi=110)
    return path
