"""Command line: ``skal run ...`` and the study's ``python main.py ...``.

It only wires the pieces together: a preset and overrides
(:mod:`skal.protocols`), the data (:mod:`skal.data`), the experiment
(:mod:`skal.experiment`), and the output folder: one tidy CSV and the labeled
indices, rewritten atomically after every cycle.

Output layout, under ``--out`` (default ``runs/``)::

    <out>/<preset>/<dataset>/<method>/results.csv                   all trials
    <out>/<preset>/<dataset>/<method>/trial_<seed>/results.csv      this trial's rows
    <out>/<preset>/<dataset>/<method>/trial_<seed>/labeled.csv
    <out>/<preset>/<dataset>/<method>/trial_<seed>/checkpoint/checkpoint.pkl

Running the same command again resumes every unfinished trial from its last
completed cycle; a finished trial is loaded, not recomputed.

One trial writes only inside its own ``trial_<seed>/`` folder, so trials of
the same method can run at the same time in different processes (as
``benchmarks/run_all.py`` runs them); the method's ``results.csv`` is
rebuilt from the trials' files by the command that runs them.

From Python, :func:`run_trial` runs one trial exactly as ``skal run`` does
(the command calls it for each trial), and :func:`run_cell` wraps it for a
benchmark runner: it never raises, sets torch's thread count, and returns the
trial's rows.

Exit status: 0 on success, 2 for bad options or settings (unknown method,
dataset or preset; a budget larger than the pool; a query size of 0; a
strategy the estimator cannot serve; a checkpoint of another run), 1 when
the data cannot be loaded (missing offline, corrupt).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import os
import sys
import threading
import time
from pathlib import Path

import numpy as np
from skorch.callbacks import Callback
from tqdm import tqdm

__all__ = ["main", "run_main", "build_parser", "build_run_parser", "EpochProgressBar",
           "CSV_COLUMNS", "CELL_COLUMNS", "SettingsError", "check_settings", "run_trial",
           "run_cell", "trial_dir"]

#: Columns of ``results.csv``, one row per (trial, cycle).
CSV_COLUMNS = ("method", "dataset", "trial", "cycle", "n_labeled", "acc", "auc",
               "train_seconds", "query_seconds")

#: Keys of the rows :func:`run_cell` returns (a benchmark grid's tidy columns:
#: the trial is named ``seed``).
CELL_COLUMNS = ("method", "dataset", "seed", "cycle", "n_labeled", "acc", "auc",
                "train_seconds", "query_seconds")

_EXIT_USAGE, _EXIT_DATA = 2, 1


# ----------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------


def _choices():
    # Valid values come from the registries, never retyped here.
    from skal.data import FLAGS_2D
    from skal.models import MODELS
    from skal.protocols import PRESETS
    from skal.query import STRATEGIES

    return list(STRATEGIES), list(FLAGS_2D), list(PRESETS), sorted(MODELS)


def _add_run_arguments(parser):
    methods, flags, presets, models = _choices()
    parser.add_argument("--method", required=True, choices=methods, metavar="METHOD",
                        help=f"query strategy, one of: {', '.join(methods)}")
    parser.add_argument("--dataset", required=True, choices=flags, metavar="DATASET",
                        help=f"MedMNIST 2D dataset, one of: {', '.join(flags)}")
    parser.add_argument("--preset", default="paper", choices=presets,
                        help="protocol: 'paper' reproduces the study (ResNet-18, 50 epochs a "
                             "cycle; default), 'fast' is CPU-sized (small CNN, 8 epochs)")
    parser.add_argument("--trials", type=int, metavar="N",
                        help="number of trials (default: the preset's; paper 5, fast 1)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the first trial; trial t uses seed + t (default 0)")
    parser.add_argument("--cycles", type=int, metavar="N",
                        help="trainings per trial (default: the preset's, 10)")
    parser.add_argument("--budget", type=int, metavar="N",
                        help="items labeled per cycle, also the initial set's size "
                             "(default: the study's budget for the dataset)")
    parser.add_argument("--epochs", type=int, metavar="N",
                        help="epochs per cycle (default: the preset's); the LR milestone "
                             "and LL4AL's epoch_loss scale with it")
    parser.add_argument("--model", choices=models,
                        help="backbone (default: the preset's: paper resnet18, fast small_cnn)")
    parser.add_argument("--dropout", type=float, metavar="P",
                        help="dropout before the head (default 0, the study's network; "
                             "methods needing MC dropout get the preset's 0.3)")
    parser.add_argument("--device", default="auto",
                        help="'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:1'...")
    parser.add_argument("--root", metavar="DIR",
                        help="folder of the MedMNIST .npz files (default: $MEDMNIST_ROOT, "
                             "then medmnist's ~/.medmnist)")
    parser.add_argument("--out", default="runs", metavar="DIR",
                        help="output folder (default runs/)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip the MD5 check of the data file (for files you made "
                             "yourself in MedMNIST's format)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    return parser


_EPILOG = ("Results go to OUT/PRESET/DATASET/METHOD/: results.csv (one row per trial and "
           "cycle; a trial is named by its seed), trial_SEED/results.csv (that trial's rows) "
           "and trial_SEED/labeled.csv (the cycle in which each training-split index was "
           "first trained on), rewritten after every cycle. Running the same command again "
           "resumes unfinished trials after their last completed cycle; finished ones are not "
           "recomputed. Exit status: 2 for bad options or settings, 1 when the data cannot be "
           "loaded.")


def build_parser(prog="skal"):
    """The ``skal`` parser, with its ``run`` sub-command."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Active learning for MedMNIST with skorch and modAL.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", help="run a simulated active-learning experiment",
        description="Run a simulated active-learning experiment (default preset: paper, "
                    "the study's protocol).", epilog=_EPILOG)
    _add_run_arguments(run)
    from skal.label.cli import add_label_commands  # skal label init/serve/query/teach/status

    add_label_commands(commands)
    return parser


