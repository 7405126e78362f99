"""Cold start against random: does a first batch chosen without labels start better?

For each dataset and seed, the fast preset's whole 10-cycle run (random
queries after the first batch, so only the first batch differs) with each
``--initial`` strategy: the first model's test ACC and balanced accuracy,
and the ACC area over the 10 cycles (:func:`skal.metrics.budget_curve_area`).
Each cold-start strategy is compared with random seed by seed (paired
differences, Wilcoxon signed-rank p-values, ``scipy.stats.wilcoxon``), and
the spread over seeds is reported.

The self-supervised features are computed first, once per dataset (timed:
wall and CPU seconds), into the cache the runs then read. Every cell is a
:func:`skal.runner.run_cell` trial with its own checkpoint, so an interrupted
benchmark resumes where it stopped; ``cells.csv`` is rewritten after each cell
and the summary from whatever cells have finished (``--report-only`` rewrites
it without running anything). Whole runs are the benchmark grid's own cells
(:func:`arm_dir`): the random arm is the grid's ``random`` method, with the
grid's 2 threads, and a cell either script has computed is loaded by the other.

    python benchmarks/cold_start.py --initials random probcover
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from skal.results import atomic_write, write_csv  # noqa: E402

DATASETS = ("breastmnist", "pneumoniamnist", "retinamnist")
#: The arms; random first, the baseline every other arm is paired with.
INITIALS = ("random", "typiclust", "probcover")
CELL_COLUMNS = ("initial", "dataset", "seed", "n_initial", "first_acc", "first_bacc",
                "acc_area", "final_acc", "seconds", "status")


def _read_csv(path):
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def arm_dir(initial, grid_dir, work_dir, cycles=None):
    """Where an arm's trials keep their checkpoints.

    Whole runs share the benchmark grid's folders (``run_all.py``'s work dir,
    ``--initial NAME`` suffixed as there): the random arm *is* the grid's
    ``random`` method, and a cold-start arm is ``run_all.py --methods random
    --initial NAME``, so a cell computed by either script is loaded, not
    retrained, by the other. Shortened runs (``cycles``) have their own.
    """
    from benchmarks.run_all import initial_suffix

    if cycles is not None:
        return Path(work_dir) / initial
    grid_dir = Path(grid_dir)
    return grid_dir.with_name(grid_dir.name + initial_suffix(initial))


def run_one(initial, dataset, seed, out_dir, root, threads, results, cycles=None,
            cache_root=None):
    """One cell: the fast preset's trial with ``initial`` as the first batch; a cells.csv row.

    ``out_dir`` is the arm's folder (:func:`arm_dir`); the trial is the one
    ``run_all.py`` runs (the same function and settings), so both share it.
    """
    from skal.metrics import budget_curve_area
    from skal.protocols import get_preset
    from skal.runner import load_data, run_cell

    os.environ["SKAL_CACHE_DIR"] = str(cache_root)
    data = load_data(dataset, root=root, eval_split=get_preset("fast").eval_split)
    if initial != "random":
        ensure_features(dataset, root, threads, results)
    start = time.perf_counter()
    result = run_cell("random", dataset, seed, threads=threads, preset="fast", out=str(out_dir),
                      root=root, download=False, data=data, initial=initial, cycles=cycles)
    row = {"initial": initial, "dataset": dataset, "seed": seed, "status": result["status"],
           "seconds": time.perf_counter() - start}
    if result["status"] == "failed":
        print(f"{initial} {dataset} {seed}: failed: {result['error']}", file=sys.stderr)
        return row
    curve = result["rows"]
    # balanced accuracy: the trial's own column (skal.metrics.curve_metrics), as in the grid
    row.update(n_initial=curve[0]["n_labeled"], first_acc=curve[0]["acc"],
               first_bacc=curve[0]["balanced_acc"], final_acc=curve[-1]["acc"],
               acc_area=budget_curve_area([r["n_labeled"] for r in curve],
                                          [r["acc"] for r in curve]))
    return row


def ensure_features(dataset, root, threads, out):
    """The default SimCLR features of a dataset's training split in the cache, computed once.

    Cells run in parallel processes: the first to need a dataset's features
    computes them under a lock, the others wait for it (idle) and read the
    cache. A computation's wall and CPU seconds go to ``feature_times.csv``.
    """
    import fcntl

    from skal.features import cache_key, default_cache_dir, pool_features, simclr
    from skal.runner import load_data

    X = load_data(dataset, root=root)[0]
    cache = default_cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    with open(cache / f"{dataset}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (cache / f"{cache_key(X, 'simclr', {})}.npy").is_file():
            return
        wall, cpu = time.perf_counter(), time.process_time()
        pool_features(X, "simclr", n_threads=threads)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        times = [r for r in _read_csv(Path(out) / "feature_times.csv") if r["dataset"] != dataset]
        times.append({"dataset": dataset, "n_images": len(X), "threads": threads,
                      "epochs": simclr.__defaults__[0], "wall_seconds": round(wall, 1),
                      "cpu_seconds": round(cpu, 1)})
        write_csv(Path(out) / "feature_times.csv", tuple(times[-1]), times)
        print(f"features {dataset}: {len(X)} images, {wall:.1f} s wall, {cpu:.1f} s CPU",
              file=sys.stderr, flush=True)


def summarise(rows, out, suffix=""):
    """summary.csv and summary.md from the finished cells: each arm against random, paired."""
    from scipy.stats import wilcoxon

    done = [r for r in rows if r.get("status") in ("computed", "resumed", "loaded")]
    by = {(r["initial"], r["dataset"], int(r["seed"])): r for r in done}
    lines, table = [], []
    metrics = (("first_acc", "first-cycle ACC"), ("first_bacc", "first-cycle balanced acc."),
               ("acc_area", "ACC area, 10 cycles"))
    for dataset in DATASETS:
        for initial in INITIALS[1:]:
            seeds = sorted(s for (i, d, s) in by if i == initial and d == dataset
                           and ("random", d, s) in by)
            if not seeds:
                continue
            for key, name in metrics:
                if key == "acc_area" and suffix:  # a shortened run has no 10-cycle area
                    continue
                cold = np.array([float(by[(initial, dataset, s)][key]) for s in seeds])
                base = np.array([float(by[("random", dataset, s)][key]) for s in seeds])
                diff = cold - base
                p = (wilcoxon(cold, base).pvalue if len(seeds) >= 2 and np.any(diff != 0)
                     else float("nan"))
                table.append({"dataset": dataset, "initial": initial, "metric": key,
                              "n_seeds": len(seeds), "cold_mean": cold.mean(),
                              "cold_std": cold.std(ddof=1) if len(seeds) > 1 else float("nan"),
                              "random_mean": base.mean(),
                              "random_std": base.std(ddof=1) if len(seeds) > 1 else float("nan"),
                              "diff_mean": diff.mean(), "wins": int((diff > 0).sum()),
                              "wilcoxon_p": p})
    columns = ("dataset", "initial", "metric", "n_seeds", "cold_mean", "cold_std", "random_mean",
               "random_std", "diff_mean", "wins", "wilcoxon_p")
    write_csv(out / f"summary{suffix}.csv", columns,
              [{k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()}
               for r in table])
    lines.append("| dataset | first batch | metric | seeds | cold start (mean ± std) | "
                 "random (mean ± std) | difference | cold better on | Wilcoxon p |")
    lines.append("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    names = dict(metrics)
    for r in table:
        lines.append(f"| {r['dataset']} | {r['initial']} | {names[r['metric']]} | {r['n_seeds']} "
                     f"| {r['cold_mean']:.3f} ± {r['cold_std']:.3f} | {r['random_mean']:.3f} ± "
                     f"{r['random_std']:.3f} | {r['diff_mean']:+.3f} | {r['wins']}/{r['n_seeds']} "
                     f"| {r['wilcoxon_p']:.3f} |")
    text = "\n".join(lines) + "\n"
    atomic_write(out / f"summary{suffix}.md", lambda fh: fh.write(text.encode()))
    return text


def first_batch_classes(rows, arm_dirs, root, out, suffix=""):
    """first_batch_classes{suffix}.md: what each arm's first batch holds, from the trials'
    labeled.csv: classes present, and the share of the dataset's rarest class."""
    from skal.runner import load_data, trial_dir

    lines = ["| dataset | first batch | seeds | classes in the batch (mean) | of the task's | "
             "rarest class's share (mean; in the pool) |", "| --- | --- | --- | --- | --- | --- |"]
    for dataset in DATASETS:
        y = load_data(dataset, root=root)[1].reshape(-1)
        counts = np.bincount(y)
        rare = int(np.argmin(counts))
        for initial in INITIALS:
            seeds = sorted(int(r["seed"]) for r in rows
                           if r["initial"] == initial and r["dataset"] == dataset
                           and r.get("status") in ("computed", "resumed", "loaded"))
            present, shares = [], []
            for seed in seeds:
                path = trial_dir(arm_dirs[initial], "fast", dataset, "random", seed)
                batch = [int(r["index"]) for r in _read_csv(path / "labeled.csv")
                         if r["cycle"] == "1"]
                present.append(len(np.unique(y[batch])))
                shares.append(np.mean(y[batch] == rare))
            if seeds:
                lines.append(f"| {dataset} | {initial} | {len(seeds)} | {np.mean(present):.1f} | "
                             f"{len(counts)} | {np.mean(shares):.3f} ({counts[rare] / len(y):.3f}) |")
    text = "\n".join(lines) + "\n"
    atomic_write(Path(out) / f"first_batch_classes{suffix}.md", lambda fh: fh.write(text.encode()))
    return text


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--initials", nargs="+", default=list(INITIALS), choices=INITIALS,
                        help="arms in priority order (random is always run first: it is the "
                             "baseline; the first other arm is interleaved with it by seed)")
    parser.add_argument("--seeds", nargs="+", type=int, default=list(range(10)))
    parser.add_argument("--jobs", type=int, default=1, help="cells at once (processes)")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads per cell (2: as the committed grid, whose random "
                             "cells are this benchmark's random arm)")
    parser.add_argument("--root", default=os.environ.get("MEDMNIST_ROOT"))
    parser.add_argument("--grid-dir", default=str(REPO / "runs" / "benchmarks"),
                        help="run_all.py's --work-dir: whole runs keep their checkpoints in "
                             "the grid's folders and share its cells (not committed)")
    parser.add_argument("--work-dir", default=str(REPO / "runs" / "cold_start"),
                        help="the feature cache, and the checkpoints of --cycles runs "
                             "(not committed)")
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "cold_start"))
    parser.add_argument("--cycles", type=int,
                        help="stop each trial after this many cycles (1: the first-cycle "
                             "numbers only, at a tenth of the cost); its own files "
                             "(cells_cycles<N>.csv, summary_cycles<N>.md) and checkpoints")
    parser.add_argument("--report-only", action="store_true")
    parser.add_argument("--merge", nargs="+", default=[], metavar="CSV",
                        help="cells files of other runs of this script (other --out, the same "
                             "--work-dir) to add to this one's before summarising")
    args = parser.parse_args(argv)
    out, work_dir = Path(args.out), Path(args.work_dir)
    suffix = "" if args.cycles is None else f"_cycles{args.cycles}"
    cache_root = str(work_dir / "cache")  # one feature cache for full and shortened runs
    work_dir = work_dir.with_name(work_dir.name + suffix)
    initials = ["random"] + [i for i in args.initials if i != "random"]
    arm_dirs = {i: arm_dir(i, args.grid_dir, work_dir, args.cycles) for i in INITIALS}
    cells_path = out / f"cells{suffix}.csv"
    rows = {}
    for path in [*args.merge, cells_path]:
        rows.update({(r["initial"], r["dataset"], int(r["seed"])): r for r in _read_csv(path)})
    if not args.report_only:
        from joblib import Parallel, delayed

        # Random and the first cold-start arm first, seeds outermost: whatever has
        # finished at any time is paired seed by seed; the other arms after them.
        first, later = initials[:2], initials[2:]
        cells = [(i, d, s) for s in args.seeds for d in args.datasets for i in first]
        cells += [(i, d, s) for i in later for s in args.seeds for d in args.datasets]
        cells = [c for c in cells if c not in rows]
        print(f"{len(cells)} cell(s) to run, {args.jobs} at a time", file=sys.stderr, flush=True)
        tasks = (delayed(run_one)(i, d, s, str(arm_dirs[i]), args.root, args.threads,
                                  str(out), args.cycles, cache_root) for i, d, s in cells)
        for row in Parallel(n_jobs=args.jobs, return_as="generator_unordered")(tasks):
            if row["status"] != "failed":
                rows[(row["initial"], row["dataset"], int(row["seed"]))] = row
            write_csv(cells_path, CELL_COLUMNS,
                      [rows[k] for k in sorted(rows, key=lambda k: (k[1], k[0], k[2]))])
            summarise(list(rows.values()), out, suffix)
            print(f"{row['initial']} {row['dataset']} seed {row['seed']}: {row['status']} "
                  f"({row['seconds']:.0f} s)", file=sys.stderr, flush=True)
    print(summarise(list(rows.values()), out, suffix))
    print(first_batch_classes(list(rows.values()), arm_dirs, args.root, out, suffix))
    return 0


if __name__ == "__main__":
    sys.exit(main())
