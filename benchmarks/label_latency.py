"""Time from "batch complete" (submit) to "next batch shown and answerable" in ``skal label serve``.

Builds a folder of synthetic 64x64 grayscale PNGs (two classes: a bright or a
dark disc on noise), creates a labeling project (small_cnn, BADGE, batch 20,
the project defaults otherwise), imports ``--labels`` labels with ``teach``,
trains once to catch up (not timed: a real project gets there batch by
batch), and copies the project once per mode. Each copy is served with
``python -m skal.label serve`` in a subprocess (``--sync`` for the
synchronous mode, the mode of skal before the next batch was chosen ahead)
and, for each of ``--rounds`` rounds, the benchmark answers the open batch
through the API, submits it, polls ``/api/state`` every 20 ms until the
next batch is open, and saves one answer to it: that wall time is
"submit -> next batch answerable".

In the default (ahead) mode the model trains and picks the following batch
while the person labels. The benchmark plays a person who labels for at
least as long as that takes: before each submit it waits until the next
batch is chosen and the worker is idle, and reports that background time
(a person who submits a batch faster than that waits for the rest of it).

Reported per round: the wall time, the server process's CPU seconds during
it and during the whole round (background work included), and the 1-minute
load average (on a shared machine the wall time grows with the load).

Usage::

    python benchmarks/label_latency.py [--labels 1000] [--pool 3000] [--rounds 10]
        [--modes sync ahead] [--threads 2] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from skal.label.loop import advance  # noqa: E402
from skal.label.project import create_project  # noqa: E402

CLASSES = ["dark", "bright"]


def make_folder(root, n, size, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size]
    truth = {}
    for i in range(n):
        cls = i % 2
        cy, cx, r = rng.integers(size // 4, 3 * size // 4, 2).tolist() + [size // 6]
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 < r * r
        pixels = rng.normal(110, 30, (size, size))
        pixels[disc] += 60 if cls else -60
        name = f"{'ab'[i % 2 == 0]}/{i:05d}.png"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(root / name)
        truth[name] = CLASSES[cls]
    return truth


def cpu_seconds(pid):
    """User + system CPU seconds of a process so far (Linux /proc), or None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return None


