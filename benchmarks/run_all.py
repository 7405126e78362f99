"""Run the benchmark grid: every (method, dataset, seed) cell, then the report.

Each cell is one trial of the command line's experiment, run by the same
function (:func:`skal.runner.run_trial`, through :func:`skal.runner.run_cell`), so
a cell gives exactly the numbers of ``skal run --preset P --method M
--dataset D --seed S --trials 1`` with the same overrides. Cells run in
parallel in worker processes, with joblib on this machine (``--jobs``) or on
a Dask cluster (``--scheduler ADDRESS``, or ``--dask-workers N`` for a local
one), through joblib's Dask backend.

Layout::

    <work-dir>/<preset>/<dataset>/<method>/trial_<seed>/   each cell's own files
        checkpoint/checkpoint.pkl, results.csv, labeled.csv     (as ``skal run --out <work-dir>``)
    <out>/results.csv       the grid: one row per cycle of every finished cell
    <out>/failures.csv      failed cells and their errors (only when some failed)
    <out>/report.md, <out>/curves_<dataset>.png     benchmarks/report.py's report

``--work-dir`` defaults to ``runs/benchmarks/`` and ``--out`` to
``benchmarks/results/<preset>/``, both in the repository (whatever the current
folder); checkpoints never go to ``--out``, which holds the committed result.
With ``--size`` other than 28, the cells' dataset folders are
``<dataset>_<size>`` and ``--out`` defaults to ``benchmarks/results/<preset>_<size>/``.
A worker writes only its cell's folder; the parent process alone writes
``<out>``: it rewrites ``results.csv`` (atomically) each time a cell finishes,
so the file is never half-written and lists exactly this command's finished
cells. Running the same command again loads finished cells from their
checkpoints (nothing is retrained) and resumes interrupted ones after their
last completed cycle, so it can be rerun until every cell is done.

Each cell uses ``--threads`` torch threads (default: usable cores // cells at
once on its machine). With ``--device cuda``, ``--jobs N`` runs N cells at once
on the one GPU: N worker processes, each with its own CUDA context (loky starts
fresh interpreters, never forks one that touched CUDA). On a CPU a cell's
numbers depend on its settings, seed and thread count only, so pass
``--threads`` to reproduce a grid on another machine (the thread count changes
the order of float sums in training).

Exit status: 0 when every cell finished; 1 when some cell failed (the
others still run; see the summary and failures.csv); 2 for bad options (an
unknown method or dataset, nothing to run, a CUDA device without CUDA...),
before any work; 130 when interrupted.

Examples::

    python benchmarks/run_all.py          # fast preset: every method, dataset present, 5 seeds
                                          # (in the data root, or shipped with skal)
    python benchmarks/run_all.py --jobs 2 --methods random badge --datasets breastmnist --seeds 0 1
    python benchmarks/run_all.py --preset paper --device cuda --out runs/paper-grid
    python benchmarks/run_all.py --dask-workers 4               # a local Dask cluster
    python benchmarks/run_all.py --scheduler tcp://10.0.0.5:8786  # an existing one
"""

from __future__ import annotations

import argparse
import csv
import os
import shlex
import sys
import time
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
if __package__ in (None, ""):
    # Run as a script (python benchmarks/run_all.py): make the repository's
    # packages, benchmarks among them, importable as they are under pytest.
    sys.path.insert(0, str(REPO))
from joblib import Parallel, delayed, effective_n_jobs, parallel_config  # noqa: E402

from benchmarks import report  # noqa: E402
from skal import registry  # noqa: E402
from skal.data import (FLAGS_2D, DatasetError, dataset_info, dataset_path,  # noqa: E402
                       load_medmnist, locate_dataset, resolve_root)
from skal.query import STRATEGIES  # noqa: E402
from skal.results import (FAILURE_COLUMNS, RESULT_COLUMNS, error_text,  # noqa: E402
                          format_rows, write_csv)