def build_run_parser(prog="main.py"):
    """The parser of ``main.py``: the ``run`` options at the top level, as the study's script."""
    parser = argparse.ArgumentParser(
        prog=prog, epilog=_EPILOG,
        description="Reproduce the MedMNIST active-learning study, e.g. "
                    "`python main.py --method random --dataset organamnist` "
                    "(default preset: paper).")
    return _add_run_arguments(parser)


# ----------------------------------------------------------------------------
# Progress
# ----------------------------------------------------------------------------


class EpochProgressBar(Callback):
    """A skorch callback showing one tqdm bar per ``fit``, advanced every epoch.

    It does not change what is computed (``affects_results = False``), so a
    run checkpointed with it resumes without it, and the reverse.

    Parameters
    ----------
    position : int, default=2
        tqdm's line.
    desc : str, default='epochs'
    """

    affects_results = False

    def __init__(self, position=2, desc="epochs"):
        self.position = position
        self.desc = desc

    def on_train_begin(self, net, **kwargs):
        self._bar = tqdm(total=net.max_epochs, desc=self.desc, position=self.position,
                         leave=False, dynamic_ncols=True)

    def on_epoch_end(self, net, **kwargs):
        bar = getattr(self, "_bar", None)
        if bar is not None:
            loss = net.history[-1].get("train_loss")
            if loss is not None:
                bar.set_postfix(loss=f"{loss:.3f}", refresh=False)
            bar.update(1)

    def on_train_end(self, net, **kwargs):
        bar = getattr(self, "_bar", None)
        if bar is not None:
            bar.close()
        self._bar = None

    def __getstate__(self):
        # A live tqdm holds a lock and a stream: never pickle it with the model.
        state = dict(self.__dict__)
        state.pop("_bar", None)
        return state


# ----------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------


def trial_dir(out, preset, dataset, method, seed):
    """The folder of one trial: ``<out>/<preset>/<dataset>/<method>/trial_<seed>``.

    Everything :func:`run_trial` writes is inside it: ``results.csv``,
    ``labeled.csv`` and ``checkpoint/``.

    Parameters
    ----------
    out : path-like
    preset, dataset, method : str
        The preset's name, the MedMNIST flag and the strategy's name.
    seed : int

    Returns
    -------
    pathlib.Path
    """
    return Path(out) / str(preset) / str(dataset) / str(method) / f"trial_{seed}"


def _curve_rows(method, dataset, seed, experiment, trial_key="trial"):
    """The experiment's learning curve as rows (numbers as they were measured)."""
    return [{"method": method, "dataset": dataset, trial_key: int(seed),
             "cycle": int(r["cycle"]), "n_labeled": int(r["n_labeled"]),
             "acc": r.get("acc"), "auc": r.get("auc"),
             "train_seconds": r["train_seconds"], "query_seconds": r["query_seconds"]}
            for r in experiment.learning_curve_]


