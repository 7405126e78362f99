"""Plots and a markdown report from the benchmark grid's tidy results CSV.

The input is the CSV that ``benchmarks/run_all.py`` writes: one row per cycle
of each (method, dataset, seed) cell, with the columns
:data:`skal.results.RESULT_COLUMNS` (files written before ``test_loss``,
``query_cpu_seconds`` or ``balanced_acc`` existed are read too). The report
opens with a short answer, "which method should I use?", written from the
numbers by fixed rules, then per dataset

- ``curves_<dataset>.png``: ACC and AUC against the labeled count, mean with
  a band of one standard deviation over seeds, one line per method;
- ``differences_<dataset>.png``: each method's ACC minus random's at each
  budget, paired by seed, with a bootstrap 95 % interval, one panel a method;
- in ``report.md``: each metric at each budget as mean ± std over seeds, the
  area under the budget curve with the methods' ranks, the MedMNIST v2
  full-data ceiling, each method against random (paired difference of the
  area with its bootstrap interval, sign-test, Wilcoxon and Holm-corrected
  p-values; for ACC and, when the grid has it, balanced ACC), incomplete and
  missing cells, and the wall time;

and across datasets and budgets the overall ranking with its bootstrap
interval and the pairwise penalty matrix of Ash et al. (2020)
(``penalty_<metric>.png`` and a table), the wall time per method and the
failed cells.

The work is split by concern, one module each: :mod:`benchmarks.report_data`
(reading and validating), :mod:`benchmarks.report_stats` (every number),
:mod:`benchmarks.report_plots` (figures), :mod:`benchmarks.report_markdown`
(words and tables); this module is the entry point and re-exports their
public names.

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
import sys
from pathlib import Path

import pandas as pd

if __package__ in (None, ""):
    # Run as a script (python benchmarks/report.py): make the repository's
    # packages, benchmarks among them, importable as they are under pytest.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.report_data import (FULL_DATA_CEILINGS, KEY_COLUMNS,  # noqa: E402
                                    REQUIRED_COLUMNS, ceiling, load_failures, load_results,
                                    validate_results)
from benchmarks.report_markdown import format_mean_std, render_report, study_table  # noqa: E402
from benchmarks.report_plots import plot_curves, plot_differences, plot_penalty  # noqa: E402
from benchmarks.report_stats import (ALPHA, BASELINE, MIN_PAIRS, analyze,  # noqa: E402
                                     area_summary, budget_table, cell_areas, holm,
                                     identical_methods, incomplete_cells, mean_rank,
                                     method_order, missing_cells, paired_by_budget,
                                     paired_vs_baseline, penalty_matrix, rank_methods,
                                     smallest_sign_p, timing_summary)
# The grid's curves are scored exactly as skal's GridSearchCV scorer scores them.
from skal.metrics import budget_curve_area  # noqa: E402

__all__ = [
    "BASELINE",
    "FULL_DATA_CEILINGS",
    "KEY_COLUMNS",
    "MIN_PAIRS",
    "REQUIRED_COLUMNS",
    "analyze",
    "area_summary",
    "budget_curve_area",
    "budget_table",
    "cell_areas",
    "format_mean_std",
    "holm",
    "identical_methods",
    "incomplete_cells",
    "load_failures",
    "load_results",
    "main",
    "mean_rank",
    "method_order",
    "missing_cells",
    "paired_by_budget",
    "paired_vs_baseline",
    "penalty_matrix",
    "plot_curves",
    "plot_differences",
    "plot_penalty",
    "rank_methods",
    "render_report",
    "smallest_sign_p",
    "study_table",
    "timing_summary",
    "validate_results",
    "write_report",
]


# --------------------------------------------------------------------------- entry points


def write_report(csv_path, out_dir, command=None, failures=None):
    """Write ``report.md`` and its figures.

    The figures: per dataset ``curves_<dataset>.png`` (learning curves) and
    ``differences_<dataset>.png`` (paired differences to random, one panel
    per method; only where the dataset has random), and per compared metric
    ``penalty_<metric>.png`` (the penalty matrix).

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
        ``"report"``: the markdown file; ``"curves_<dataset>"``,
        ``"differences_<dataset>"``, ``"penalty_<metric>"``: each figure.

    Raises
    ------
    ValueError
        For an empty CSV or missing columns (named in the message).
    """
    results = load_results(csv_path)
    failure_table = load_failures(failures, csv_path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    analysis = analyze(results)
    methods = analysis["methods"]
    paths = {}
    for dataset, part in results.groupby("dataset", sort=False):
        paths[f"curves_{dataset}"] = plot_curves(
            analysis["table"], dataset, out_dir / f"curves_{dataset}.png",
            n_seeds=part["seed"].nunique(), methods=methods, ceiling=ceiling(dataset))
        if BASELINE in set(part["method"]):
            paths[f"differences_{dataset}"] = plot_differences(
                analysis["by_budget"]["acc"], dataset, out_dir / f"differences_{dataset}.png",
                methods=methods, identical=analysis["identical"].get(dataset, []))
    for metric in analysis["area_metrics"]:
        share, points = analysis["penalty"][metric]
        paths[f"penalty_{metric}"] = plot_penalty(
            share, out_dir / f"penalty_{metric}.png", metric=metric,
            title_note=f" (paired t-test, p < {ALPHA}; {int(points.max().max())} points)")
    report = out_dir / "report.md"
    report.write_text(render_report(results, command=command, failures=failure_table,
                                    source=Path(csv_path).name, analysis=analysis),
                      encoding="utf-8")
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
