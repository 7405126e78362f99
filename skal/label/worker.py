"""The background worker of ``skal label serve``: training and querying off the request threads.

One thread runs :func:`skal.label.loop.advance` at a time; a submit or a
correction that comes while it runs makes it go round once more.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import threading
import time
import traceback

from skal.label.loop import advance

__all__ = ["Worker", "release_freed_memory"]

log = logging.getLogger("skal.label")


@functools.lru_cache(maxsize=1)
def _malloc_trim():
    """glibc's ``malloc_trim``, or None under another C library."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):
        return None


def release_freed_memory():
    """Hand the memory the C allocator keeps after ``free`` back to the system; True if it could.

    glibc keeps what torch and numpy free in the worker thread's arena for
    reuse: after training, hundreds of MB that a query then holds on top of
    its own, and that the idle server keeps while the person labels
    (``benchmarks/results/label_scale.md``). ``malloc_trim`` returns it; the
    worker calls this at each change of stage and when it goes idle.
    Elsewhere (another C library) this does nothing.
    """
    trim = _malloc_trim()
    if trim is None:
        return False
    trim(0)
    return True


class Worker:
    """Runs :func:`skal.label.loop.advance` in a background thread, one run at a time.

    ``status()`` is what the page shows: ``stage`` ('idle', 'training',
    'querying', 'error'), ``fraction`` of the stage done (0 to 1),
    ``eta_seconds`` (the stage's time left at its pace so far; None until
    it has made progress) and an error ``message``.

    Parameters
    ----------
    project : Project
    ahead : bool, default=True
        Choose the next batch while the person labels (see
        :func:`skal.label.loop.advance`); False: train and query after each
        submit, while the page waits.
    """

    def __init__(self, project, ahead=True):
        self.project, self.ahead = project, ahead
        self._running = False
        self._again = False  # a start() came while running: run once more
        self._thread = None
        self._guard = threading.Lock()
        self._set("idle")

    def _set(self, stage, fraction=None, message=None):
        now = time.monotonic()
        if stage != getattr(self, "_stage", None):
            self._stage_start = now
        self._stage = stage
        # One dict swapped in whole: status() reads it from other threads without a lock.
        self._status = {"stage": stage, "fraction": None if fraction is None
                        else round(min(max(float(fraction), 0.0), 1.0), 3),
                        "message": message, "reported": now, "start": self._stage_start}

    def _progress(self, stage, fraction):
        if stage != self._stage:  # what the last stage freed is not needed by the next
            release_freed_memory()
        self._set(stage, fraction)

    def _run(self):
        while True:
            with self._guard:
                self._again = False
            try:
                advance(self.project, self._progress, ahead=self.ahead)
                failed = False
            except Exception as exc:  # shown on the page; the labels on disk are untouched
                log.error("retraining failed:\n%s", traceback.format_exc())
                self._set("error", message=f"{type(exc).__name__}: {exc}")
                failed = True
            release_freed_memory()  # the person labels now: the freed memory is not needed
            with self._guard:
                if failed or not self._again:
                    if not failed:
                        self._set("idle")
                    self._running = False
                    return

    def start(self):
        """Start a run, or have the running one go round again; returns whether one started.

        A submit or correction that comes while a run is going is picked up
        by that run (the labels it sees are re-read until nothing changed).
        """
        with self._guard:
            if self._running:
                self._again = True
                return False
            self._running = True
            self._set("training", 0.0)
            self._thread = threading.Thread(target=self._run, name="skal-label-worker",
                                            daemon=True)
            self._thread.start()
            return True

    @property
    def busy(self):
        return self._running

    def join(self, timeout=None):
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self):
        """``stage``, ``fraction``, ``eta_seconds`` and ``message`` (a new dict)."""
        status = self._status
        fraction, eta = status["fraction"], None
        if fraction and status["stage"] in ("training", "querying"):
            # Time left at the pace so far, counted down since the last report.
            pace = (status["reported"] - status["start"]) / fraction
            eta = max(pace * (1 - fraction) - (time.monotonic() - status["reported"]), 0.0)
            eta = round(eta, 1)
        return {"stage": status["stage"], "fraction": fraction, "eta_seconds": eta,
                "message": status["message"]}