def _csv_bytes(rows, columns):
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return table.getvalue().encode()


def _read_rows(path):
    """Rows of a results.csv keyed by (trial, cycle); {} when there is none."""
    if not Path(path).is_file():
        return {}
    with open(path, newline="") as fh:
        return {(int(r["trial"]), int(r["cycle"])): r for r in csv.DictReader(fh)}


def _write_trial(path, method, dataset, seed, experiment):
    """Rewrite the trial's results.csv and labeled.csv from the experiment's state."""
    from skal.experiment import atomic_write

    rows = [{**row, **{key: csv_number(row[key]) for key in
                       ("acc", "auc", "train_seconds", "query_seconds")}}
            for row in _curve_rows(method, dataset, seed, experiment)]
    content = _csv_bytes(rows, CSV_COLUMNS)
    atomic_write(path / "results.csv", lambda fh: fh.write(content))

    # Item `index` of the training split was first trained on in `cycle`.
    labeled = io.StringIO()
    labeled.write("cycle,index\n")
    batches = [experiment.initial_indices_] + [
        r["queried"] for r in experiment.learning_curve_[:-1]]
    for cycle, batch in enumerate(batches[:len(experiment.learning_curve_)], start=1):
        labeled.writelines(f"{cycle},{int(i)}\n" for i in batch)
    atomic_write(path / "labeled.csv", lambda fh: fh.write(labeled.getvalue().encode()))


class _RunFolder:
    """The output of one (preset, dataset, method): results.csv over its trials.

    Each trial writes only its own ``trial_<seed>/results.csv``; this
    folder's ``results.csv`` is rebuilt from all of them (plus rows of trials
    that have no file of their own, e.g. from an older skal), so trials run
    at the same time by different processes never lose each other's rows for
    long: the next rebuild puts them back.
    """

    def __init__(self, out, preset, dataset, method):
        self.path = Path(out) / preset / dataset / method
        self.csv_path = self.path / "results.csv"
        self.method, self.dataset = method, dataset
        self.rows = _read_rows(self.csv_path)

    def trial_dir(self, seed):
        return self.path / f"trial_{seed}"

    def refresh(self):
        """Rebuild results.csv from the trials' own files."""
        from skal.experiment import atomic_write

        per_trial = {}
        for path in self.path.glob("trial_*/results.csv"):
            per_trial.update(_read_rows(path))
        fresh = {trial for trial, _ in per_trial}
        rows = {key: row for key, row in self.rows.items() if key[0] not in fresh}
        rows.update(per_trial)
        self.rows = rows
        content = _csv_bytes([rows[key] for key in sorted(rows)], CSV_COLUMNS)
        atomic_write(self.csv_path, lambda fh: fh.write(content))


def csv_number(value):
    """A number as CSV text: ``repr(float(value))``, or '' for None.

    repr keeps every digit, so a resumed run can be compared exactly.
    """
    return "" if value is None else repr(float(value))


def _summary(rows, seeds):
    """Mean (and std over trials) of ACC and AUC per cycle, as text."""
    by_cycle = {}
    for (trial, cycle), row in rows.items():
        if trial in seeds and row["acc"] != "":
            by_cycle.setdefault(cycle, []).append((float(row["n_labeled"]), float(row["acc"]),
                                                   float(row["auc"] or math.nan)))
    lines = [f"{'cycle':>5} {'labeled':>8} {'ACC':>15} {'AUC':>15}"]
    for cycle in sorted(by_cycle):
        values = np.array(by_cycle[cycle])
        acc, auc = values[:, 1], values[:, 2]
        lines.append(f"{cycle:>5} {int(values[0, 0]):>8} {acc.mean():>8.4f} ± {acc.std():.3f}"
                     f" {auc.mean():>8.4f} ± {auc.std():.3f}")
    return "\n".join(lines)


# ----------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------


class SettingsError(ValueError):
    """Bad settings found before any training (on the command line: one line, exit status 2)."""


_UsageError = SettingsError


