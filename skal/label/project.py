"""A labeling project: a folder of plain files that holds everything and survives restarts.

Layout of ``PROJECT/``::

    project.json    the settings (classes, method, batch, model, size, ...), written once
    items.csv       id, file, sha256, holdout: one row per image
    images.npy      the images at the model's size, uint8 (N, S, S) or (N, S, S, 3)
    labels.jsonl    every answer as given, with its provenance (append-only, fsync'd)
    labels.csv      the current label of each labeled item (rewritten at each submit)
    batches.jsonl   each queried batch (ids, scores, ranks, guesses) and each submit
    curve.csv       held-out accuracy after each training; curve.svg plots it
    model/          model.json (version, what it was trained on) and the weights

An item's current answer is its last record in ``labels.jsonl``: a class, an
"unsure/skip" (never trained on, not queried again for ``skip_cooldown``
rounds) or nothing (cleared by an undo). Items whose SHA-256 falls in the
first ``holdout`` fraction of hash space form the held-out slice: they are
labeled like any other but never trained on, and the model's accuracy on them
is the learning curve. Choosing by hash keeps identical images on the same
side and keeps an item's side when its file is renamed.

Writes go through :class:`Project` methods that validate everything first
and then append in one fsync'd write, so an invalid request writes nothing.
In-process callers serialize on ``Project.lock``; :meth:`Project.process_lock`
keeps two processes (a running ``serve`` and a ``teach``) from writing at once.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import threading
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from skal.image_folder import (ImageFolderError, convert_color, file_sha256, list_image_files,
                               load_image_folder, read_image, read_labels_csv)
from skal.label.store import (append_jsonl, atomic_write, atomic_write_bytes, atomic_write_text,
                              read_jsonl)

__all__ = ["Project", "LabelError", "ProjectBusyError", "create_project", "DEFAULTS", "now"]

CONFIG = "project.json"
ITEMS = "items.csv"
IMAGES = "images.npy"
LABELS = "labels.jsonl"
LABELS_CSV = "labels.csv"
BATCHES = "batches.jsonl"
CURVE = "curve.csv"
CURVE_PLOT = "curve.svg"
MODEL_DIR = "model"
MODEL_META = "model.json"
LOCK = ".lock"

#: Settings a project gets unless ``init`` is told otherwise. model, lr and batch_size
#: are the fast preset's (this module does not import skal.protocols, which loads torch;
#: tests/test_one_place.py keeps them equal).
DEFAULTS = {
    "preset": "fast",  # the protocol of skal.protocols the network trains by
    "method": "badge",
    "batch": 20,
    "model": "small_cnn",
    "size": 64,
    "epochs": 5,
    "lr": 0.01,
    "batch_size": 32,
    "dropout": None,  # None: the preset's choice for the method (MC dropout for bald, else 0)
    "device": "auto",
    "holdout": 0.2,
    "min_holdout": 10,
    "skip_cooldown": 2,
    "seed": 0,
    "initial": "random",  # the first batch, before any model (skal.query.INITIAL_STRATEGIES)
}

#: Weight files kept (the newest): the stopping rule compares the last models' predictions.
KEPT_MODELS = 3
#: Labels the stopping forecast looks ahead (the page's and ``skal label status``'s default).
FORECAST_LABELS = 100
#: Images in the fixed stop set whose predictions the agreement compares.
STOP_SET_SIZE = 1000

_CURVE_FIELDS = ["round", "model_version", "n_train", "n_holdout", "accuracy", "time"]
_EXPORT_FIELDS = ["id", "file", "sha256", "label", "skipped", "holdout", "annotator", "time",
                  "seconds", "round", "model_version", "guess_shown", "guess", "source"]


def now():
    """The current UTC time as ISO 8601 with milliseconds."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


class LabelError(ValueError):
    """A request the project refuses; nothing was written.

    ``status`` is the HTTP status the server answers with: 400 for a bad
    value, 404 for an unknown item, 409 for a request that conflicts with
    the project's state (no open batch, a stale batch, an item outside it).
    """

    def __init__(self, message, status=400):
        super().__init__(message)
        self.status = status


class ProjectBusyError(RuntimeError):
    """Another process (a running ``skal label serve``) holds the project."""


def _holdout_side(sha256, fraction):
    """Whether an item is held out: its hash's first 32 bits, as a fraction, below ``fraction``."""
    return int(sha256[:8], 16) / 2**32 < fraction