from skal.runner import SettingsError, check_settings, run_cell  # noqa: E402

DEFAULT_WORK_DIR = REPO / "runs" / "benchmarks"
DEFAULT_SEEDS = (0, 1, 2, 3, 4)
EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def initial_suffix(initial):
    """The folder suffix of a grid whose first batches come from ``initial``.

    ``''`` for random (the study's first batch); ``'_initial-NAME'`` otherwise,
    added to the default work dir and out, so that runs with other first
    batches never mix with the grid's (benchmarks/cold_start.py shares them).
    """
    return "" if initial == "random" else f"_initial-{initial}"


def default_out(preset, size=28):
    """Where the grid's CSV and report go by default: ``benchmarks/results/<preset>/``.

    At an image size other than the study's 28: ``benchmarks/results/<preset>_<size>/``.
    """
    return REPO / "benchmarks" / "results" / (preset if size == 28 else f"{preset}_{size}")


class UsageError(Exception):
    """Bad options, found before any work: one line on stderr, exit status 2."""


# ----------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------


def build_parser(prog="run_all.py"):
    parser = argparse.ArgumentParser(
        prog=prog, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Run every (method, dataset, seed) cell of an active-learning benchmark "
                    "grid, in parallel, then write one tidy CSV and the report.",
        epilog="Finished cells are loaded from their checkpoints and interrupted ones resume: "
               "rerun the same command until it exits 0. Exit status: 0 all cells finished, "
               "1 some failed (listed in the summary and OUT/failures.csv), 2 bad options "
               "(before any work), 130 interrupted.")
    grid = parser.add_argument_group("the grid")
    grid.add_argument("--methods", nargs="+", metavar="METHOD",
                      help="query strategies (default: every registered one)")
    grid.add_argument("--datasets", nargs="+", metavar="DATASET",
                      help="MedMNIST 2D flags (default: those whose file is in the data root)")
    grid.add_argument("--seeds", nargs="+", type=int, metavar="SEED",
                      help="trial seeds (default: 0 1 2 3 4)")
    grid.add_argument("--initial", default="random", choices=list(registry.INITIALS),
                      metavar="NAME",
                      help="how every trial's first batch is chosen (as skal run's --initial); "
                           "other than random, the default --out and --work-dir get a "
                           "'_initial-NAME' suffix, so the runs never mix")
    grid.add_argument("--preset", default="fast", choices=list(registry.PRESETS),
                      help="protocol (default fast; 'paper' is the study's)")
    grid.add_argument("--size", type=int, default=28, choices=registry.SIZES,
                      help="image side (default 28, the study's; 64, 128, 224: MedMNIST+'s "
                           "DATASET_SIZE.npz files); cells go to DATASET_SIZE/ folders")

    over = parser.add_argument_group("overrides of the preset (as skal run's options)")
    over.add_argument("--epochs", type=int, metavar="N", help="epochs per cycle")
    over.add_argument("--cycles", type=int, metavar="N", help="trainings per trial")
    over.add_argument("--budget", type=int, metavar="N",
                      help="items labeled per cycle, for every dataset (default: the study's "
                           "budget of each dataset)")
    over.add_argument("--model", choices=list(registry.MODELS), help="backbone")
    over.add_argument("--dropout", type=float, metavar="P", help="dropout before the head")
    over.add_argument("--weight", dest="loss_weight", type=float, metavar="W",
                      help="ranking loss's weight of LL4AL and SCAL (default: the preset's, "
                           "1.0)")
    over.add_argument("--device", default="auto",
                      help="'auto' (CUDA when available), 'cpu', 'cuda'... (default auto)")

    io_ = parser.add_argument_group("files")
    io_.add_argument("--root", metavar="DIR",
                     help="folder of the MedMNIST .npz files (default: $MEDMNIST_ROOT, then "
                          "medmnist's ~/.medmnist); on a Dask cluster every worker reads it")
    io_.add_argument("--no-verify", dest="verify", action="store_false",
                     help="skip the MD5 check of the data files (for files in MedMNIST's "
                          "format that you made yourself)")
    io_.add_argument("--out", metavar="DIR",
                     help="folder of the grid's results.csv, failures.csv and report "
                          "(default: benchmarks/results/PRESET/ in the repository)")
    io_.add_argument("--work-dir", metavar="DIR",
                     help="folder of the cells' checkpoints and per-cell files, laid out as "
                          "skal run --out (default: runs/benchmarks/ in the repository)")

    par = parser.add_argument_group("parallelism")
    par.add_argument("--jobs", type=int, metavar="N",
                     help="cells at once on this machine, in joblib worker processes "
                          "(default 1: in this process; -1: one per core); with --device "
                          "cuda they share the GPU")
    par.add_argument("--threads", type=int, metavar="N",
                     help="torch threads per cell (default: usable cores // cells at once "
                          "on the machine, at least 1)")
    dask = par.add_mutually_exclusive_group()
    dask.add_argument("--scheduler", metavar="ADDRESS",
                      help="run the cells on this Dask scheduler's workers (they need skal "
                           "installed and the data root and work dir at the same paths; a "
                           "worker process runs one cell at a time, whatever its threads)")
    dask.add_argument("--dask-workers", type=int, metavar="N",
                      help="start a local Dask cluster of N single-threaded worker processes "
                           "and run the cells on it")
    parser.add_argument("--reuse", type=Path, metavar="CSV",
                        help="a grid's results.csv (e.g. the committed one) whose complete "
                             "cells are taken as they are instead of run: after a change that "
                             "leaves them bit-identical (rerun a few of them into another --out "
                             "to check), only the cells it lacks are computed")
    parser.add_argument("--quiet", action="store_true",
                        help="no line per finished cell (the summary is still printed)")
    return parser