def check_settings(*, trials=None, epochs=None, dropout=None, device="auto", seed=None):
    """Refuse settings that the experiment would only reject mid-run (or with a traceback).

    Parameters
    ----------
    trials, epochs : int, optional
        At least 1 when given.
    dropout : float, optional
        In [0, 1) when given.
    device : str, default='auto'
        'auto', or a device torch knows; a CUDA device needs that GPU here.
    seed : int, optional
        A trial's seed: numpy and torch take 0 <= seed < 2**32.

    Raises
    ------
    SettingsError
        With a one-line message naming the command-line option.
    """
    if trials is not None and trials < 1:
        raise SettingsError(f"--trials must be at least 1, got {trials}.")
    if epochs is not None and epochs < 1:
        raise SettingsError(f"--epochs must be at least 1, got {epochs}.")
    if dropout is not None and not 0 <= dropout < 1:
        raise SettingsError(f"--dropout must be in [0, 1), got {dropout}.")
    if seed is not None and not 0 <= seed < 2**32:
        raise SettingsError(f"--seed must be in [0, 2**32), got {seed}.")
    if device != "auto":
        import torch

        try:
            parsed = torch.device(device)
        except (RuntimeError, TypeError):
            raise SettingsError(f"--device {device}: not a device torch knows; use auto, cpu, "
                                f"cuda or cuda:N.") from None
        if parsed.type == "cuda":
            if not torch.cuda.is_available():
                raise SettingsError(f"--device {device}: CUDA is not available here; "
                                    f"use --device cpu (or auto).")
            if parsed.index is not None and parsed.index >= torch.cuda.device_count():
                raise SettingsError(f"--device {device}: this machine has "
                                    f"{torch.cuda.device_count()} GPU(s).")


def _check_args(args):
    check_settings(trials=args.trials, epochs=args.epochs, dropout=args.dropout,
                   device=args.device, seed=args.seed)
    if args.trials is not None:
        check_settings(seed=args.seed + args.trials - 1)


def _load_data(flag, root=None, verify=True, download=None, eval_split="test"):
    """(X_train, y_train, X_eval, y_eval) of a dataset, as the command line trains on
    them: the training split is the pool, ``eval_split`` (the preset's) is scored."""
    from skal.data import load_medmnist

    X, y = load_medmnist(flag, "train", root=root, download=download, verify=verify)
    X_eval, y_eval = load_medmnist(flag, eval_split, root=root, download=download, verify=verify)
    return X, y, X_eval, y_eval


