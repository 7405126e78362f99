"""Run the study's trials: one trial as ``skal run`` runs it, and one benchmark cell.

The command line (:mod:`skal.cli`) and the benchmark grid
(``benchmarks/run_all.py``) both run trials through this module, so a cell of
the grid gives exactly the numbers of ``skal run --trials 1`` with the same
settings.

Output layout, under ``out``::

    <out>/<preset>/<dataset>/<method>/results.csv                   all trials
    <out>/<preset>/<dataset>/<method>/trial_<seed>/results.csv      this trial's rows
    <out>/<preset>/<dataset>/<method>/trial_<seed>/labeled.csv
    <out>/<preset>/<dataset>/<method>/trial_<seed>/checkpoint/checkpoint.pkl

where ``<dataset>`` is the MedMNIST flag at the study's 28x28 and, at another
image size, the flag with the size as medmnist names its files
(``pneumoniamnist_64``): runs at different sizes never share a folder.

One trial writes only inside its own ``trial_<seed>/`` folder, so trials of
the same method can run at the same time in different processes; the
method's ``results.csv`` is rebuilt from the trials' files by
:class:`RunFolder`. A trial is named by its seed (see :mod:`skal.results`).
"""

from __future__ import annotations

import csv
import io
import math
import os
import platform
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from skorch.callbacks import Callback as SkorchCallback
from sklearn.model_selection import train_test_split
from tqdm import tqdm

from skal.callbacks import Callback
from skal.data import DatasetInfo, dataset_info, load_medmnist
from skal.exceptions import BudgetWarning
from skal.image_folder import ImageFolder, ImageFolderError, load_image_folder, read_labels_csv
from skal.protocols import build_experiment, get_preset, trial_globals
from skal.registry import SIZES
from skal.results import (RESULT_COLUMNS, atomic_write, curve_rows, error_text, format_rows,
                          read_rows, write_csv)
from skal.settings import check_setting

__all__ = ["EpochProgressBar", "CycleProgressBar", "TrialFiles", "RunFolder", "SettingsError",
           "check_settings", "load_data", "run_trial", "run_cell", "trial_dir", "dataset_folder",
           "summary"]


# ----------------------------------------------------------------------------
# Settings
# ----------------------------------------------------------------------------


class SettingsError(ValueError):
    """Bad settings found before any training (on the command line: one line, exit status 2)."""


def check_settings(*, trials=None, epochs=None, budget=None, cycles=None, dropout=None,
                   device="auto", seed=None, loss_weight=None, size=None):
    """Refuse settings that the experiment would only reject mid-run (or with a traceback).

    Parameters
    ----------
    trials, epochs, budget, cycles, dropout, seed, loss_weight, size : optional
        Checked, when given, against their rules in :data:`skal.settings.RULES`
        (``loss_weight`` is ``--weight``).
    device : str, default='auto'
        'auto', or a device torch knows; a CUDA device needs that GPU here.

    Raises
    ------
    SettingsError
        With a one-line message naming the command-line option.
    """
    # The rules are skal.settings.RULES; here each gets its flag's name.
    for option, value, rule in (("--trials", trials, "trials"), ("--epochs", epochs, "epochs"),
                                ("--budget", budget, "budget"), ("--cycles", cycles, "cycles"),
                                ("--dropout", dropout, "dropout"),
                                ("--weight", loss_weight, "loss_weight"),
                                ("--size", size, "size"), ("--seed", seed, "seed")):
        if value is not None:
            check_setting(option, value, rule, error=SettingsError)
    if device != "auto":
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


def load_data(flag, root=None, verify=True, download=None, eval_split="test", size=28):
    """(X_train, y_train, X_eval, y_eval) of a dataset, as a trial trains on them.

    The training split is the pool, ``eval_split`` (the preset's) is scored;
    images are ``size`` x ``size`` (:func:`skal.data.load_medmnist`).
    """
    X, y = load_medmnist(flag, "train", size=size, root=root, download=download, verify=verify)
    X_eval, y_eval = load_medmnist(flag, eval_split, size=size, root=root, download=download,
                                   verify=verify)
    return X, y, X_eval, y_eval


