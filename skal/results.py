"""The result files' schema and their one writer.

Every CSV skal writes about a run goes through this module: the columns of
``results.csv`` (one row per trial and cycle, the same for ``skal run``'s
folders and a benchmark grid) and ``failures.csv`` (one row per failed cell),
how numbers and errors become text, and how a file is replaced atomically.
It imports only the standard library, so the command line stays quick to
start.

A trial is named by its seed everywhere (column ``seed``). Files written by
skal before that rule name it ``trial``; :func:`read_rows` still reads them.
"""

from __future__ import annotations

import csv
import io
import os
import secrets
from pathlib import Path

__all__ = ["RESULT_COLUMNS", "LATER_COLUMNS", "FAILURE_COLUMNS", "NUMBER_COLUMNS", "atomic_write",
           "atomic_write_bytes", "fsync_dir", "csv_number", "error_text", "format_rows",
           "write_csv", "read_rows", "curve_rows"]

# The columns that name a trial; the others are the keys of its
# ``ActiveLearningClassifier.learning_curve_`` records (the figures of
# :func:`skal.metrics.curve_metrics` and the timings), copied by curve_rows.
_TRIAL_COLUMNS = ("method", "dataset", "seed")

#: Columns of every ``results.csv``: one row per (method, dataset, seed, cycle).
RESULT_COLUMNS = (*_TRIAL_COLUMNS, "cycle", "n_labeled", "acc", "auc", "test_loss",
                  "balanced_acc", "train_seconds", "query_seconds", "query_cpu_seconds")

#: Columns added after the first files were written: a file without them is
#: still read (its rows have '' there, NaN in a report).
LATER_COLUMNS = ("test_loss", "query_cpu_seconds", "balanced_acc")

#: Columns of a grid's ``failures.csv``: one row per failed (method, dataset, seed).
FAILURE_COLUMNS = ("method", "dataset", "seed", "error")

#: The float columns of ``results.csv`` (written with :func:`csv_number`).
NUMBER_COLUMNS = ("acc", "auc", "test_loss", "balanced_acc", "train_seconds", "query_seconds",
                  "query_cpu_seconds")

# The trial column's name in files written before it was called `seed`.
_OLD_SEED_COLUMN = "trial"

def fsync_dir(directory):
    """fsync a directory, so that renames and new files in it are durable.

    A no-op where directories cannot be opened (Windows).
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
    except (PermissionError, IsADirectoryError):
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _create_temp(folder, name):
    """Create and open a new, uniquely named file in ``folder``: (fd, path).

    tempfile.mkstemp makes its file private (0600), and giving it the mode
    ``open()`` would give needs the process's umask, which can only be read
    by setting it (a race with other threads). Here the file is created with
    mode 0666 and ``O_EXCL``, so the kernel applies the umask (or the
    folder's default ACL) exactly as it does for ``open()``; the random name
    makes the file this writer's own.
    """
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    while True:
        tmp = os.path.join(folder, f".{name}.{secrets.token_hex(8)}.tmp")
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:  # 2**-64 per try: only another writer's temp file
            continue


def atomic_write(path, write):
    """Write a file so that readers see the old or the new content, never a part.

    The one atomic writer of skal (result files, checkpoints, a labeling
    project's files): the content goes to a temporary file of this call's
    own in the same folder, is fsync'd, renamed over ``path``, and the
    folder is fsync'd, so the new content survives a crash once this
    returns. Concurrent writers of one path never see each other's
    temporary files: the last rename wins, whole.

    Parameters
    ----------
    path : path-like
        Destination; its folder is created if needed.
    write : callable
        ``write(fh)`` writes the content to a binary file object.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = _create_temp(path.parent, path.name)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)  # atomic on POSIX and Windows for files on one volume
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path, data):
    """:func:`atomic_write` of ``data`` (bytes)."""
    atomic_write(path, lambda fh: fh.write(data))


def csv_number(value):
    """A number as CSV text: ``repr(float(value))``, or '' for None.

    repr keeps every digit, so a resumed run can be compared exactly.
    """
    return "" if value is None else repr(float(value))


def error_text(exc):
    """An exception as one line of text: ``'Type: message'`` (whitespace collapsed)."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


def curve_rows(method, dataset, seed, learning_curve):
    """An experiment's learning curve as result rows (numbers as measured, not text).

    Parameters
    ----------
    method, dataset : str
    seed : int
    learning_curve : list of dict
        ``ActiveLearningClassifier.learning_curve_``.

    Returns
    -------
    list of dict
        One dict per cycle with the keys :data:`RESULT_COLUMNS`, each value
        the record's own (copied, never recomputed); ``acc``, ``auc``,
        ``test_loss`` and ``balanced_acc`` are None when the run had no
        evaluation set, and the :data:`LATER_COLUMNS` None in cycles of a
        checkpoint written before they were recorded.
    """
    rows = []
    for r in learning_curve:
        row = {"method": method, "dataset": dataset, "seed": int(seed)}
        row.update({key: r.get(key) for key in RESULT_COLUMNS if key not in _TRIAL_COLUMNS})
        row.update(cycle=int(r["cycle"]), n_labeled=int(r["n_labeled"]),
                   train_seconds=r["train_seconds"], query_seconds=r["query_seconds"])
        rows.append(row)
    return rows


def format_rows(rows):
    """Result rows with their float columns as :func:`csv_number` text (others unchanged)."""
    return [{**row, **{key: csv_number(row[key]) for key in NUMBER_COLUMNS
                       if key in row and not isinstance(row[key], str)}}
            for row in rows]


def write_csv(path, columns, rows):
    """Replace ``path`` atomically with a CSV of ``rows`` (dicts) under ``columns``.

    Parameters
    ----------
    path : path-like
    columns : sequence of str
        The header, in order; each row must have these keys (and no others).
    rows : iterable of dict
        Values as they should appear (see :func:`format_rows` for numbers).
    """
    table = io.StringIO()
    writer = csv.DictWriter(table, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    content = table.getvalue().encode()
    atomic_write(path, lambda fh: fh.write(content))


def read_rows(path):
    """The rows of a ``results.csv`` keyed by (seed, cycle); {} when there is no file.

    Values stay text, as written. A file whose trial column is still called
    ``trial`` (skal before the ``seed`` name) is read as if it were ``seed``;
    one without the :data:`LATER_COLUMNS` gets '' there.

    Returns
    -------
    dict of (int, int) to dict
    """
    if not Path(path).is_file():
        return {}
    rows = {}
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh):
            if "seed" not in row and _OLD_SEED_COLUMN in row:
                row = {("seed" if k == _OLD_SEED_COLUMN else k): v for k, v in row.items()}
            row = {k: row.get(k, "") for k in RESULT_COLUMNS}
            rows[(int(row["seed"]), int(row["cycle"]))] = row
    return rows