def run_trial(method, dataset, seed, *, preset="paper", out="runs", epochs=None, budget=None,
              cycles=None, model=None, dropout=None, device="auto", root=None, verify=True,
              download=None, data=None, progress=False, on_cycle_end=None):
    """Run one trial of one (preset, dataset, method) exactly as ``skal run`` does.

    Seeds the global generators with ``seed``, builds the experiment with
    :func:`skal.protocols.build_experiment`, and fits it on the dataset's
    training split (the pool) with its test split evaluated after every
    cycle. The trial's folder (:func:`trial_dir`) gets its checkpoint after
    every cycle and ``results.csv`` and ``labeled.csv`` rewritten atomically
    after every cycle; nothing outside it is written. A finished trial is
    loaded from its checkpoint, not recomputed; an unfinished one resumes
    after its last completed cycle.

    Parameters
    ----------
    method : str
        A registered query strategy.
    dataset : str
        A MedMNIST 2D flag.
    seed : int
        The trial's seed.
    preset : str or Preset, default='paper'
    out : path-like, default='runs'
        The output root, as ``--out``.
    epochs, budget, cycles, model, dropout : optional
        Overrides of the preset, as the options of the same names.
    device : str, default='auto'
    root : path-like, optional
        Folder of the MedMNIST files (see :func:`skal.data.resolve_root`).
    verify : bool, default=True
        Check the file's MD5.
    download : bool or None, default=None
        Passed to :func:`skal.data.load_medmnist`.
    data : tuple of 4 arrays, optional
        ``(X_train, y_train, X_test, y_test)`` already loaded (the command
        loads them once for all its trials); ``root``, ``verify`` and
        ``download`` are then unused.
    progress : bool, default=False
        Show a bar over the cycles and one over each training's epochs.
    on_cycle_end : callable or list of callables, optional
        ``hook(record)`` after each cycle computed now, once the trial's
        files are written.

    Returns
    -------
    experiment : ActiveLearningClassifier
        Fitted; ``learning_curve_`` holds every cycle, ``n_resumed_cycles_``
        the cycles that came from the checkpoint.

    Raises
    ------
    SettingsError, ExperimentConfigError, CheckpointMismatchError
        Bad settings, found before any training.
    skal.data.DatasetError
        The data cannot be loaded (missing offline, corrupt).
    """
    from skal.data import dataset_info
    from skal.protocols import build_experiment, get_preset, seed_everything

    preset = get_preset(preset)
    info = dataset_info(dataset)
    check_settings(epochs=epochs, dropout=dropout, device=device, seed=seed)
    if data is None:
        data = _load_data(info.flag, root=root, verify=verify, download=download,
                          eval_split=preset.eval_split)
    X, y, X_test, y_test = data
    path = trial_dir(out, preset.name, info.flag, method, seed)
    if on_cycle_end is None:
        hooks = []
    elif isinstance(on_cycle_end, (list, tuple)):
        hooks = list(on_cycle_end)
    else:
        hooks = [on_cycle_end]

    seed_everything(seed)
    callbacks = [("epoch_progress", EpochProgressBar(position=2))] if progress else []
    experiment = build_experiment(
        preset, method, info, seed, epochs=epochs, budget=budget, cycles=cycles, model=model,
        device=device, dropout=dropout, callbacks=callbacks, checkpoint_dir=path / "checkpoint")
    cycle_bar = tqdm(total=experiment.n_cycles, desc=f"cycles (trial {seed})", position=1,
                     leave=False, disable=not progress, dynamic_ncols=True)

    def after_cycle(record):
        _write_trial(path, method, info.flag, seed, experiment)
        cycle_bar.n = record["cycle"]
        if record.get("acc") is not None:
            cycle_bar.set_postfix(acc=f"{record['acc']:.3f}", refresh=False)
        cycle_bar.refresh()
        for hook in hooks:
            hook(record)

    experiment.on_cycle_end = after_cycle
    try:
        experiment.fit(X, y, X_eval=X_test, y_eval=y_test)
    finally:
        cycle_bar.close()
    _write_trial(path, method, info.flag, seed, experiment)  # cycles loaded from the checkpoint
    return experiment


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: A trial seeds the process's global generators and sets torch's thread count, so
#: two cells in threads of one process (a Dask worker with several threads) would
#: change each other's numbers: they take turns.
_ONE_CELL_AT_A_TIME = threading.Lock()


