"""Stopping rules and the learning-curve forecast on the committed grid's curves.

Reads ``benchmarks/results/fast/results.csv`` (3 datasets x 11 methods x 5
seeds, 10 cycles each) and, for every curve:

- the *target*: the labels at which the curve first comes within one point
  (0.01) of its final ACC;
- for each accuracy-based rule of :mod:`skal.stopping` (the plateau rule, the
  forecast rule on its point forecast and on its interval's upper end), the
  labels at which it stops (a rule that never fires stops at the end of the
  budget), how many labels too early or too late that is, and the ACC given
  up by stopping there (final ACC minus ACC at the stop);
- the forecast's error predicting the ACC two cycles ahead, from every
  prefix of at least 3 cycles, and how often the observed gain falls in the
  forecast's 80 % interval.

The stabilizing-predictions rule needs each cycle's predictions on a stop
set, which the CSV does not keep; :class:`skal.callbacks.StoppingRules`
records it during a run.

    python benchmarks/stopping.py
"""

from __future__ import annotations

import argparse
import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from skal.results import atomic_write, write_csv  # noqa: E402
from skal.stopping import forecast_gain, forecast_stop, plateau_stop  # noqa: E402

#: Within this of the final ACC counts as "reached".
TOLERANCE = 0.01
#: Forecast horizon, in cycles.
AHEAD = 2
#: The rules evaluated: name -> (curve's n, acc, per-cycle budget) -> stop position or None.
RULES = {
    "plateau (no 1-point gain in 2 cycles)":
        lambda n, acc, budget: plateau_stop(acc, min_gain=0.01, window=2),
    "forecast < 1 point over 2 cycles":
        lambda n, acc, budget: forecast_stop(n, acc, AHEAD * budget, min_gain=0.01),
    "forecast upper 80% end < 1 point over 2 cycles":
        lambda n, acc, budget: forecast_stop(n, acc, AHEAD * budget, min_gain=0.01,
                                             bound="high"),
}


def read_curves(path):
    """{(dataset, method, seed): (n_labeled array, acc array)} in cycle order."""
    curves = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            key = (row["dataset"], row["method"], int(row["seed"]))
            curves.setdefault(key, []).append((int(row["cycle"]), int(row["n_labeled"]),
                                               float(row["acc"])))
    return {k: (np.array([r[1] for r in sorted(v)]), np.array([r[2] for r in sorted(v)]))
            for k, v in curves.items()}


def target_position(acc, tolerance=TOLERANCE):
    """The first cycle whose ACC is within ``tolerance`` of the final ACC."""
    return int(np.flatnonzero(acc >= acc[-1] - tolerance)[0])


def evaluate_rules(curves):
    rows = []
    for (dataset, method, seed), (n, acc) in sorted(curves.items()):
        budget = int(n[1] - n[0])
        target = target_position(acc)
        for rule, stop in RULES.items():
            position = stop(n, acc, budget)
            fired = position is not None
            position = len(n) - 1 if position is None else position
            rows.append({"dataset": dataset, "method": method, "seed": seed, "rule": rule,
                         "fired": fired, "stop_labels": int(n[position]),
                         "target_labels": int(n[target]),
                         "labels_late": int(n[position] - n[target]),
                         "cycles_late": position - target,
                         "acc_given_up": float(acc[-1] - acc[position])})
    return rows


def evaluate_forecast(curves):
    rows = []
    for (dataset, method, seed), (n, acc) in sorted(curves.items()):
        for end in range(3, len(n) - AHEAD + 1):  # fit on n[:end], predict n[end - 1 + AHEAD]
            later = end - 1 + AHEAD
            f = forecast_gain(n[:end], acc[:end], int(n[later] - n[end - 1]))
            observed_gain = float(acc[later] - acc[end - 1])
            rows.append({"dataset": dataset, "method": method, "seed": seed,
                         "n_points": end, "n_now": int(n[end - 1]), "n_ahead": int(n[later]),
                         "acc_forecast": f.accuracy_next, "acc_observed": float(acc[later]),
                         "error": f.accuracy_next - float(acc[later]),
                         "gain_forecast": f.gain, "gain_observed": observed_gain,
                         "gain_low": f.low, "gain_high": f.high,
                         "in_interval": bool(f.low <= observed_gain <= f.high)})
    return rows


def summarise(rule_rows, forecast_rows):
    lines = ["## Rules against the target (first cycle within 1 point of the final ACC)", "",
             "Labels late = labels at the stop minus labels at the target (negative: too "
             "early). A rule that never fires stops at the end of the budget.", "",
             "| dataset | rule | curves | fired | too early | on target | too late | "
             "median labels late (IQR) | mean ACC given up | worst ACC given up |",
             "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for dataset in sorted({r["dataset"] for r in rule_rows}) + ["all"]:
        for rule in RULES:
            sel = [r for r in rule_rows if r["rule"] == rule
                   and (dataset == "all" or r["dataset"] == dataset)]
            late = np.array([r["labels_late"] for r in sel])
            given = np.array([r["acc_given_up"] for r in sel])
            q1, med, q3 = np.percentile(late, [25, 50, 75])
            lines.append(
                f"| {dataset} | {rule} | {len(sel)} | {sum(r['fired'] for r in sel)} | "
                f"{int((late < 0).sum())} | {int((late == 0).sum())} | {int((late > 0).sum())} | "
                f"{med:+.0f} ({q1:+.0f} to {q3:+.0f}) | {given.mean():.3f} | {given.max():.3f} |")
    lines += ["", f"## Forecast of the ACC {AHEAD} cycles ahead", "",
              "Error = forecast minus observed ACC; the interval is the 80 % interval of the "
              "gain.", "",
              "| dataset | points fitted | forecasts | mean error | mean abs. error | "
              "median abs. error | observed gain in 80 % interval |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for dataset in sorted({r["dataset"] for r in forecast_rows}) + ["all"]:
        for points in ("3-4", "5-8", "all"):
            sel = [r for r in forecast_rows if (dataset == "all" or r["dataset"] == dataset)
                   and (points == "all" or (r["n_points"] <= 4) == (points == "3-4"))]
            err = np.array([r["error"] for r in sel])
            lines.append(f"| {dataset} | {points} | {len(sel)} | {err.mean():+.4f} | "
                         f"{np.abs(err).mean():.4f} | {np.median(np.abs(err)):.4f} | "
                         f"{np.mean([r['in_interval'] for r in sel]):.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", default=str(REPO / "benchmarks" / "results" / "fast"
                                                 / "results.csv"))
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "stopping"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    curves = read_curves(args.results)
    rule_rows = evaluate_rules(curves)
    forecast_rows = evaluate_forecast(curves)
    write_csv(out / "stops.csv", list(rule_rows[0]), rule_rows)
    write_csv(out / "forecast_errors.csv", list(forecast_rows[0]), forecast_rows)
    text = summarise(rule_rows, forecast_rows)
    atomic_write(out / "summary.md", lambda fh: fh.write(text.encode()))
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