def _check_classes(classes):
    classes = [str(c).strip() for c in (classes or [])]
    if len(classes) < 2:
        raise LabelError("a project needs at least two classes, e.g. --classes benign malignant.")
    if len(set(classes)) != len(classes) or any(not c for c in classes):
        raise LabelError(f"class names must be distinct and non-empty; got {classes}.")
    if "skip" in classes:
        raise LabelError("'skip' is the unsure/skip answer and cannot be a class name.")
    return classes


def _check_settings(settings):
    """Check the settings against their rules (:data:`skal.settings.RULES`).

    LabelError naming the option of the first bad value.
    """
    from skal.settings import check_setting

    for name, rule in (("batch", "budget"), ("epochs", "epochs"), ("batch_size", "batch_size"),
                       ("min_holdout", "min_holdout"), ("size", "image_size"),
                       ("skip_cooldown", "skip_cooldown"), ("seed", "seed"), ("lr", "lr"),
                       ("holdout", "holdout"), ("dropout", "dropout")):
        if name != "dropout" or settings[name] is not None:  # dropout None: the method's
            check_setting(f"--{name.replace('_', '-')}", settings[name], rule, error=LabelError)


def create_project(path, *, classes=None, images=None, medmnist=None, split="train", labels=None,
                   root=None, color="auto", skip_bad=False, annotator="import", **settings):
    """Create a labeling project folder.

    Parameters
    ----------
    path : path-like
        The project folder; it must not exist or be empty.
    classes : list of str
        Class names, in the order digits 1, 2, ... pick them on the page.
        Taken from ``medmnist.INFO`` with ``medmnist``.
    images : path-like, optional
        A folder of PNG/JPEG images (see :func:`skal.image_folder.load_image_folder`).
    medmnist : str, optional
        A MedMNIST flag instead of ``images``: the split's images, without
        their labels (to try the tool without data of one's own), at
        ``size`` 28 unless another size is given (MedMNIST's file of that size).
    split : {'train', 'val', 'test'}, default='train'
    labels : path-like, optional
        A ``file,label`` CSV of labels made already (recorded with source ``init``).
    root : path-like, optional
        MedMNIST folder, as for :func:`skal.data.load_medmnist`.
    color : {'auto', 'grayscale', 'rgb'}
    skip_bad : bool
        Leave out unreadable and minority-mode files instead of failing.
    annotator : str
        Recorded as the annotator of the ``labels`` CSV.
    **settings
        Any key of :data:`DEFAULTS`.

    Returns
    -------
    project : Project
    skipped : list of (str, str)
        Files left out and why (``skip_bad``).

    Raises
    ------
    LabelError
        Bad settings, a non-empty folder, or neither/both sources.
    skal.image_folder.ImageFolderError, skal.data.DatasetError
        From the loaders, naming the file.
    """
    from skal.query import get_initial_strategy, get_query_strategy

    path = Path(path).expanduser()
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise LabelError(f"{path} exists and is not an empty folder; choose a new project folder.")
    if (images is None) == (medmnist is None):
        raise LabelError("give either --images DIR (your own images) or --medmnist FLAG.")
    unknown = set(settings) - set(DEFAULTS)
    if unknown:
        raise TypeError(f"unknown project settings: {sorted(unknown)}")
    config = dict(DEFAULTS)
    config.update({k: v for k, v in settings.items() if v is not None})
    _check_settings(config)
    get_query_strategy(config["method"])  # ValueError listing the methods
    get_initial_strategy(config["initial"])  # likewise for the first batch
    skipped = []
    if medmnist is not None:
        from skal.data import dataset_info, load_medmnist

        info = dataset_info(medmnist)
        if info.is_multilabel:
            raise LabelError(f"{medmnist} is multi-label; a labeling project takes one class "
                             f"per image.")
        # MedMNIST ships each size as its own file: --size picks the file (28 unless given).
        size = settings.get("size") or 28
        config["size"] = size
        X, _ = load_medmnist(medmnist, split, size=size, root=root)  # the labels stay hidden
        files = [f"{medmnist}/{split}/{i:05d}.png" for i in range(len(X))]
        hashes = [hashlib.sha256(im.tobytes()).hexdigest() for im in X]
        if classes is None:
            classes = list(info.label_names)
        source = {"medmnist": medmnist, "split": split}
    else:
        folder = load_image_folder(images, config["size"], color=color,
                                   on_error="skip" if skip_bad else "raise")
        X, files, hashes, skipped = folder.images, folder.files, folder.sha256, folder.skipped
        source = {"images": str(folder.root)}
    config["classes"] = _check_classes(classes)
    initial = read_labels_csv(labels, config["classes"], files) if labels is not None else {}
    config["channels"] = 3 if X.ndim == 4 else 1
    if config["dropout"] is None:  # the factory's choice for the method, recorded
        from skal.label.network import build_network

        config["dropout"] = float(build_network(config).dropout)
    config.update(source=source, format=1, created=now())
    _check_requirements(config)

    path.mkdir(parents=True, exist_ok=True)
    (path / MODEL_DIR).mkdir(exist_ok=True)
    _write_items(path, X, files, hashes, config["holdout"])
    # project.json last: a folder without it is not a project (an init cut short).
    atomic_write_text(path / CONFIG, json.dumps(config, indent=2) + "\n")
    project = Project(path)
    if initial:
        with project.lock:
            project.teach(initial, annotator=annotator, source="init")
    return project, skipped