def load_folder(images, labels, size=28, test_fraction=0.2, seed=0):
    """A folder of labeled images as a dataset a trial runs on, like a MedMNIST flag.

    Every image must have a label: the pool's labels are the simulated
    oracle. A stratified ``test_fraction`` of the images (scikit-learn's
    ``train_test_split``, seeded) is held out and scored after every cycle;
    the rest is the pool.

    Parameters
    ----------
    images : path-like or skal.image_folder.ImageFolder
        Folder of PNG/JPEG images (see :func:`skal.image_folder.load_image_folder`),
        or one already read (then the labels of the files it skipped are allowed
        in ``labels`` and ignored).
    labels : path-like
        ``file,label`` CSV with a class name for every image.
    size : int, default=28
        Image side the images are resized to.
    test_fraction : float, default=0.2
    seed : int, default=0
        Seeds the held-out split (the same for every trial and method).

    Returns
    -------
    info : skal.data.DatasetInfo
        ``flag`` is the folder's name; ``label_names`` the classes, sorted;
        class ids are positions in it.
    data : tuple
        ``(X_train, y_train, X_test, y_test)``: uint8 images (N, size, size)
        or (N, size, size, 3), int64 class ids (N,).

    Raises
    ------
    skal.image_folder.ImageFolderError
        Unreadable images or labels file, an image without a label, fewer
        than two classes, or a class too small to split.
    """
    folder = images if isinstance(images, ImageFolder) else load_image_folder(images, size=size)
    images = folder.root
    with open(Path(labels).expanduser(), newline="", encoding="utf-8-sig") as fh:
        names = sorted({(row.get("label") or "").strip() for row in csv.DictReader(fh)} - {""})
    known = folder.files + [file for file, _ in folder.skipped]
    given = read_labels_csv(labels, names, files=known)  # validates, names problems
    missing = [f for f in folder.files if f not in given]
    if missing:
        raise ImageFolderError(
            f"{len(missing)} image(s) of {images} have no label in {labels} (e.g. "
            f"{', '.join(missing[:3])}); a simulated run needs every image labeled. Label "
            f"them, or label them in the browser with `skal label`.", path=Path(labels))
    if len(names) < 2:
        raise ImageFolderError(f"{labels} names {len(names)} class(es); at least 2 are needed.",
                               path=Path(labels))
    y = np.array([names.index(given[f]) for f in folder.files], dtype=np.int64)
    try:
        X_train, X_test, y_train, y_test = train_test_split(
            folder.images, y, test_size=test_fraction, stratify=y, random_state=seed)
    except ValueError as exc:  # a class with a single image cannot be stratified
        raise ImageFolderError(f"cannot hold out a stratified test split of {images}: {exc}",
                               path=Path(images)) from None
    info = DatasetInfo(
        flag=folder.root.name, python_class="ImageFolder",
        task="binary-class" if len(names) == 2 else "multi-class", n_classes=len(names),
        n_channels=3 if folder.is_rgb else 1, label_names=tuple(names),
        n_samples={"train": len(y_train), "val": 0, "test": len(y_test)}, sizes=(size,),
        license="")
    return info, (X_train, y_train, X_test, y_test)


# ----------------------------------------------------------------------------
# Progress
# ----------------------------------------------------------------------------


class EpochProgressBar(SkorchCallback):
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


class CycleProgressBar(Callback):
    """An experiment callback: a tqdm bar over a trial's cycles, with the last ACC.

    Parameters
    ----------
    desc : str
    position : int, default=1
    disable : bool, default=False
    """

    def __init__(self, desc, position=1, disable=False):
        self.desc, self.position, self.disable = desc, position, disable

    def on_fit_begin(self, experiment, **data):
        self._bar = tqdm(total=experiment.n_cycles, desc=self.desc, position=self.position,
                         leave=False, disable=self.disable, dynamic_ncols=True)

    def on_cycle_end(self, experiment, record):
        self._bar.n = record["cycle"]
        if record.get("acc") is not None:
            self._bar.set_postfix(acc=f"{record['acc']:.3f}", refresh=False)
        self._bar.refresh()

    def on_fit_end(self, experiment):
        self.close()

    def close(self):
        """Close the bar (also when fit stopped with an error)."""
        bar = getattr(self, "_bar", None)
        if bar is not None:
            bar.close()
        self._bar = None


# ----------------------------------------------------------------------------
# Output
# ----------------------------------------------------------------------------


