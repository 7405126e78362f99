"""The benchmark report as markdown: layout and words only.

Every number is read from the tables of :func:`benchmarks.report_stats.analyze`
(computed once, shared with the figures); this module formats them, and
writes the answer section's sentences from them by fixed rules, so no claim
in the report is written by hand.
"""

from __future__ import annotations

import numpy as np

from benchmarks.report_data import METRIC_LABELS, ceiling
from benchmarks.report_stats import (ALPHA, BASELINE, CELL, CONFIDENCE, METRICS, MIN_PAIRS,
                                     analyze, budget_table, method_order, sign_test_p,
                                     smallest_sign_p, smallest_wilcoxon_p, timing_summary)

__all__ = ["format_mean_std", "render_report", "study_table"]


def _label(metric):
    return METRIC_LABELS.get(metric, metric)


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


def _budget_markdown(table, dataset, methods, n_seeds, metrics):
    part = table[table["dataset"] == dataset]
    budgets = sorted(part["n_labeled"].unique())
    out = []
    for metric in metrics:
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
        out.append(f"**{_label(metric)} at each budget** "
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


def _area_markdown(summary, dataset, methods, n_seeds, metrics):
    top = ceiling(dataset)
    columns = [m for m in metrics if f"{m}_area_mean" in summary.columns]
    rows = []
    for method in methods:
        if (dataset, method) not in summary.index:
            continue
        s = summary.loc[(dataset, method)]
        rows.append([method] + [
            format_mean_std(s[f"{m}_area_mean"], s[f"{m}_area_std"], s[f"{m}_area_n"], n_seeds)
            for m in columns] + [_format_rank(s["rank"])])
    published = ["n/a" if top is None or m not in top else f"{_label(m)} {top[m]:.3f}"
                 for m in columns]
    rows.append(["*full-data ResNet-18 (MedMNIST v2)*", *published, ""])
    return [
        "**Area under the budget curve** (trapezoid area of the metric against the labeled "
        "count, divided by the labeled-count range: the curve's mean height; per seed, then "
        "mean ± std over seeds; rank by mean ACC area, 1 best, ties averaged). The last row is "
        "the published full-data ceiling, test ACC and AUC of a ResNet-18 trained on the whole "
        "training split.\n",
        _table(["method"] + [f"{_label(m)} area" for m in columns] + ["rank"], rows),
        "",
    ]


def _identical_note(groups, where="here"):
    """One sentence naming the groups of identical methods, or nothing."""
    if not groups:
        return []
    names = "; ".join(" = ".join(f"`{m}`" for m in g) for g in groups)
    return [f"**Identical methods {where}**: {names} gave equal result rows, digit for digit "
            "(the same picks, so the same networks). Each group counts as one method in the "
            "Holm correction and in the ranking; the tables keep every name.", ""]


def _paired_markdown(paired, dataset, has_baseline, metric, groups):
    if not has_baseline:
        return [f"No `{BASELINE}` cells for this dataset: no paired comparison.", ""]
    part = paired[paired["dataset"] == dataset]
    if part.empty:
        return []
    rows = []
    for r in part.itertuples():
        if r.n_pairs >= MIN_PAIRS:
            sign_p, wilcoxon_p, holm_p = (_format_p(r.sign_p), _format_p(r.wilcoxon_p),
                                          _format_p(r.holm_p))
        else:
            sign_p = wilcoxon_p = holm_p = f"too few seeds ({r.n_pairs} < {MIN_PAIRS})"
        rows.append([r.method, str(r.n_pairs), f"{r.wins} / {r.ties} / {r.losses}",
                     _format_diff(r.mean_diff, r.std_diff), _format_ci(r.ci_low, r.ci_high),
                     sign_p, wilcoxon_p, holm_p])
    label = _label(metric)
    n_family = len(part) - sum(len(g) - 1 for g in groups)
    return [
        f"**Paired against `{BASELINE}`, {label} area** (paired by seed; wins / ties / losses "
        f"count the seeds on which the method's area is above / equal to / below "
        f"`{BASELINE}`'s; difference is method − {BASELINE}, mean ± std over pairs, with the "
        f"percentile bootstrap {CONFIDENCE:.0%} interval of the mean; two-sided p-values; "
        f"Holm: the Wilcoxon p-values adjusted over the {n_family} distinct methods compared "
        f"with `{BASELINE}` on this dataset)\n",
        _table(["method", "pairs", "wins / ties / losses", f"{label}-area difference",
                f"{CONFIDENCE:.0%} interval", "sign test p", "Wilcoxon p", "Holm p"], rows),
        "",
    ]


def _format_ci(low, high):
    if not (np.isfinite(low) and np.isfinite(high)):
        return "–"
    return f"[{low:+.3f}, {high:+.3f}]"


def _ranking_markdown(ranking, identical, metric):
    alias = {}  # method -> ["= a, b on dataset", ...]
    for dataset, groups in identical.items():
        for g in groups:
            for m in g:
                others = ", ".join(o for o in g if o != m)
                alias.setdefault(m, []).append(f"= {others} on {dataset}")
    rows = []
    for method, r in ranking.iterrows():
        name = method + (f" ({'; '.join(alias[method])})" if method in alias else "")
        rows.append([name, f"{r.mean_rank:.2f}", f"[{r.rank_low:.2f}, {r.rank_high:.2f}]",
                     str(int(r.n_datasets)), f"{r.best_share:.0%}"])
    return [
        f"**Overall ranking by {_label(metric)} area**: each method's rank by mean area on each "
        f"dataset (1 best, ties averaged, identical methods ranked as one), averaged over the "
        f"datasets. The interval is a {CONFIDENCE:.0%} bootstrap interval: each dataset's seeds "
        "resampled with replacement, the same draw for every method; *first* is the share of "
        "resamples in which the method has the best mean rank.\n",
        _table(["method", "mean rank", f"{CONFIDENCE:.0%} interval", "datasets", "first"],
               rows),
        "",
    ]


def _penalty_markdown(share, points, metric, figure):
    methods = list(share.index)
    rows = [[a] + ["" if a == b else f"{share.loc[a, b]:.2f}" for b in methods]
            + [f"{np.nansum(share.loc[a]):.2f}"] for a in methods]
    rows.append(["*beaten (column sum)*"] + [f"{np.nansum(share[b]):.2f}" for b in methods]
                + [""])
    n = int(points.max().max()) if points.size else 0
    few = max(k for k in range(1, 64) if smallest_wilcoxon_p(k) >= ALPHA)  # 5 at 0.05
    return [
        f"**Pairwise penalty matrix, {_label(metric)}** (Ash et al. 2020, BADGE): at each "
        f"(dataset, budget) point, each pair of methods is compared by a two-sided paired "
        f"t-test over seeds (as Ash et al. do; with {few} seeds or fewer a Wilcoxon test can "
        f"never reach p < {ALPHA}, so its matrix would be empty whatever the methods do); a cell "
        f"is the share of the points (up to {n}) where the **row** method is significantly "
        f"better (p < {ALPHA}) than the **column** method. Uncorrected: at {ALPHA} about "
        f"{ALPHA / 2:.3f} of the points of two equal methods fall in each direction by chance. "
        "A good method has a large row sum and a small column sum.\n",
        f"![penalty matrix]({figure})",
        "",
        _table(["row beats column"] + methods + ["row sum"], rows),
        "",
    ]
def _names(methods):
    return ", ".join(f"`{m}`" for m in methods)


def _not_shown(paired, dataset, method, significant):
    """'D (mean gain +x, Holm p = y; better there: `m`)' of a method not significant on D."""
    row = paired[(paired["dataset"] == dataset) & (paired["method"] == method)]
    if row.empty:
        return f"{dataset} (not run there)"
    r = row.iloc[0]
    return (f"{dataset} (mean gain {r.mean_diff:+.3f}, Holm p = {_format_p(r.holm_p)}"
            + (f"; better there: {_names(significant)}" if significant else "") + ")")


def _answer_markdown(analysis):
    """The opening "which method should I use?" section, written from the tables by rule."""
    out = ["## Which method should I use?", "",
           "*Written by `benchmarks/report.py` from the numbers below, by fixed rules; "
           "nothing here is typed by hand.*", ""]
    metrics = analysis["area_metrics"]
    if "balanced_acc" not in metrics:
        out += ["- Balanced accuracy (mean per-class recall): not in this grid (its rows have "
                "no `balanced_acc`), so the answer rests on ACC, which rewards a model that "
                "guesses the majority class.", ""]
    verdicts = {}
    for metric in metrics:
        label = _label(metric)
        paired = analysis["paired"][metric]
        ranking = analysis["ranking"][metric].dropna(subset=["mean_rank"])
        lines = []
        if not ranking.empty:
            top = ranking.index[0]
            t = ranking.iloc[0]
            overlapping = [m for m, r in ranking.iloc[1:].iterrows()
                           if r.rank_low <= t.rank_high]
            lines.append(
                f"- **Best mean rank by {label} area: `{top}`** (mean rank {t.mean_rank:.2f} "
                f"over {int(t.n_datasets)} dataset(s), {CONFIDENCE:.0%} interval "
                f"[{t.rank_low:.2f}, {t.rank_high:.2f}], first in {t.best_share:.0%} of the "
                "seed resamples)."
                + (f" The intervals of {_names(overlapping)} overlap its interval: the ranking "
                   "does not separate them from it." if overlapping else
                   " No other method's interval overlaps it."))
        significant, positive = {}, {}
        for dataset in analysis["datasets"]:
            part = paired[paired["dataset"] == dataset]
            significant[dataset] = list(part.loc[part["holm_p"] < ALPHA, "method"])
            positive[dataset] = list(part.loc[part["ci_low"] > 0, "method"])
        for dataset in analysis["datasets"]:
            part = paired[paired["dataset"] == dataset].set_index("method")
            if part.empty:
                lines.append(f"- {dataset}: no `{BASELINE}` cells, no comparison.")
                continue
            best = part["mean_diff"].idxmax()
            b = part.loc[best]
            text = (f"- {dataset}: largest mean gain over `{BASELINE}` in {label} area: "
                    f"`{best}`, {b.mean_diff:+.3f} ({CONFIDENCE:.0%} interval "
                    f"{_format_ci(b.ci_low, b.ci_high)}). ")
            if significant[dataset]:
                text += (f"Better than `{BASELINE}` after Holm's correction (p < {ALPHA}): "
                         f"{_names(significant[dataset])}.")
            else:
                text += f"No method beats `{BASELINE}` after Holm's correction."
                if positive[dataset]:
                    text += (f" The bootstrap interval excludes 0 (uncorrected, from few seeds) "
                             f"for {_names(positive[dataset])}.")
            lines.append(text)
        verdicts[metric] = (significant, ranking, paired)
        out += lines + [""]
    # What the seeds allow.
    acc_paired = analysis["paired"].get("acc")
    if acc_paired is not None and len(acc_paired):
        n = int(acc_paired["n_pairs"].max())
        floor = smallest_wilcoxon_p(n)
        family = max(len(acc_paired[acc_paired["dataset"] == d])
                     - sum(len(g) - 1 for g in analysis["identical"].get(d, []))
                     for d in analysis["datasets"] if (acc_paired["dataset"] == d).any())
        if floor >= ALPHA:
            out.append(f"**The evidence is not enough.** With {n} seeds the smallest two-sided "
                       f"Wilcoxon (or sign-test) p-value any method can get is {floor:.4g}, "
                       f"reached only when all {n} seeds agree, so no difference from "
                       f"`{BASELINE}` can be significant at {ALPHA}, corrected or not. The "
                       "point estimates and intervals above are the best guess, not a proof.")
        elif family * floor >= ALPHA:
            out.append(f"**The evidence is thin.** With {n} seeds a Wilcoxon p-value can reach "
                       f"{floor:.4g}, but after Holm's correction over {family} methods the "
                       f"smallest possible is {family * floor:.4g} ≥ {ALPHA}: nothing can be "
                       "significant after correction.")
        else:
            out.append(f"With {n} seeds a Wilcoxon p-value can reach {floor:.4g} and, after "
                       f"Holm's correction over {family} methods, {family * floor:.4g}: a "
                       "consistent difference can be shown.")
        out.append("")
    # The plain answer.
    if "acc" in verdicts:
        significant, ranking, paired = verdicts["acc"]
        everywhere = set.intersection(*(set(v) for v in significant.values())) \
            if significant else set()
        if everywhere:
            pick = next(m for m in ranking.index if m in everywhere)
            out.append(f"**Answer:** `{pick}` beats `{BASELINE}` in ACC area on every dataset "
                       f"after Holm's correction, and has the best mean rank among the methods "
                       f"that do.")
        elif not ranking.empty:
            some = sorted({m for v in significant.values() for m in v})
            best = ranking.index[0]
            held = [d for d, v in significant.items() if best in v]
            text = (f"**Answer:** no method is shown to beat `{BASELINE}` on every dataset. "
                    f"On these numbers the best bet is `{best}` (best mean rank)")
            if held:
                text += (f": better than `{BASELINE}` after Holm's correction on "
                         f"{', '.join(held)}; not shown on " + "; ".join(
                             _not_shown(paired, d, best, significant[d])
                             for d in significant if d not in held) + ".")
            else:
                text += (", but more seeds are needed before calling it better than labeling "
                         "at random.")
            out.append(text + (f" Significant on some datasets: {_names(some)}." if some else ""))
        out.append("")
    for metric in metrics:
        share = analysis["penalty"][metric][0]
        if share.empty:
            continue
        beaten = share.sum(axis=0, skipna=True)
        wins = share.sum(axis=1, skipna=True)
        out.append(f"- Penalty matrix ({_label(metric)}, paired t-tests at each budget, "
                   f"uncorrected): most wins `{wins.idxmax()}` (row sum {wins.max():.2f}), "
                   f"least often beaten `{beaten.idxmin()}` (column sum {beaten.min():.2f}), "
                   f"most often beaten `{beaten.idxmax()}` (column sum {beaten.max():.2f}).")
    groups = analysis["identical"]
    if groups:
        out.append("- Identical result rows (counted as one method in the corrections and "
                   "the ranking): " + "; ".join(
                       f"{d}: " + ", ".join(" = ".join(g) for g in gs)
                       for d, gs in groups.items()) + ".")
    out.append("")
    return out


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


def _dataset_section(results, dataset, analysis):
    part = results[results["dataset"] == dataset]
    methods = [m for m in analysis["methods"] if m in set(part["method"])]
    seeds = sorted(part["seed"].unique())
    n_seeds = len(seeds)
    budgets = sorted(part["n_labeled"].unique())
    top = ceiling(dataset)
    areas, incomplete, missing = analysis["areas"], analysis["incomplete"], analysis["missing"]
    groups = analysis["identical"].get(dataset, [])
    out = [f"## {dataset}", ""]
    out.append(f"{n_seeds} seed(s) ({', '.join(map(str, seeds))}), {len(budgets)} budget(s) "
               f"from {budgets[0]} to {budgets[-1]} labeled images, methods: "
               f"{', '.join(methods)}.")
    if top is None:
        out.append("Full-data ceiling (MedMNIST v2 ResNet-18): n/a (none given).")
    else:
        out.append(f"Full-data ceiling (MedMNIST v2 ResNet-18, test): ACC {top['acc']:.3f}, "
                   f"AUC {top['auc']:.3f}.")
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
    area_columns = [c for c in areas.columns if c.endswith("_area")]
    nan_cells = areas[(areas["dataset"] == dataset) & areas["complete"]
                      & areas[area_columns].isna().any(axis=1)]
    if len(nan_cells):
        out.append(f"**Failed evaluations** (NaN ACC or AUC in a complete cell; that area is "
                   f"left out): {_cell_list(nan_cells)}.")
        out.append("")
    out += _identical_note(groups, "on this dataset")
    out.append(f"![learning curves of {dataset}](curves_{dataset}.png)")
    out.append("")
    has_baseline = BASELINE in set(part["method"])
    if has_baseline:
        out.append(f"Who beats `{BASELINE}` where: each method's ACC minus `{BASELINE}`'s at "
                   f"each budget, paired by seed, mean and bootstrap {CONFIDENCE:.0%} interval "
                   f"(a band above 0 is a gain).")
        out.append("")
        out.append(f"![paired differences to {BASELINE} on {dataset}](differences_{dataset}.png)")
        out.append("")
    out += _budget_markdown(analysis["table"], dataset, methods, n_seeds, analysis["metrics"])
    out += _area_markdown(analysis["summary"], dataset, methods, n_seeds, analysis["metrics"])
    for metric in analysis["area_metrics"]:
        out += _paired_markdown(analysis["paired"][metric], dataset, has_baseline, metric,
                                groups)
        if not has_baseline:
            break
    if "balanced_acc" not in analysis["area_metrics"]:
        out += ["Balanced accuracy: not in this grid.", ""]
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
    n = counts[0]
    if smallest_sign_p(n) >= ALPHA:
        note += (f"With {n} seeds even {n} wins out of {n} gives p = {smallest_sign_p(n):.4g}, "
                 f"so no difference can reach p < {ALPHA} with either test: {n}/{n} is the "
                 f"strongest evidence this grid can give, and {n - 1} wins out of {n} gives a "
                 f"sign-test p = {sign_test_p([1.0] * (n - 1) + [-1.0]):.3g}. ")
    note += ("The Holm column adjusts the Wilcoxon p-values for the number of methods compared "
             "with the baseline on the dataset (family-wise error rate).")
    return note


def render_report(results, command=None, failures=None, source=None, analysis=None):
    """The markdown report as a string.

    Parameters
    ----------
    results : pandas.DataFrame
        Validated results (:func:`benchmarks.report_data.validate_results`).
    command : str or None
        The command that produced the results, shown at the top.
    failures : pandas.DataFrame or None
        From :func:`benchmarks.report_data.load_failures`.
    source : str or None
        Name of the results file, shown at the top.
    analysis : dict or None
        :func:`benchmarks.report_stats.analyze` of ``results`` (computed here
        when None; :func:`benchmarks.report.write_report` passes the one its
        figures used).

    Returns
    -------
    markdown : str
    """
    if analysis is None:
        analysis = analyze(results)
    methods, datasets = analysis["methods"], analysis["datasets"]
    paired = analysis["paired"]["acc"]

    out = ["# skal benchmark report", ""]
    if command:
        out += ["Command:", "", "```bash", str(command), "```", ""]
    n_cells = results.groupby(CELL).ngroups
    line = (f"{len(results)} rows, {n_cells} cells (method × dataset × seed), "
            f"{len(methods)} methods, {len(datasets)} datasets")
    if source:
        line = f"Results: `{source}`: " + line
    dropped = results.attrs.get("duplicates_dropped", 0)
    if dropped:
        line += (f"; {dropped} duplicated row(s) of the same (method, dataset, seed, cycle) were "
                 "replaced by the row written last (a rerun)")
    out += [line + ".", ""]
    out += _answer_markdown(analysis)
    out += ["Standard deviations are over seeds (ddof = 1); `(n=k)` marks a number over fewer "
            "seeds than the dataset has; `–` means no value.", ""]
    if not paired.empty:
        out += [_pvalue_note(paired), ""]

    for dataset in datasets:
        out += _dataset_section(results, dataset, analysis)

    out += ["## Across datasets and budgets", ""]
    for metric in analysis["area_metrics"]:
        out += _ranking_markdown(analysis["ranking"][metric], analysis["identical"], metric)
        share, points = analysis["penalty"][metric]
        out += _penalty_markdown(share, points, metric, f"penalty_{metric}.png")

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
