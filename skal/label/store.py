"""Durable plain files: fsync'd JSON Lines appends and atomic rewrites.

A labeling project's state is a few files a person can read. Whatever the
page reports as saved must survive a SIGKILL or a power cut, so every append
is flushed and fsync'd before it returns, and every rewrite goes to a
temporary file that is fsync'd and then renamed over the old one (the
directory is fsync'd too, so the rename itself is durable): skal's one
atomic writer, :func:`skal.results.atomic_write`. A crash can
leave at most a torn last line in a JSON Lines file; :func:`read_jsonl`
ignores it and :func:`append_jsonl` cuts it off before appending.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

# The one atomic writer (unique temporary file, fsync of the file and its folder).
from skal.results import atomic_write, atomic_write_bytes, fsync_dir

__all__ = ["append_jsonl", "read_jsonl", "atomic_write", "atomic_write_bytes", "atomic_write_text",
           "fsync_dir"]


def atomic_write_text(path, text):
    """Replace ``path`` with ``text`` (UTF-8) atomically and durably."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _cut_torn_tail(fh):
    """Truncate a last line that has no newline (a write cut short by a crash)."""
    fh.seek(0, os.SEEK_END)
    end = fh.tell()
    if end == 0:
        return
    fh.seek(end - 1)
    if fh.read(1) == b"\n":
        return
    # Walk back to the previous newline; files here are small (one line per label).
    pos = end - 1
    while pos > 0:
        fh.seek(pos - 1)
        if fh.read(1) == b"\n":
            break
        pos -= 1
    fh.truncate(pos)


def append_jsonl(path, records):
    """Append records as JSON lines; return once they are on disk (fsync).

    Parameters
    ----------
    path : path-like
    records : iterable of dict
        Written together with one ``write`` and one fsync.
    """
    path = Path(path)
    data = "".join(json.dumps(r, ensure_ascii=False, sort_keys=False) + "\n" for r in records)
    new = not path.exists()
    with open(path, "a+b") as fh:
        _cut_torn_tail(fh)
        fh.seek(0, os.SEEK_END)
        fh.write(data.encode("utf-8"))
        fh.flush()
        os.fsync(fh.fileno())
    if new:
        fsync_dir(path.parent)


def read_jsonl(path):
    """The records of a JSON Lines file (empty when it does not exist).

    A last line without a newline (a torn write) is ignored; any other
    malformed line is an error naming the file and line.
    """
    path = Path(path)
    if not path.exists():
        return []
    records = []
    with open(path, "rb") as fh:
        lines = fh.read().split(b"\n")
    # The text after the last newline is empty for a clean file, a torn write otherwise.
    for number, line in enumerate(lines[:-1], start=1):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{path}, line {number}, is not valid JSON ({exc.msg}); fix or "
                             f"remove that line.") from None
    return records