def dataset_folder(dataset, size=28):
    """A dataset's folder name: the flag at 28x28, ``<flag>_<size>`` at another size.

    The study's size keeps the plain flag, so folders written before sizes
    existed are still found; other sizes follow medmnist's file names.
    """
    return str(dataset) if int(size) == 28 else f"{dataset}_{int(size)}"


def trial_dir(out, preset, dataset, method, seed, size=28):
    """The folder of one trial: ``<out>/<preset>/<dataset>/<method>/trial_<seed>``.

    Everything :func:`run_trial` writes is inside it: ``results.csv``,
    ``labeled.csv`` and ``checkpoint/``.

    Parameters
    ----------
    out : path-like
    preset, dataset, method : str
        The preset's name, the MedMNIST flag and the strategy's name.
    seed : int
    size : int, default=28
        The image side; the dataset's folder is :func:`dataset_folder`.

    Returns
    -------
    pathlib.Path
    """
    return (Path(out) / str(preset) / dataset_folder(dataset, size) / str(method)
            / f"trial_{seed}")


class TrialFiles(Callback):
    """An experiment callback: rewrite a trial's ``results.csv`` and ``labeled.csv``.

    Both are rewritten atomically after every cycle from the experiment's
    state, and once more at the end of ``fit`` (which covers cycles loaded
    from a checkpoint). ``labeled.csv`` says in which cycle each index of
    the training split was first trained on (columns ``cycle, index``).

    Parameters
    ----------
    path : path-like
        The trial's folder (:func:`trial_dir`).
    method, dataset : str
    seed : int
    """

    def __init__(self, path, method, dataset, seed):
        self.path, self.method, self.dataset, self.seed = Path(path), method, dataset, seed

    def on_cycle_end(self, experiment, record):
        self.write(experiment)

    def on_fit_end(self, experiment):
        self.write(experiment)

    def write(self, experiment):
        rows = curve_rows(self.method, self.dataset, self.seed, experiment.learning_curve_)
        write_csv(self.path / "results.csv", RESULT_COLUMNS, format_rows(rows))

        # Item `index` of the training split was first trained on in `cycle`.
        labeled = io.StringIO()
        labeled.write("cycle,index\n")
        batches = [experiment.initial_indices_] + [
            r["queried"] for r in experiment.learning_curve_[:-1]]
        for cycle, batch in enumerate(batches[:len(experiment.learning_curve_)], start=1):
            labeled.writelines(f"{cycle},{int(i)}\n" for i in batch)
        content = labeled.getvalue().encode()
        atomic_write(self.path / "labeled.csv", lambda fh: fh.write(content))


class RunFolder(Callback):
    """The output of one (preset, dataset, method): ``results.csv`` over its trials.

    Each trial writes only its own ``trial_<seed>/results.csv``; this
    folder's ``results.csv`` is rebuilt from all of them (plus rows of trials
    that have no file of their own, e.g. from an older skal), so trials run
    at the same time by different processes never lose each other's rows for
    long: the next rebuild puts them back. As an experiment callback it
    rebuilds the file after every cycle.

    Parameters
    ----------
    out : path-like
    preset, dataset, method : str
    size : int, default=28
        The image side (see :func:`dataset_folder`).
    """

    def __init__(self, out, preset, dataset, method, size=28):
        self.path = Path(out) / preset / dataset_folder(dataset, size) / method
        self.csv_path = self.path / "results.csv"
        self.rows = read_rows(self.csv_path)

    def trial_dir(self, seed):
        return self.path / f"trial_{seed}"

    def on_cycle_end(self, experiment, record):
        self.refresh()

    def refresh(self):
        """Rebuild results.csv from the trials' own files."""
        per_trial = {}
        for path in self.path.glob("trial_*/results.csv"):
            per_trial.update(read_rows(path))
        fresh = {seed for seed, _ in per_trial}
        rows = {key: row for key, row in self.rows.items() if key[0] not in fresh}
        rows.update(per_trial)
        self.rows = rows
        write_csv(self.csv_path, RESULT_COLUMNS, [rows[key] for key in sorted(rows)])


def summary(rows, seeds):
    """Mean (and std over trials) of ACC and AUC per cycle, as text.

    Parameters
    ----------
    rows : dict of (seed, cycle) to dict
        As :attr:`RunFolder.rows`.
    seeds : set of int
        The trials to summarise.
    """
    by_cycle = {}
    for (seed, cycle), row in rows.items():
        if seed in seeds and row["acc"] != "":
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


