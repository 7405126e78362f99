"""Where ``skal label serve``'s memory goes: resident and traced memory per stage of its worker.

Builds a project of ``--count`` synthetic 64x64 grayscale images (written
straight to ``images.npy``, without PNGs: only the arrays matter here),
teaches ``--labels`` labels, then does in one process what
``skal label serve`` does in its default mode (``benchmarks/label_scale.py``
measures the real server): opens the project, runs the background worker
(train, choose the first batch, choose the next one ahead), answers and
submits the first batch and runs the worker again (train on the new labels,
choose ahead).

Each stage of the worker (training, the stop-set verdict, the pool's
forward pass, BADGE's kernel, the utilities, the explanation, ...) is timed
between marks. For each segment between two marks it prints, in MB: the
resident memory at its end (RSS) and its peak (VmHWM, reset at each mark
through ``/proc/self/clear_refs``); of the resident memory, the anonymous
pages and the file pages (libraries, the memory-mapped ``images.npy``: the
kernel can drop these at any time); what glibc's malloc has in use
(``m.use``: torch's and numpy's arrays) and holds freed, not given back
(``m.free``); with ``--trace``, the memory traced by ``tracemalloc`` and its
peak (numpy's arrays and Python objects; torch's own tensors are not traced).

``--allocator`` shows instead, without a network, why a pass over the pool
goes in chunks (``skal.label.network.PASS_CHUNK_BATCHES``): in a thread, it
allocates and frees the activations of the small CNN's batches of 32
64x64 images, as a pass over 40,000 images does, keeping one small output
per batch until the end (one call over the whole pool) or per chunk of
batches; it prints how much anonymous resident memory the pass left, and
what is left of it after ``malloc_trim``.

Usage::

    python benchmarks/label_memory.py --count 20000 [--trace] [--threads 1]
    python benchmarks/label_memory.py --allocator
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import functools
import hashlib
import shutil
import sys
import tempfile
import threading
import time
import tracemalloc
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.label_scale import rss_mb  # noqa: E402

CLASSES = ["dark", "bright"]


def status_mb():
    """(VmRSS, VmHWM, RssAnon, RssFile) of this process in MB (see ``label_scale.rss_mb``)."""
    return rss_mb("self")


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def malloc_mb():
    """(in use, free but held) by glibc's malloc, all arenas, in MB; (None, None) elsewhere.

    What the C allocator holds (torch's tensors and numpy's arrays on Linux):
    memory in use, and memory freed but not given back to the system.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallinfo2.restype = _Mallinfo2
    except (OSError, AttributeError):
        return None, None
    info = libc.mallinfo2()
    return (info.uordblks + info.hblkhd) / 2**20, info.fordblks / 2**20