def request(port, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", data=data,
                                 method="GET" if body is None else "POST",
                                 headers={"Content-Type": "application/json",
                                          "Origin": f"http://127.0.0.1:{port}"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def wait_state(port, predicate, timeout=600, interval=0.02):
    """Poll ``/api/state`` until ``predicate(state)``; return the state."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            state = request(port, "/api/state")
            if predicate(state):
                return state
        except OSError:  # not up yet
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting for the server")
        time.sleep(interval)


def run_mode(project_path, mode, truth, args):
    """Serve a copy of the project in ``mode`` and time ``args.rounds`` submits; return rows."""
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(args.threads))
    command = [sys.executable, "-m", "skal.label", "serve", str(project_path),
               "--port", str(args.port)] + (["--sync"] if mode == "sync" else [])
    server = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL,
                              stderr=subprocess.STDOUT)
    rows = []
    try:
        state = wait_state(args.port, lambda s: s["batch"])
        round_start, cpu_round = time.perf_counter(), cpu_seconds(server.pid)
        for _ in range(args.rounds):
            if mode == "ahead":  # the person labels while the model catches up
                state = wait_state(args.port, lambda s: s["next_batch"]
                                   and s["worker"]["stage"] == "idle", interval=0.1)
            background = time.perf_counter() - round_start
            batch = state["batch"]
            labeled = request(args.port, "/api/answers", {"round": batch["round"], "answers": [
                {"id": it["id"], "label": truth[it["file"]]} for it in batch["items"]]}
            )["counts"]["labeled"]
            start, cpu_start = time.perf_counter(), cpu_seconds(server.pid)
            request(args.port, "/api/submit", {"round": batch["round"]})
            state = wait_state(args.port, lambda s: s["batch"]
                               and s["batch"]["round"] == batch["round"] + 1)
            item = state["batch"]["items"][0]
            request(args.port, "/api/answers", {"round": state["batch"]["round"], "answers": [
                {"id": item["id"], "label": truth[item["file"]]}]})
            elapsed = time.perf_counter() - start
            cpu_end = cpu_seconds(server.pid)
            cpu = None if cpu_start is None or cpu_end is None else cpu_end - cpu_start
            cpu_all = None if cpu_round is None or cpu_end is None else cpu_end - cpu_round
            round_start, cpu_round = time.perf_counter(), cpu_end
            load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
            rows.append({"round": batch["round"], "labels": labeled, "seconds": elapsed,
                         "cpu": cpu, "cpu_round": cpu_all, "load": load,
                         "background": background if mode == "ahead" else None,
                         "picked_by": state["batch"]["model_version"],
                         "model": state["model_version"]})
            fmt = (lambda v: "n/a" if v is None else f"{v:.1f} s")
            print(f"{mode:5s} round {batch['round']}: {labeled} labels; submit -> next batch "
                  f"answerable {elapsed:.2f} s (server CPU {fmt(cpu)}; whole round "
                  f"{fmt(cpu_all)}"
                  + (f", background training + query {background:.1f} s" if mode == "ahead"
                     else "")
                  + f"); batch picked by model v{state['batch']['model_version']}; load "
                  f"{load:.1f}", flush=True)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=3000, help="images in the folder")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--modes", nargs="+", default=["sync", "ahead"],
                        choices=["sync", "ahead"])
    parser.add_argument("--threads", type=int, default=2, help="torch threads of the server")
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs per round (default: the project default)")
    args = parser.parse_args()

    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        truth = make_folder(tmp / "images", args.pool, args.size)
        project, _ = create_project(tmp / "project", images=tmp / "images", classes=CLASSES,
                                    size=args.size, model="small_cnn", method="badge", batch=20,
                                    epochs=args.epochs)
        config = project.config
        files = sorted(truth)
        rng = np.random.default_rng(1)
        chosen = rng.choice(len(files), args.labels, replace=False)
        project.teach({files[i]: truth[files[i]] for i in chosen}, annotator="benchmark")
        start = time.perf_counter()
        advance(project)  # catch-up training on the imported labels: not timed
        print(f"catch-up training and first query: {time.perf_counter() - start:.1f} s "
              f"({project.model_meta['n_train']} training labels, "
              f"{project.model_meta['n_holdout']} held out)", flush=True)
        del project
        for mode in args.modes:  # each mode from the same starting point
            shutil.copytree(tmp / "project", tmp / mode)
            results[mode] = run_mode(tmp / mode, mode, truth, args)

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nsmall_cnn {args.size}x{args.size}, method badge, batch 20, "
          f"{config['epochs']} warm-start epochs, pool {args.pool}, {args.labels}+ labels, "
          f"{args.threads} torch threads, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}); 1-minute load average at the end "
          f"{load:.1f}")
    for mode, rows in results.items():
        seconds = [r["seconds"] for r in rows]
        cpus = [r["cpu"] for r in rows if r["cpu"] is not None]
        line = (f"{mode:5s}: submit -> next batch answerable: median "
                f"{statistics.median(seconds):.2f} s, worst {max(seconds):.2f} s over {len(rows)} rounds; server CPU in that "
                f"time (median) {statistics.median(cpus) if cpus else float('nan'):.2f} s")
        if mode == "ahead":
            background = [r["background"] for r in rows]
            met = statistics.median(seconds) <= 0.5 and max(seconds) <= 1
            line += (f"; background training + query per round (median) "
                     f"{statistics.median(background):.1f} s; target median <= 0.5 s and worst "
                     f"<= 1 s: {'met' if met else 'NOT met'}")
        print(line)


if __name__ == "__main__":
    main()