def _write_items(path, images, files, hashes, holdout):
    """Write ``images.npy`` and ``items.csv`` (atomically, images first)."""
    # Straight to the file: a buffer and its bytes would hold the images twice more.
    atomic_write(path / IMAGES,
                 lambda fh: np.save(fh, np.ascontiguousarray(images, dtype=np.uint8)))
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "file", "sha256", "holdout"])
    for i, (f, h) in enumerate(zip(files, hashes)):
        writer.writerow([i, f, h, int(_holdout_side(h, holdout))])
    atomic_write_text(path / ITEMS, out.getvalue())


def _map_images(path):
    """A project's ``images.npy``, memory-mapped read-only."""
    return np.load(Path(path) / IMAGES, mmap_mode="r")


def _check_requirements(config):
    """LabelError when the project's model cannot run its method (e.g. BALD without dropout)."""
    from skal.label.network import build_network
    from skal.query import missing_requirements

    missing = missing_requirements(config["method"], build_network(config))
    if missing:
        raise LabelError(f"method {config['method']!r} needs " + "; ".join(missing.values()) + ".")


class Project:
    """An open labeling project: its files, and the state they describe.

    Parameters
    ----------
    path : path-like
        A folder made by :func:`create_project` (``skal label init``).

    Attributes
    ----------
    config : dict
        ``project.json``.
    classes : list of str
    images : numpy.memmap of uint8, shape (N, S, S) or (N, S, S, 3)
        ``images.npy``, memory-mapped read-only: a large project's images are
        not held in memory. :meth:`rows` gives rows for the network.
    files, sha256 : list of str, length N
    holdout : ndarray of bool, shape (N,)
    answers : dict of int to dict
        The last ``labels.jsonl`` record of each answered item.
    batches : list of dict
        The ``batch`` records of ``batches.jsonl``, each with ``submitted``.
    model_meta : dict or None
        ``model/model.json``: the last trained model.
    curve : list of dict
        ``curve.csv`` rows.
    lock : threading.RLock
        Held by every in-process writer.
    """

    def __init__(self, path):
        self.path = Path(path).expanduser()
        config_path = self.path / CONFIG
        if not config_path.is_file():
            raise LabelError(f"{self.path} is not a labeling project (no {CONFIG}); create one "
                             f"with `skal label init`.", status=404)
        self.config = json.loads(config_path.read_text(encoding="utf-8"))
        # A project made before the preset was recorded trains with the default one.
        self.config.setdefault("preset", DEFAULTS["preset"])
        self.classes = list(self.config["classes"])
        self.images = _map_images(self.path)
        with open(self.path / ITEMS, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        self.files = [r["file"] for r in rows]
        self.sha256 = [r["sha256"] for r in rows]
        self.holdout = np.array([r["holdout"] == "1" for r in rows], dtype=bool)
        self._by_file = {f: i for i, f in enumerate(self.files)}
        self.lock = threading.RLock()
        self._file_lock = None
        self.answers = {}
        self._remember(read_jsonl(self.path / LABELS))
        self.batches = []
        for record in read_jsonl(self.path / BATCHES):
            if record.get("type") == "batch":
                self.batches.append(dict(record, submitted=False))
            elif record.get("type") == "submit" \
                    and 0 <= int(record["round"]) < len(self.batches):
                # A batch's round is its index in the file.
                self.batches[int(record["round"])]["submitted"] = True
        meta_path = self.path / MODEL_DIR / MODEL_META
        self.model_meta = json.loads(meta_path.read_text()) if meta_path.is_file() else None
        self.curve = []
        if (self.path / CURVE).is_file():
            with open(self.path / CURVE, newline="") as fh:
                self.curve = list(csv.DictReader(fh))

    # -- process lock -----------------------------------------------------------
    def process_lock(self):
        """Take the project's file lock for this process, or raise :class:`ProjectBusyError`.

        ``serve`` holds it while it runs; ``teach`` and ``query`` hold it while
        they write. The operating system releases it when the process dies,
        even by SIGKILL.
        """
        try:
            from filelock import FileLock, Timeout
        except ImportError:
            raise LabelError("skal label needs its extra: pip install 'skal[label]'.") from None

        if self._file_lock is None:
            self._file_lock = FileLock(str(self.path / LOCK))
        try:
            self._file_lock.acquire(timeout=0)
        except Timeout:
            raise ProjectBusyError(
                f"{self.path} is open in another process (probably `skal label serve`); label "
                f"in its page, or stop it first.") from None
        return self._file_lock

    # -- items and answers ------------------------------------------------------
    @property
    def n_items(self):
        return len(self.files)

    def rows(self, ids):
        """The images ``ids`` as an array in memory: ``images[ids]``, read from the file.

        Read with plain reads, one per run of consecutive ids, not through
        the map: the pool's rows (nearly all of them) would otherwise stay in
        the server's resident memory as the map's pages, beside the copy
        (390 MB at 100,000 64x64 images; ``benchmarks/results/label_scale.md``).

        Parameters
        ----------
        ids : array-like of int, shape (M,)

        Returns
        -------
        ndarray of uint8, shape (M, S, S) or (M, S, S, 3)
        """
        ids = np.asarray(ids, dtype=np.int64).reshape(-1)
        images = self.images
        out = np.empty((len(ids), *images.shape[1:]), dtype=images.dtype)
        if len(ids) == 0:
            return out
        if ids.min() < 0 or ids.max() >= len(images):
            raise IndexError(f"image ids must be in [0, {len(images)}).")
        row = out[0].nbytes
        ends = np.append(np.flatnonzero(np.diff(ids) != 1) + 1, len(ids))
        with open(self.path / IMAGES, "rb") as fh:
            start = 0
            for end in ends.tolist():
                fh.seek(images.offset + int(ids[start]) * row)
                if fh.readinto(memoryview(out[start:end]).cast("B")) != (end - start) * row:
                    raise OSError(f"{self.path / IMAGES} is shorter than its header says.")
                start = end
        return out

    def item_id(self, file):
        """The id of the item with this file name, or None."""
        return self._by_file.get(file)

    def check_id(self, item_id):
        """``item_id`` as an int, or LabelError (404) when the project has no such item."""
        if isinstance(item_id, bool) or not isinstance(item_id, (int, np.integer)) \
                or not 0 <= item_id < self.n_items:
            raise LabelError(f"no item with id {item_id!r} in this project (ids are 0 to "
                             f"{self.n_items - 1}).", status=404)
        return int(item_id)

    def label_of(self, item_id):
        """The item's current class name, or None (unlabeled, skipped or cleared)."""
        record = self.answers.get(item_id)
        return None if record is None else record.get("label")

    def is_skipped(self, item_id):
        record = self.answers.get(item_id)
        return bool(record and record.get("skipped"))

    def labeled_ids(self, holdout=None):
        """Ids with a class label, sorted; ``holdout`` True/False keeps one side only."""
        ids = sorted(i for i, r in self.answers.items() if r.get("label") is not None)
        if holdout is not None:
            ids = [i for i in ids if bool(self.holdout[i]) == holdout]
        return np.asarray(ids, dtype=np.int64)

    def targets(self, ids):
        """Class indices (int64) of labeled items, in the project's class order."""
        index = {c: k for k, c in enumerate(self.classes)}
        return np.asarray([index[self.answers[int(i)]["label"]] for i in ids], dtype=np.int64)

    def training_digest(self, ids):
        """A hash of the training set (ids and labels): the model is current when it matches."""
        text = ";".join(f"{i}:{self.answers[int(i)]['label']}" for i in ids)
        return hashlib.sha256(text.encode()).hexdigest()

    def counts(self):
        """Labels per class (in class order), plus ``skip`` and the held-out count."""
        counts = {c: 0 for c in self.classes}
        skipped = held = 0
        for i, record in self.answers.items():
            if record.get("label") is not None:
                counts[record["label"]] += 1
                held += bool(self.holdout[i])
            elif record.get("skipped"):
                skipped += 1
        return {"per_class": counts, "skipped": skipped, "labeled": sum(counts.values()),
                "held_out": held, "items": self.n_items}

    def _remember(self, records):
        """Make ``records`` (just read from or appended to ``labels.jsonl``) current.

        ``answers`` stays in the order of each item's last record, so the
        newest answer is last (:meth:`submitted_ids` lists them newest first).
        """
        for record in records:
            item_id = int(record["id"])
            self.answers.pop(item_id, None)
            self.answers[item_id] = record

    def submitted_ids(self):
        """Ids of answered items outside the open batch, newest answer first.

        These are the labels a person can review and :meth:`correct`: given
        in a submitted batch, imported (``init --labels``, ``teach``) or
        corrected. Answers in the open batch change through
        :meth:`record_answers` instead.
        """
        batch = self.open_batch()
        open_ids = set(batch["ids"]) if batch is not None else set()
        return [i for i in reversed(self.answers) if i not in open_ids
                and (self.answers[i].get("label") is not None or self.answers[i].get("skipped"))]

    def correct(self, item_id, label, annotator, source="correction"):
        """Change a submitted answer to ``label``; the log keeps the old one as ``previous``.

        The new record is an ordinary answer (the training set's digest
        changes, so the next training uses it) with the replaced answer's
        label, skip flag, annotator, time, round and source under ``previous``.

        Parameters
        ----------
        item_id : int
        label : str
            One of the project's classes.
        annotator : str
        source : str, default='correction'

        Returns
        -------
        dict
            The record written.

        Raises
        ------
        LabelError
            404 unknown id; 400 unknown class; 409 an item without a submitted
            answer, an item of the open batch, or the label it already has.
        """
        item_id = self.check_id(item_id)
        if label not in self.classes:
            raise LabelError(f"{label!r} is not one of the project's classes "
                             f"({', '.join(self.classes)}).")
        batch = self.open_batch()
        if batch is not None and item_id in batch["ids"]:
            raise LabelError(f"item {item_id} is in the open batch (round {batch['round']}); "
                             f"change its answer on the batch itself.", status=409)
        record = self.answers.get(item_id)
        if record is None or (record.get("label") is None and not record.get("skipped")):
            raise LabelError(f"item {item_id} has no submitted answer to correct; it is labeled "
                             f"when a batch picks it.", status=409)
        if record.get("label") == label:
            raise LabelError(f"item {item_id} is already labeled {label!r}; nothing to correct.",
                             status=409)
        new = self._answer_record(item_id, label, False, annotator, source)
        new["previous"] = {k: record.get(k)
                           for k in ("label", "skipped", "annotator", "time", "round", "source")}
        append_jsonl(self.path / LABELS, [new])
        self._remember([new])
        self.write_labels_csv()
        return new

    # -- the images folder changing ----------------------------------------------
    def sync_images(self):
        """Follow renamed, moved, new and deleted files of the images folder.

        An item is its content: a file name that is new to the project but
        whose SHA-256 matches an item whose file is gone is that item, renamed
        or moved, and keeps its id, labels and held-out side. Other new files
        become new items (read at the project's size and colour mode). Items
        whose file is gone stay, with the pixels stored in ``images.npy``.
        Only a folder project changes; call it holding the process lock.

        Returns
        -------
        dict
            ``renamed`` (list of (old, new)), ``added`` (list of file names),
            ``missing`` (list of file names), ``skipped`` (unreadable new files).
        """
        report = {"renamed": [], "added": [], "missing": [], "skipped": []}
        root = self.config.get("source", {}).get("images")
        if root is None or not Path(root).is_dir():
            return report
        root = Path(root)
        current = list_image_files(root)
        known = set(self.files)
        new = [f for f in current if f not in known]
        present = set(current)
        gone = [i for i, f in enumerate(self.files) if f not in present]
        if not new:
            report["missing"] = [self.files[i] for i in gone]
            return report
        by_hash = {}
        for i in gone:
            by_hash.setdefault(self.sha256[i], []).append(i)
        files, hashes = list(self.files), list(self.sha256)
        added_pixels = []
        for name in new:
            digest = file_sha256(root / name)
            if by_hash.get(digest):
                item = by_hash[digest].pop(0)
                report["renamed"].append((files[item], name))
                files[item] = name
                continue
            try:
                pixels, _ = read_image(root / name, int(self.config["size"]))
            except ImageFolderError:
                report["skipped"].append(name)
                continue
            added_pixels.append(convert_color(pixels, int(self.config["channels"]) == 1))
            files.append(name)
            hashes.append(digest)
            report["added"].append(name)
        report["missing"] = [files[i] for ids in by_hash.values() for i in ids]
        if not report["renamed"] and not report["added"]:
            return report
        images = self.images
        if added_pixels:
            images = np.concatenate([images, np.stack(added_pixels).astype(np.uint8)])
        _write_items(self.path, images, files, hashes, self.config["holdout"])
        # The new file, mapped as at opening (the concatenation was a copy in memory).
        self.images, self.files, self.sha256 = _map_images(self.path), files, hashes
        self.holdout = np.array([_holdout_side(h, self.config["holdout"]) for h in hashes])
        self._by_file = {f: i for i, f in enumerate(files)}
        return report

    # -- batches ----------------------------------------------------------------
    def unsubmitted_batches(self):
        """The batches queried and not submitted, oldest first: the open one, then the next.

        At most two: the batch being labeled and, when the model picked one
        ahead (the page's background mode), the batch that opens when it is
        submitted. Their items never overlap (:meth:`add_batch` refuses).
        """
        return [b for b in self.batches[-2:] if not b["submitted"]]

    def open_batch(self):
        """The batch being labeled (queried, not submitted), or None."""
        unsubmitted = self.unsubmitted_batches()
        return unsubmitted[0] if unsubmitted else None

    def next_batch(self):
        """The batch chosen ahead, which opens when the open one is submitted, or None."""
        unsubmitted = self.unsubmitted_batches()
        return unsubmitted[1] if len(unsubmitted) > 1 else None

    @property
    def round(self):
        """The current round: the open batch's, else the next batch's."""
        batch = self.open_batch()
        return batch["round"] if batch is not None else len(self.batches)

    @property
    def submitted_rounds(self):
        return sum(b["submitted"] for b in self.batches)

    @property
    def model_version(self):
        return 0 if self.model_meta is None else int(self.model_meta["version"])

    def pool_ids(self):
        """Ids a query may pick: unanswered, or skipped more than ``skip_cooldown`` rounds ago.

        Items of the open batch and of the batch chosen ahead are not in the pool.
        """
        now_round = self.round
        cooldown = int(self.config["skip_cooldown"])
        taken = {i for b in self.unsubmitted_batches() for i in b["ids"]}
        pool = []
        for i in range(self.n_items):
            record = self.answers.get(i)
            if i in taken:
                continue
            if record is None or (record.get("label") is None and not record.get("skipped")):
                pool.append(i)
            elif record.get("skipped") and now_round > int(record["round"]) + cooldown:
                pool.append(i)
        return np.asarray(pool, dtype=np.int64)

    def add_batch(self, batch):
        """Record a queried batch (``ids`` plus why/guess fields): open, or next when one is open.

        Raises
        ------
        LabelError
            409 when a batch is open and another is already chosen, or when
            the batch shares an item with one of them (an image is never in
            two open batches).
        """
        unsubmitted = self.unsubmitted_batches()
        if len(unsubmitted) >= 2:
            raise LabelError("a batch is open and the next one is chosen; submit first.",
                             status=409)
        shared = {i for b in unsubmitted for i in b["ids"]} & set(batch["ids"])
        if shared:
            raise LabelError(f"items {sorted(shared)[:10]} are already in an open batch.",
                             status=409)
        record = {"type": "batch", "round": len(self.batches), "time": now(), **batch}
        append_jsonl(self.path / BATCHES, [record])
        self.batches.append(dict(record, submitted=False))
        return self.batches[-1]

    def _answer_record(self, item_id, label, skipped, annotator, source, seconds=None,
                       guess_shown=False, round_=None):
        guess = None
        batch = self.open_batch()
        if guess_shown and batch is not None and item_id in batch["ids"]:
            guesses = batch.get("guesses")
            guess = guesses[batch["ids"].index(item_id)] if guesses else None
        return {
            "id": item_id, "file": self.files[item_id], "sha256": self.sha256[item_id],
            "label": label, "skipped": bool(skipped), "annotator": annotator, "time": now(),
            "seconds": None if seconds is None else round(float(seconds), 3),
            "round": self.round if round_ is None else round_,
            "model_version": self.model_version, "guess_shown": bool(guess_shown),
            "guess": guess, "source": source,
        }

    def record_answers(self, entries, annotator, round_=None, source="page"):
        """Save answers to the open batch: all or nothing, on disk before returning.

        Parameters
        ----------
        entries : list of dict
            Each ``{'id': int, 'label': str or None, 'skip': bool, 'seconds':
            float or None, 'guess_shown': bool}``. ``label=None`` without
            ``skip`` clears the answer (undo).
        annotator : str
        round_ : int, optional
            The round the client is labeling; a different open round (another
            tab submitted it) is refused.
        source : str

        Returns
        -------
        list of dict
            The records written.

        Raises
        ------
        LabelError
            404 unknown id; 400 unknown class, an id twice, label and skip
            together, negative seconds; 409 no open batch, a stale round, an
            item outside the open batch.
        """
        batch = self.open_batch()
        if batch is None:
            raise LabelError("no batch is open: the model is training or querying the next "
                             "batch; wait for it.", status=409)
        if round_ is not None and round_ != batch["round"]:
            raise LabelError(f"round {round_} is over (the open batch is round {batch['round']}); "
                             f"reload the page.", status=409)
        if not entries:
            raise LabelError("no answers in the request.")
        seen, records = set(), []
        in_batch = set(batch["ids"])
        for entry in entries:
            item_id = self.check_id(entry.get("id"))
            if item_id in seen:
                raise LabelError(f"item {item_id} is answered twice in one request; send one "
                                 f"answer per item.")
            seen.add(item_id)
            label, skip = entry.get("label"), bool(entry.get("skip", False))
            if label is not None and label not in self.classes:
                raise LabelError(f"{label!r} is not one of the project's classes "
                                 f"({', '.join(self.classes)}).")
            if label is not None and skip:
                raise LabelError(f"item {item_id}: give a label or skip, not both.")
            seconds = entry.get("seconds")
            if seconds is not None and not (isinstance(seconds, (int, float))
                                            and math.isfinite(seconds) and seconds >= 0):
                raise LabelError(f"item {item_id}: seconds must be a number >= 0.")
            if item_id not in in_batch:
                raise LabelError(f"item {item_id} is not in the open batch (round "
                                 f"{batch['round']}); labels of submitted batches are changed "
                                 f"with `skal label teach --overwrite`.", status=409)
            records.append(self._answer_record(item_id, label, skip, annotator, source, seconds,
                                               bool(entry.get("guess_shown", False))))
        append_jsonl(self.path / LABELS, records)
        self._remember(records)
        return records

    def unanswered(self, batch=None):
        """Ids of the open batch with no answer yet."""
        batch = batch or self.open_batch()
        if batch is None:
            return []
        return [i for i in batch["ids"] if self.label_of(i) is None and not self.is_skipped(i)]

    def submit(self, round_, annotator, source="page"):
        """Close the open batch; every item must have an answer (a class or skip).

        Raises
        ------
        LabelError
            409 when no batch is open, ``round_`` is not the open one, or
            items are unanswered (listed).
        """
        batch = self.open_batch()
        if batch is None or (round_ is not None and round_ != batch["round"]):
            raise LabelError(f"round {round_} is not open; reload the page.", status=409)
        missing = self.unanswered(batch)
        if missing:
            raise LabelError(f"{len(missing)} item(s) of the batch have no answer yet (ids "
                             f"{', '.join(map(str, missing[:10]))}); label them or mark them "
                             f"unsure/skip.", status=409)
        append_jsonl(self.path / BATCHES, [{"type": "submit", "round": batch["round"],
                                            "time": now(), "annotator": annotator,
                                            "source": source}])
        batch["submitted"] = True
        self.write_labels_csv()
        return batch

    def teach(self, labels, annotator, overwrite=False, source="teach"):
        """Import labels made elsewhere (file name to class name).

        Unknown file names or classes refuse the whole import. A label that
        differs from the item's current one is a conflict: reported and not
        written unless ``overwrite``. An item of the open batch that gets a
        label counts as answered; the batch is submitted when all are.

        Parameters
        ----------
        labels : dict of str to str
        annotator : str
        overwrite : bool, default=False
        source : str

        Returns
        -------
        dict
            ``added`` (count), ``unchanged`` (count), ``conflicts`` (list of
            (file, current, new)), ``overwritten`` (count), ``submitted``
            (the round closed, or None).
        """
        unknown = [f for f in labels if f not in self._by_file]
        if unknown:
            raise LabelError(f"{len(unknown)} file name(s) are not in this project, so nothing "
                             f"was imported: {', '.join(unknown[:5])}"
                             f"{', ...' if len(unknown) > 5 else ''}. Names are paths relative "
                             f"to the images folder, as in items.csv.", status=404)
        bad = sorted({c for c in labels.values() if c not in self.classes})
        if bad:
            raise LabelError(f"unknown class(es) {bad}; the project's classes are "
                             f"{', '.join(self.classes)}.")
        records, conflicts, unchanged, overwritten = [], [], 0, 0
        for file, label in labels.items():
            item_id = self._by_file[file]
            current = self.label_of(item_id)
            if current == label:
                unchanged += 1
                continue
            if current is not None:
                conflicts.append((file, current, label))
                if not overwrite:
                    continue
                overwritten += 1
            records.append(self._answer_record(item_id, label, False, annotator, source))
        if records:
            append_jsonl(self.path / LABELS, records)
            self._remember(records)
        submitted = None
        batch = self.open_batch()
        if batch is not None and records and not self.unanswered(batch):
            submitted = self.submit(batch["round"], annotator, source=source)["round"]
        elif records:
            self.write_labels_csv()
        return {"added": len(records) - overwritten, "unchanged": unchanged,
                "conflicts": conflicts, "overwritten": overwritten, "submitted": submitted}

    # -- model and curve --------------------------------------------------------
    def set_model(self, meta, params_bytes):
        """Store a trained model: weights first, then ``model.json`` naming them."""
        folder = self.path / MODEL_DIR
        folder.mkdir(exist_ok=True)
        name = f"v{int(meta['version']):04d}.pt"
        atomic_write_bytes(folder / name, params_bytes)
        meta = dict(meta, params=name)
        atomic_write_text(folder / MODEL_META, json.dumps(meta, indent=2) + "\n")
        # The newest KEPT_MODELS weights are kept (skal label status compares their
        # predictions on a stop set); older ones are removed.
        for old in sorted(folder.glob("v*.pt"))[:-KEPT_MODELS]:
            if old.name != name:
                old.unlink()
        self.model_meta = meta

    def kept_model_paths(self):
        """Weight files of the newest models still on disk, oldest first (at most KEPT_MODELS)."""
        return sorted((self.path / MODEL_DIR).glob("v*.pt"))

    @property
    def model_params_path(self):
        if self.model_meta is None:
            return None
        return self.path / MODEL_DIR / self.model_meta["params"]

    def add_curve_point(self, row):
        """Append one learning-curve row to ``curve.csv`` and redraw ``curve.svg``."""
        self.curve.append({k: row.get(k) for k in _CURVE_FIELDS})
        out = io.StringIO()
        writer = csv.DictWriter(out, _CURVE_FIELDS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.curve)
        atomic_write_text(self.path / CURVE, out.getvalue())
        from skal.label.plot import learning_curve_svg

        atomic_write_text(self.path / CURVE_PLOT, learning_curve_svg(self.curve))

    def accuracy(self):
        """The latest held-out accuracy and its number of items, or (None, n)."""
        for row in reversed(self.curve):
            if row.get("accuracy") not in (None, ""):
                return float(row["accuracy"]), int(row["n_holdout"])
        return None, int(len(self.labeled_ids(holdout=True)))

    # -- export -----------------------------------------------------------------
    def export_rows(self):
        """The current answer of every answered item, with provenance, in id order."""
        rows = []
        for i in sorted(self.answers):
            record = self.answers[i]
            if record.get("label") is None and not record.get("skipped"):
                continue
            row = {k: record.get(k) for k in _EXPORT_FIELDS}
            row.update(id=i, file=self.files[i], sha256=self.sha256[i],
                       holdout=bool(self.holdout[i]))
            rows.append(row)
        return rows

    def export_csv(self):
        out = io.StringIO()
        writer = csv.DictWriter(out, _EXPORT_FIELDS, lineterminator="\n")
        writer.writeheader()
        for row in self.export_rows():
            writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
        return out.getvalue()

    def export_jsonl(self):
        return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in self.export_rows())

    def write_labels_csv(self):
        atomic_write_text(self.path / LABELS_CSV, self.export_csv())