def reset_peak():
    """Reset VmHWM to the current VmRSS (Linux 4.0+)."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    if tracemalloc.is_tracing():
        tracemalloc.reset_peak()


class Marks:
    """Segments between marks: resident at the end, resident peak, traced peak (MB)."""

    def __init__(self):
        self.rows, self.lock = [], threading.Lock()
        self.name, self.start = "start", time.perf_counter()
        reset_peak()

    def __call__(self, name):
        with self.lock:
            rss, hwm, anon, file = status_mb()
            traced = (tracemalloc.get_traced_memory() if tracemalloc.is_tracing()
                      else (None, None))
            self.rows.append((self.name, time.perf_counter() - self.start, rss, hwm, anon, file,
                              *malloc_mb(),
                              None if traced[0] is None else traced[0] / 2**20,
                              None if traced[1] is None else traced[1] / 2**20))
            self.name, self.start = name, time.perf_counter()
            reset_peak()

    def print(self):
        print(f"{'segment (until the next mark)':40s} {'s':>6s} {'RSS':>6s} {'peak':>6s} "
              f"{'anon':>6s} {'file':>6s} {'m.use':>6s} {'m.free':>6s} {'traced':>6s} "
              f"{'peak':>6s}  (MB at the segment's end; peaks within it)")
        for name, seconds, rss, hwm, anon, file, used, free, cur, peak in self.rows:
            traced = "" if cur is None else f"{cur:6.0f} {peak:6.0f}"
            malloc = "" if used is None else f"{used:6.0f} {free:6.0f}"
            print(f"{name[:40]:40s} {seconds:6.1f} {rss:6.0f} {hwm:6.0f} {anon:6.0f} {file:6.0f} "
                  f"{malloc} {traced}")


def wrap(owner, attribute, mark, label=None):
    """Mark entering and leaving ``owner.attribute``."""
    original = getattr(owner, attribute)
    label = label or attribute

    @functools.wraps(original)
    def marked(*args, **kwargs):
        mark(f"in {label}")
        try:
            return original(*args, **kwargs)
        finally:
            mark(f"after {label}")

    setattr(owner, attribute, marked)


def make_project(path, count, size, labels, seed=0):
    """A project of ``count`` synthetic images (dark or bright disc on noise); return the truth."""
    from skal.label.project import Project, _write_items, create_project

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    images = np.empty((count, size, size), dtype=np.uint8)
    files, hashes, truth = [], [], {}
    for i in range(count):
        cls = i % 2
        cy, cx = rng.integers(size // 4, 3 * size // 4, 2)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < (size // 6) ** 2
        pixels = rng.normal(110, 30, (size, size))
        pixels[disc] += 60 if cls else -60
        images[i] = np.clip(pixels, 0, 255)
        files.append(f"{'ab'[cls == 0]}/{i:06d}.png")  # 'a/...' bright, as label_latency's
        hashes.append(hashlib.sha256(images[i].tobytes()).hexdigest())
        truth[files[-1]] = CLASSES[cls]
    with tempfile.TemporaryDirectory() as tiny:  # init's settings, from a 2-image folder
        from PIL import Image

        for i in range(2):
            Image.fromarray(images[i]).save(Path(tiny) / f"{i}.png")
        create_project(path, classes=CLASSES, images=tiny, size=size)
    _write_items(Path(path), images, files, hashes, 0.2)
    project = Project(path)
    taught = sorted(truth)[:: max(count // labels, 1)][:labels]
    with project.lock:
        project.teach({f: truth[f] for f in taught}, annotator="bench")
    return truth


def allocator_pass(batches, chunk):
    """The allocations of a pass over ``batches`` batches.

    Each batch makes and frees the small CNN's activations of 32 64x64
    images (32, 64 and 128 channels, pooled twice) and keeps a (32, 130)
    output, all of them until the end (``chunk`` 0) or ``chunk`` at a time.
    """
    import torch

    kept, results = [], []
    for _ in range(batches):
        stage1 = torch.empty(32, 32, 64, 64).fill_(1)
        pooled = torch.empty(32, 32, 32, 32).fill_(1)
        del stage1
        stage2 = torch.empty(32, 64, 32, 32).fill_(1)
        pooled = torch.empty(32, 64, 16, 16).fill_(1)
        stage3 = torch.empty(32, 128, 16, 16).fill_(1)
        kept.append(torch.empty(32, 130).fill_(0.5))
        del stage2, pooled, stage3
        if chunk and len(kept) == chunk:
            results.append(torch.cat(kept).numpy().copy())
            kept = []


def allocator_demo(batches=1250):
    """:func:`allocator_pass` in a thread, as one call over the pool, then in chunks of 8."""
    from skal.label.worker import release_freed_memory

    for chunk in (0, 8):
        before = status_mb()[2]
        thread = threading.Thread(target=allocator_pass, args=(batches, chunk))
        thread.start()
        thread.join()
        grown = status_mb()[2] - before
        release_freed_memory()  # the next pass starts from the same resident memory
        print(f"{batches} batches, {f'{chunk} batches a call' if chunk else 'one call'}: "
              f"anonymous resident memory +{grown:.0f} MB after the pass, "
              f"{status_mb()[2] - before:+.0f} MB after malloc_trim", flush=True)


def wait_idle(worker):
    """Wait for the worker's run to end; RuntimeError with its message if it failed."""
    while worker.busy:
        time.sleep(0.05)
    if worker.status()["stage"] == "error":
        raise RuntimeError(worker.status()["message"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20000)
    parser.add_argument("--labels", type=int, default=200)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--trace", action="store_true", help="trace allocations (tracemalloc)")
    parser.add_argument("--allocator", action="store_true",
                        help="show the allocator's held memory (no network; see above)")
    parser.add_argument("--project", type=Path,
                        help="make the project here, or start from a copy of the one there")
    args = parser.parse_args()
    if args.allocator:
        return allocator_demo()

    import torch

    torch.set_num_threads(args.threads)
    import skal.label.loop as loop
    import skal.label.network as network
    import skal.query._base as base
    import skal.query.hybrid as hybrid
    from skal.label.project import Project
    from skal.label.worker import Worker

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "project"
        start = time.perf_counter()
        if args.project is not None and (args.project / "project.json").is_file():
            shutil.copytree(args.project, path)
        else:
            make_project(args.project or path, args.count, args.size, args.labels)
            if args.project is not None:
                shutil.copytree(args.project, path)
        with open(path / "items.csv", newline="") as fh:
            truth = {r["file"]: CLASSES[r["file"].startswith("a")]  # 'a/...' bright
                     for r in csv.DictReader(fh)}
        print(f"project of {len(truth)} images ready in {time.perf_counter() - start:.1f} s",
              flush=True)

        if args.trace:
            tracemalloc.start()
        mark = Marks()
        for owner, attribute in [(loop, "train"), (loop, "stopping_verdict"),
                                 (loop, "query_batch"), (loop, "explain"),
                                 (network._OnePoolPass, "predict_proba_and_embed"),
                                 (hybrid, "badge_kmeanspp"), (base.QueryPool, "result")]:
            wrap(owner, attribute, mark)
        original_learner = loop._learner
        loop._learner = lambda *a, **k: (mark("in _learner (X[ids], fit)"),
                                         original_learner(*a, **k), mark("after _learner"))[1]
        mark("open the project")
        project = Project(path)
        mark(f"project open (images: {type(project.images).__name__})")
        worker = Worker(project, ahead=True)
        worker.start()
        wait_idle(worker)
        mark("worker idle: first batch and the next chosen; answering")
        batch = project.open_batch()
        with project.lock:
            project.record_answers([{"id": i, "label": truth[project.files[i]]}
                                    for i in batch["ids"]], annotator="bench")
            project.submit(batch["round"], annotator="bench")
        worker.start()
        wait_idle(worker)
        mark("end")
        mark.print()
        rss, _, anon, file = status_mb()
        peak = max(row[3] for row in mark.rows)
        print(f"\n{len(truth)} images {args.size}x{args.size}, {args.labels} labels, "
              f"{args.threads} torch threads; images.npy {project.images.nbytes / 2**20:.0f} MB; "
              f"resident {rss:.0f} MB now ({anon:.0f} anonymous, {file:.0f} file pages), "
              f"{peak:.0f} MB at its peak")


if __name__ == "__main__":
    main()