def run_trial(method, dataset, seed, *, preset="paper", out="runs", epochs=None, budget=None,
              cycles=None, model=None, dropout=None, loss_weight=None, size=28, device="auto",
              root=None, verify=True, download=None, data=None, progress=False, callbacks=(),
              initial="random"):
    """Run one trial of one (preset, dataset, method) exactly as ``skal run`` does.

    Seeds the global generators with ``seed`` while it runs
    (:func:`skal.protocols.trial_globals`, which restores them), builds the experiment with
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
    dataset : str or DatasetInfo
        A MedMNIST 2D flag, or the ``info`` of :func:`load_folder` (then pass
        its ``data`` too).
    seed : int
        The trial's seed.
    preset : str or Preset, default='paper'
    out : path-like, default='runs'
        The output root, as ``--out``.
    epochs, budget, cycles, model, dropout : optional
        Overrides of the preset, as the options of the same names.
    loss_weight : float, optional
        The ranking loss's weight of LL4AL and SCAL (``--weight``); the
        preset's by default.
    size : int, default=28
        The image side (:data:`skal.registry.SIZES`): MedMNIST's file at that size is
        loaded, and the trial's folder says it (:func:`dataset_folder`).
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
    callbacks : sequence of skal.callbacks.Callback, default=()
        More experiment callbacks, run after the trial's files are written
        (e.g. a :class:`RunFolder`).
    initial : str, default='random'
        The experiment's ``initial_strategy`` (``--initial``): how the first
        batch is chosen (:data:`skal.query.INITIAL_STRATEGIES`).

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
    preset = get_preset(preset)
    info = dataset if isinstance(dataset, DatasetInfo) else dataset_info(dataset)
    check_settings(epochs=epochs, budget=budget, cycles=cycles, dropout=dropout, device=device,
                   seed=seed, loss_weight=loss_weight, size=size)
    if data is None:
        data = load_data(info.flag, root=root, verify=verify, download=download,
                         eval_split=preset.eval_split, size=size)
    X, y, X_test, y_test = data
    path = trial_dir(out, preset.name, info.flag, method, seed, size=size)
    bar = CycleProgressBar(f"cycles (trial {seed})", disable=not progress)

    experiment = build_experiment(
        preset, method, info, seed, epochs=epochs, budget=budget, cycles=cycles, model=model,
        device=device, dropout=dropout, loss_weight=loss_weight,
        callbacks=[("epoch_progress", EpochProgressBar(position=2))] if progress else [],
        checkpoint_dir=path / "checkpoint",
        experiment_callbacks=[TrialFiles(path, method, info.flag, seed), bar, *callbacks])
    experiment.set_params(initial_strategy=initial)
    try:
        # The study's global seeds and cuDNN flags, restored when the trial ends.
        with trial_globals(seed), warnings.catch_warnings():
            # The study's budgets are fixed: a pool too small for them is a bad
            # setting here, not a run to clamp (the library's default).
            warnings.simplefilter("error", BudgetWarning)
            experiment.fit(X, y, X_eval=X_test, y_eval=y_test)
    except BudgetWarning as exc:
        raise SettingsError(f"{exc} Use a smaller --budget or fewer --cycles.") from None
    finally:
        bar.close()
    return experiment


def _usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


#: A trial seeds the process's global generators while it runs
#: (skal.protocols.trial_globals) and a cell sets torch's thread count, so two cells
#: in threads of one process (a Dask worker with several threads) would change
#: each other's numbers: they take turns.
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
        ``rows``: one dict per cycle with the keys
        :data:`skal.results.RESULT_COLUMNS` (empty when failed); ``error``:
        ``'Type: message'`` or None; ``seconds`` (wall time), ``threads``,
        ``host`` and ``pid`` of the process that ran it.
    """
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
            result["error"] = error_text(exc)
        else:
            resumed = int(experiment.n_resumed_cycles_)
            result.update(
                status=("loaded" if resumed == experiment.n_cycles else
                        "resumed" if resumed else "computed"),
                n_resumed_cycles=resumed,
                rows=curve_rows(method, dataset, seed, experiment.learning_curve_))
        finally:
            torch.set_num_threads(before)
            result["seconds"] = time.perf_counter() - start
    return result