def run_cell(method, dataset, seed, *, threads=None, concurrent=None, **settings):
    """Run one (method, dataset, seed) cell of a benchmark grid: :func:`run_trial`, never raising.

    Meant to be shipped to worker processes (joblib, Dask): it is importable
    from skal, takes and returns plain picklable values, writes only the
    trial's own folder, and reports an error instead of raising it, so one
    failing cell does not stop the others. Cells called from several threads
    of one process run one after the other (a trial seeds the process's
    global generators), so parallelism comes from processes.

    Parameters
    ----------
    method, dataset : str
    seed : int
    threads : int, optional
        torch intra-op threads while the cell runs (restored afterwards).
    concurrent : int, optional
        When ``threads`` is not given: how many cells run at once on this
        machine (processes running cells); the cell then uses
        ``max(1, usable cores // concurrent)`` threads, counting the cores
        of the machine it runs on.
    **settings
        Keyword arguments of :func:`run_trial` (``preset``, ``out``,
        ``epochs``, ``root``, ``verify``, ...); ``progress`` defaults to off.

    Returns
    -------
    result : dict
        ``method``, ``dataset``, ``seed``; ``status``: ``'computed'`` (every
        cycle trained now), ``'resumed'`` (continued after
        ``n_resumed_cycles`` cycles from its checkpoint), ``'loaded'``
        (complete in its checkpoint: nothing trained) or ``'failed'``;
        ``rows``: one dict per cycle with the keys :data:`CELL_COLUMNS`
        (empty when failed); ``error``: ``'Type: message'`` or None;
        ``seconds`` (wall time), ``threads``, ``host`` and ``pid`` of the
        process that ran it.
    """
    import platform

    import torch

    if threads is None and concurrent is not None:
        threads = max(1, _usable_cores() // max(1, int(concurrent)))
    with _ONE_CELL_AT_A_TIME:
        start = time.perf_counter()
        before = torch.get_num_threads()
        result = {"method": method, "dataset": dataset, "seed": int(seed), "status": "failed",
                  "n_resumed_cycles": 0, "rows": [], "error": None,
                  "threads": int(threads) if threads else before,
                  "host": platform.node(), "pid": os.getpid()}
        try:
            if threads:
                torch.set_num_threads(int(threads))
            experiment = run_trial(method, dataset, seed, **settings)
        except Exception as exc:  # noqa: BLE001 - reported, not raised: the others go on
            result["error"] = f"{type(exc).__name__}: {' '.join(str(exc).split())}"
        else:
            resumed = int(experiment.n_resumed_cycles_)
            result.update(
                status=("loaded" if resumed == experiment.n_cycles else
                        "resumed" if resumed else "computed"),
                n_resumed_cycles=resumed,
                rows=_curve_rows(method, dataset, seed, experiment, trial_key="seed"))
        finally:
            torch.set_num_threads(before)
            result["seconds"] = time.perf_counter() - start
    return result


def _run(args, err):
    from skal.data import dataset_info
    from skal.protocols import get_preset

    preset = get_preset(args.preset)
    info = dataset_info(args.dataset)
    _check_args(args)
    n_trials = preset.n_trials if args.trials is None else args.trials
    data = _load_data(info.flag, root=args.root, verify=args.verify, eval_split=preset.eval_split)
    folder = _RunFolder(args.out, preset.name, info.flag, args.method)
    seeds = [args.seed + t for t in range(n_trials)]
    quiet = args.quiet

    trial_bar = tqdm(seeds, desc="trials", position=0, disable=quiet, dynamic_ncols=True)
    loaded = 0
    for seed in trial_bar:
        experiment = run_trial(
            args.method, info.flag, seed, preset=preset, out=args.out, epochs=args.epochs,
            budget=args.budget, cycles=args.cycles, model=args.model, dropout=args.dropout,
            device=args.device, data=data, progress=not quiet,
            on_cycle_end=lambda record: folder.refresh())
        folder.refresh()  # also covers cycles loaded from the checkpoint
        if experiment.n_resumed_cycles_ == experiment.n_cycles:
            loaded += 1
            if not quiet:
                tqdm.write(f"trial {seed}: already complete in {folder.trial_dir(seed)}; "
                           f"loaded, not recomputed", file=err)
        elif experiment.n_resumed_cycles_ and not quiet:
            tqdm.write(f"trial {seed}: resumed after cycle {experiment.n_resumed_cycles_}",
                       file=err)
    trial_bar.close()
    if not quiet:
        if loaded == len(seeds):
            print(f"All {loaded} trial(s) were already complete; nothing was recomputed.",
                  file=err)
        print(_summary(folder.rows, set(seeds)))
        print(f"results: {folder.csv_path}")
    return 0


def _execute(args, prog):
    from skal.data import ChecksumError, DatasetError, DatasetFormatError, DatasetNotFoundError
    from skal.experiment import CheckpointMismatchError, ExperimentConfigError

    err = sys.stderr
    try:
        return _run(args, err)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; run the same command again to resume after the last "
              f"completed cycle.", file=err)
        return 130
    except CheckpointMismatchError as exc:
        folder = exc.path.parent.parent if exc.path is not None else args.out
        print(f"{prog}: error: {folder} holds a run made with other settings "
              f"({', '.join(exc.differing)} differ); rerun with the same options, use "
              f"another --out, or delete that folder to start over.", file=err)
        return _EXIT_USAGE
    except (DatasetNotFoundError, ChecksumError, DatasetFormatError) as exc:
        print(f"{prog}: error: {exc}", file=err)
        return _EXIT_DATA
    except (_UsageError, ExperimentConfigError, DatasetError) as exc:
        print(f"{prog}: error: {exc}", file=err)
        return _EXIT_USAGE


def main(argv=None):
    """Entry point of the ``skal`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the program name, e.g. ``['run', '--method', 'random',
        '--dataset', 'breastmnist']``; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        Exit status (argparse exits with 2 itself for unknown options and choices).
    """
    args = build_parser("skal").parse_args(argv)
    if args.command == "label":
        from skal.label.cli import run_label

        return run_label(args)
    return _execute(args, "skal")


def run_main(argv=None, prog="main.py"):
    """Entry point of ``main.py``: the ``run`` options without the sub-command."""
    args = build_run_parser(prog).parse_args(argv)
    return _execute(args, prog)