def _unique(values):
    return list(dict.fromkeys(values))


def select_grid(args):
    """The grid's methods, datasets and seeds, checked; raises UsageError before any work.

    Returns
    -------
    methods, datasets, seeds : lists
    root : pathlib.Path
        The data root.
    """
    if args.methods is None:
        methods = list(STRATEGIES)
    else:
        methods = _unique(args.methods)
        unknown = [m for m in methods if m not in STRATEGIES]
        if unknown:
            raise UsageError(f"unknown method(s) {', '.join(map(repr, unknown))}; valid "
                             f"methods: {', '.join(STRATEGIES)}.")

    root = resolve_root(args.root)
    if args.datasets is None:
        datasets = [flag for flag in FLAGS_2D
                    if locate_dataset(flag, args.size, root=root) is not None]
        if not datasets:
            first, last = (dataset_path(flag, args.size, root).name
                           for flag in (FLAGS_2D[0], FLAGS_2D[-1]))
            raise UsageError(
                f"no MedMNIST 2D file found in {root} (looked for {first} ... {last}); pass "
                f"--root (or set MEDMNIST_ROOT) to the folder that holds them, or name "
                f"--datasets to download.")
    else:
        datasets = []
        for flag in args.datasets:
            try:
                datasets.append(dataset_info(flag).flag)
            except DatasetError as exc:
                raise UsageError(str(exc)) from None
        datasets = _unique(datasets)

    seeds = list(DEFAULT_SEEDS) if args.seeds is None else _unique(args.seeds)
    if any(not 0 <= seed < 2**32 for seed in seeds):
        raise UsageError(f"--seeds must be in [0, 2**32), got {seeds}.")
    for option in ("cycles", "budget", "threads", "dask_workers"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise UsageError(f"--{option.replace('_', '-')} must be at least 1, got {value}.")
    if args.jobs == 0:
        raise UsageError("--jobs must be a positive number of processes, or negative "
                         "(-1: one per core).")
    if args.jobs is not None and (args.scheduler or args.dask_workers):
        raise UsageError("--jobs is for joblib on this machine; on Dask the cluster's workers "
                         "run the cells (use --dask-workers N for a local cluster of N).")
    try:
        check_settings(epochs=args.epochs, budget=args.budget, cycles=args.cycles,
                       dropout=args.dropout, device=args.device,
                       loss_weight=args.loss_weight, size=args.size)
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    return methods, datasets, seeds, root


def command_line(argv, script):
    """The command as a user would type it again (MEDMNIST_ROOT too when it chose the data)."""
    words = ["python", script, *argv]
    prefix = ""
    if "--root" not in argv and os.environ.get("MEDMNIST_ROOT"):
        prefix = f"MEDMNIST_ROOT={shlex.quote(os.environ['MEDMNIST_ROOT'])} "
    return prefix + shlex.join(words)


# ----------------------------------------------------------------------------
# The grid's files (written by this process only)
# ----------------------------------------------------------------------------


class GridResults:
    """What the parent collects: each finished cell's rows and each failed cell's error."""

    def __init__(self, out, methods, datasets):
        self.csv_path = Path(out) / "results.csv"
        self.failures_path = Path(out) / "failures.csv"
        self._order = {"method": {m: i for i, m in enumerate(methods)},
                       "dataset": {d: i for i, d in enumerate(datasets)}}
        self.results = {}  # (method, dataset, seed) -> run_cell's dict

    def _key(self, cell):
        method, dataset, seed = cell
        return (self._order["dataset"][dataset], self._order["method"][method], seed)

    def add(self, result):
        self.results[(result["method"], result["dataset"], result["seed"])] = result

    @property
    def failures(self):
        return [{"method": r["method"], "dataset": r["dataset"], "seed": r["seed"],
                 "error": r["error"]} for cell, r in sorted(self.results.items(),
                                                            key=lambda kv: self._key(kv[0]))
                if r["status"] == "failed"]

    def rows(self):
        out = []
        for cell in sorted(self.results, key=self._key):
            out.extend(sorted(self.results[cell]["rows"], key=lambda r: int(r["cycle"])))
        return format_rows(out)

    def write(self):
        """Rewrite results.csv and failures.csv atomically (failures.csv only when needed)."""
        write_csv(self.csv_path, RESULT_COLUMNS, self.rows())
        failures = self.failures
        if failures:
            write_csv(self.failures_path, FAILURE_COLUMNS, failures)
        elif self.failures_path.is_file():
            self.failures_path.unlink()


def write_report(grid, out, command):
    """benchmarks/report.py's report of the grid; stale figures of other datasets removed."""
    out = Path(out)
    stale = set(out.glob("curves_*.png"))
    if not grid.rows():
        for path in stale | {out / "report.md"}:
            path.unlink(missing_ok=True)
        return None
    paths = report.write_report(grid.csv_path, out, command=command)
    for path in stale - set(paths.values()):
        path.unlink(missing_ok=True)
    return paths["report"]


def reused_cells(path, cells):
    """The cells of ``cells`` that are complete in a grid's results.csv, as cell results.

    A cell is complete when its rows are cycles 1 to K, K being the most
    cycles any cell of its dataset has in the file. Read as written (text),
    so the rows are copied digit for digit.

    Parameters
    ----------
    path : path-like
        A ``results.csv`` of this script.
    cells : iterable of (method, dataset, seed)

    Returns
    -------
    dict
        (method, dataset, seed) -> a :func:`skal.runner.run_cell`-like result
        with status ``'reused'``.
    """
    by_cell, longest = {}, {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            cell = (row["method"], row["dataset"], int(row["seed"]))
            by_cell.setdefault(cell, []).append({k: row.get(k, "") for k in RESULT_COLUMNS})
    for (_, dataset, _), rows in by_cell.items():
        longest[dataset] = max(longest.get(dataset, 0), len(rows))
    reused = {}
    for cell in cells:
        rows = sorted(by_cell.get(cell, []), key=lambda r: int(r["cycle"]))
        if rows and [int(r["cycle"]) for r in rows] == list(range(1, longest[cell[1]] + 1)):
            reused[cell] = {"method": cell[0], "dataset": cell[1], "seed": cell[2],
                            "status": "reused", "n_resumed_cycles": 0, "rows": rows,
                            "error": None, "seconds": 0.0, "threads": 0, "host": "", "pid": 0}
    return reused


# ----------------------------------------------------------------------------
# Running the cells
# ----------------------------------------------------------------------------


def _prepare_datasets(datasets, root, verify, size=28):
    """Make each dataset's file present and checked, once, here; {flag: error} for the rest.

    A file the root lacks is read from skal's shipped copy when there is one,
    else downloaded here (where the network allows), never by several
    workers at once; the cells then load with ``download=False``.
    """
    errors = {}
    for flag in datasets:
        try:
            load_medmnist(flag, "test", size=size, root=root, verify=verify)
        except DatasetError as exc:
            errors[flag] = error_text(exc)
    return errors


def _slots_per_host(client):
    """Most cells one host of the Dask cluster runs at once: its worker processes.

    A worker with several threads still runs one cell at a time
    (:func:`skal.runner.run_cell` takes turns within a process).
    """
    info = client.scheduler_info(n_workers=-1)
    per_host = {}
    for address, worker in info.get("workers", {}).items():
        host = worker.get("host") or urlparse(address).hostname
        per_host[host] = per_host.get(host, 0) + 1
    return max(per_host.values(), default=1)


class _Dask:
    """A Dask client (to a given scheduler or a local cluster it starts), closed on exit.

    distributed's nannies set OMP_NUM_THREADS=1 (and the like) in this
    process's environment before spawning workers and leave them there;
    every later subprocess (a `skal run`, a test's) would then train with one
    thread and, thread counts changing float sums, give other numbers. The
    environment is restored on exit.
    """

    def __init__(self, scheduler=None, n_workers=None):
        self.scheduler, self.n_workers = scheduler, n_workers
        self.cluster = self.client = None
        self._environ = None

    def __enter__(self):
        # Imported only here: Dask is an optional dependency (skal[dask]).
        from distributed import Client, LocalCluster

        self._environ = dict(os.environ)
        try:
            if self.scheduler:
                self.client = Client(self.scheduler, timeout="30s")
            else:
                self.cluster = LocalCluster(n_workers=self.n_workers, threads_per_worker=1,
                                            processes=True, dashboard_address=None)
                self.client = Client(self.cluster)
                self.client.wait_for_workers(self.n_workers, timeout=120)
        except (OSError, TimeoutError) as exc:
            self.__exit__()
            where = self.scheduler or f"a local cluster of {self.n_workers} workers"
            raise UsageError(f"cannot use Dask at {where}: {type(exc).__name__}: {exc}") from None
        return self

    def __exit__(self, *exc_info):
        try:
            if self.client is not None:
                self.client.close()
            if self.cluster is not None:
                self.cluster.close()
        finally:
            if self._environ is not None:
                restore_environ(self._environ)


def restore_environ(saved):
    """Make ``os.environ`` equal to ``saved`` again (a dict taken earlier)."""
    for key in set(os.environ) - set(saved):
        del os.environ[key]
    for key, value in saved.items():
        if os.environ.get(key) != value:
            os.environ[key] = value


def _describe(result, done, total):
    cell = f"{result['method']} {result['dataset']} seed {result['seed']}"
    head = f"[{done:>{len(str(total))}}/{total}] {cell}:"
    if result["status"] == "failed":
        return f"{head} FAILED after {result['seconds']:.1f} s: {result['error']}"
    rows = result["rows"]
    what = {"computed": f"computed {len(rows)} cycles",
            "resumed": f"resumed after cycle {result['n_resumed_cycles']} of {len(rows)}",
            "loaded": "loaded from its checkpoint (not recomputed)"}[result["status"]]
    last = rows[-1] if rows else {}
    score = (f"; final ACC {last['acc']:.4f} AUC {last['auc']:.4f}"
             if last.get("acc") is not None and last.get("auc") is not None else "")
    return (f"{head} {what}, {result['seconds']:.1f} s "
            f"({result['threads']} thread(s), {result['host']}:{result['pid']}){score}")


def run_cells(cells, settings, *, jobs=None, threads=None, scheduler=None, dask_workers=None):
    """Run the cells, in parallel; yields each run_cell result as the cell finishes.

    Parameters
    ----------
    cells : list of (method, dataset, seed)
    settings : dict
        Keyword arguments of :func:`skal.runner.run_trial` common to all cells.
    jobs : int, optional
        joblib processes on this machine (1, the default: in this process).
    threads : int, optional
        torch threads per cell; by default usable cores // cells at once.
    scheduler : str, optional
        A Dask scheduler's address.
    dask_workers : int, optional
        Start a local Dask cluster of this many single-threaded processes.
    """
    def tasks(concurrent):
        for method, dataset, seed in cells:
            yield delayed(run_cell)(method, dataset, seed, threads=threads,
                                    concurrent=concurrent, **settings)

    if scheduler or dask_workers:
        with _Dask(scheduler, dask_workers) as dask:
            concurrent = min(len(cells), _slots_per_host(dask.client))
            with parallel_config(backend="dask"):
                parallel = Parallel(return_as="generator_unordered", batch_size=1)
                yield from parallel(tasks(concurrent))
        return
    n_jobs = min(len(cells), effective_n_jobs(1 if jobs is None else jobs))
    parallel = Parallel(n_jobs=n_jobs, return_as="generator_unordered", batch_size=1)
    yield from parallel(tasks(n_jobs))


def main(argv=None, prog=None):
    """Entry point; returns the exit status (argparse exits 2 itself for bad options).

    Parameters
    ----------
    argv : list of str, optional
        Arguments (default ``sys.argv[1:]``).
    prog : str, optional
        How the script was called, for the command recorded in the report
        (default: ``sys.argv[0]`` when run as a script, else
        ``benchmarks/run_all.py``).
    """
    if argv is None:
        argv, prog = sys.argv[1:], prog or sys.argv[0]
    argv = list(argv)
    prog = prog or "benchmarks/run_all.py"
    args = build_parser(Path(prog).name).parse_args(argv)
    err = sys.stderr
    try:
        methods, datasets, seeds, root = select_grid(args)
        out = Path(args.out).absolute() if args.out else default_out(args.preset, args.size)
        work_dir = Path(args.work_dir).absolute() if args.work_dir else DEFAULT_WORK_DIR
        suffix = initial_suffix(args.initial)
        if suffix:  # another first batch: other folders, never mixed
            out = out if args.out else out.with_name(out.name + suffix)
            work_dir = work_dir if args.work_dir else work_dir.with_name(work_dir.name + suffix)
        if args.reuse is not None and not args.reuse.is_file():
            raise UsageError(f"--reuse {args.reuse}: no such file; give a results.csv this "
                             f"script wrote (the committed grid's, for instance).")
        if work_dir == out or out in work_dir.parents:
            raise UsageError(f"--work-dir {work_dir} is inside --out {out}: checkpoints must "
                             f"not go with the results; choose another --work-dir.")
    except UsageError as exc:
        print(f"{Path(prog).name}: error: {exc}", file=err)
        return EXIT_USAGE

    command = command_line(argv, prog)
    cells = [(m, d, s) for d in datasets for m in methods for s in seeds]
    total = len(cells)
    print(f"grid: {len(methods)} method(s) x {len(datasets)} dataset(s) x {len(seeds)} "
          f"seed(s) = {total} cell(s), preset {args.preset}, {args.size}x{args.size} "
          f"images; data {root}; checkpoints "
          f"{work_dir}; results {out}", file=err)
    start = time.perf_counter()
    grid = GridResults(out, methods, datasets)
    data_errors = _prepare_datasets(datasets, root, args.verify, args.size)
    done = 0
    for method, dataset, seed in cells:
        if dataset in data_errors:
            done += 1
            result = {"method": method, "dataset": dataset, "seed": seed, "status": "failed",
                      "rows": [], "error": data_errors[dataset], "seconds": 0.0}
            grid.add(result)
            if not args.quiet:
                print(_describe(result, done, total), file=err)
    to_run = [cell for cell in cells if cell[1] not in data_errors]
    if args.reuse is not None:
        reused = reused_cells(args.reuse, to_run)
        for result in reused.values():
            grid.add(result)
        done += len(reused)
        to_run = [cell for cell in to_run if cell not in reused]
        print(f"{len(reused)} cell(s) taken from {args.reuse} as they are", file=err)
    settings = dict(preset=args.preset, out=str(work_dir), epochs=args.epochs,
                    budget=args.budget, cycles=args.cycles, model=args.model,
                    dropout=args.dropout, loss_weight=args.loss_weight, size=args.size,
                    device=args.device, root=str(root),
                    verify=args.verify, download=False, initial=args.initial)
    status = EXIT_OK
    try:
        if to_run:
            for result in run_cells(to_run, settings, jobs=args.jobs, threads=args.threads,
                                    scheduler=args.scheduler, dask_workers=args.dask_workers):
                done += 1
                grid.add(result)
                grid.write()
                if not args.quiet:
                    print(_describe(result, done, total), file=err)
    except KeyboardInterrupt:
        grid.write()
        print(f"{Path(prog).name}: interrupted; {grid.csv_path} has the {len(grid.results)} "
              f"cell(s) that finished. Run the same command again to go on (finished cells "
              f"are loaded, interrupted ones resume).", file=err)
        return EXIT_INTERRUPTED
    except UsageError as exc:
        print(f"{Path(prog).name}: error: {exc}", file=err)
        return EXIT_USAGE
    except Exception as exc:  # a worker died (killed, out of memory) or the cluster failed
        message = f"not run: {error_text(exc)}"
        for method, dataset, seed in to_run:
            if (method, dataset, seed) not in grid.results:
                grid.add({"method": method, "dataset": dataset, "seed": seed,
                          "status": "failed", "rows": [], "error": message, "seconds": 0.0})
    grid.write()

    report = None
    try:
        report = write_report(grid, out, command)
    except Exception as exc:  # the results are written; say why the report is not
        print(f"{Path(prog).name}: the report failed: {type(exc).__name__}: {exc}", file=err)
        status = EXIT_FAILED

    counts = {}
    for result in grid.results.values():
        counts[result["status"]] = counts.get(result["status"], 0) + 1
    print(f"{total} cell(s) in {time.perf_counter() - start:.1f} s: "
          + ", ".join(f"{counts.get(s, 0)} {s}" for s in ("computed", "resumed", "loaded",
                                                          "failed"))
          + (f", {counts['reused']} reused" if counts.get("reused") else ""))
    if counts.get("loaded", 0) == total:
        print("All cells were already complete; nothing was recomputed.")
    failures = grid.failures
    if failures:
        print(f"{len(failures)} failed cell(s) (rerun the same command to retry them):")
        for failure in failures:
            print(f"  {failure['method']} {failure['dataset']} seed {failure['seed']}: "
                  f"{failure['error']}")
        print(f"failures: {grid.failures_path}")
        status = EXIT_FAILED
    print(f"results: {grid.csv_path} ({len(grid.rows())} rows)")
    print(f"report: {report}" if report else "report: none (no cell finished)")
    return status


if __name__ == "__main__":
    raise SystemExit(main())
