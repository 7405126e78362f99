"""Time from "batch complete" (submit) to "next batch shown" in ``skal label serve``.

Builds a folder of synthetic 64x64 grayscale PNGs (two classes: a bright or a
dark disc on noise), creates a labeling project (small_cnn, BADGE, batch 20,
the project defaults otherwise), imports ``--labels`` labels with ``teach``,
trains once to catch up (not timed: a real project gets there batch by
batch), then serves it with ``python -m skal.label serve`` in a subprocess
and, for each of ``--rounds`` rounds, answers the open batch through the API,
submits it and polls ``/api/state`` every 50 ms until the next batch is open.

Reported per round: the wall time from the submit request to the next batch
being available, and its parts from the project's own records (training
seconds from ``model/model.json``, query seconds from ``batches.jsonl``),
the slowest ``/api/state`` answer while the model trained (the page polls it
then; tests/test_label_api.py checks it answers, this measures how fast),
plus the server process's CPU seconds (on a shared machine the wall time
grows with the load; CPU seconds / threads is the time on idle cores). The
page itself polls every 0.5 s while the model trains, so it shows the batch
at most about 0.5 s later than measured here.

Usage::

    python benchmarks/label_latency.py [--labels 1000] [--pool 3000] [--rounds 3] [--epochs N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=1000)
    parser.add_argument("--pool", type=int, default=3000, help="images in the folder")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--epochs", type=int, default=None,
                        help="training epochs per round (default: the project default)")
    args = parser.parse_args()

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

        env = dict(os.environ, PYTHONPATH=str(REPO))
        server = subprocess.Popen([sys.executable, "-m", "skal.label", "serve",
                                   str(tmp / "project"), "--port", str(args.port)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        rows = []
        try:
            deadline = time.monotonic() + 120
            while True:
                try:
                    state = request(args.port, "/api/state")
                    if state["batch"]:
                        break
                except OSError:
                    pass
                if time.monotonic() > deadline:
                    raise RuntimeError("server did not start")
                time.sleep(0.2)
            for _ in range(args.rounds):
                batch = state["batch"]
                request(args.port, "/api/answers", {"round": batch["round"], "answers": [
                    {"id": it["id"], "label": truth[it["file"]]} for it in batch["items"]]})
                labeled = state["counts"]["labeled"] + len(batch["items"])
                start, cpu_start = time.perf_counter(), cpu_seconds(server.pid)
                request(args.port, "/api/submit", {"round": batch["round"]})
                slowest_state = 0.0  # the page's poll must answer while the model trains
                while True:
                    asked = time.perf_counter()
                    state = request(args.port, "/api/state")
                    slowest_state = max(slowest_state, time.perf_counter() - asked)
                    if state["batch"] and state["batch"]["round"] == batch["round"] + 1:
                        break
                    time.sleep(0.05)
                elapsed = time.perf_counter() - start
                cpu_end = cpu_seconds(server.pid)
                cpu = None if cpu_start is None or cpu_end is None else cpu_end - cpu_start
                meta = json.loads((tmp / "project" / "model" / "model.json").read_text())
                last = [json.loads(line) for line in
                        (tmp / "project" / "batches.jsonl").read_text().splitlines()
                        if '"type": "batch"' in line][-1]
                rows.append((labeled, elapsed, meta["train_seconds"], last["query_seconds"], cpu))
                print(f"round {batch['round']}: {labeled} labels ({meta['n_train']} trained on): "
                      f"submit -> next batch {elapsed:.2f} s (training {meta['train_seconds']:.2f} "
                      f"s, query+why {last['query_seconds']:.2f} s); server CPU "
                      f"{'n/a' if cpu is None else f'{cpu:.1f} s'}; slowest /api/state answer "
                      f"meanwhile {slowest_state:.3f} s", flush=True)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    median = statistics.median(r[1] for r in rows)
    cpus = [r[4] for r in rows if r[4] is not None]
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\nsmall_cnn {args.size}x{args.size}, method badge, batch 20, "
          f"{config['epochs']} warm-start epochs, pool {args.pool}, {args.labels}+ labels, "
          f"{torch.get_num_threads()} torch threads, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}): median submit -> next batch "
          f"{median:.2f} s over {len(rows)} rounds"
          + (f"; server CPU per round (median) {statistics.median(cpus):.1f} s" if cpus else "")
          + f"; 1-minute load average at the end {load:.1f}")


if __name__ == "__main__":
    main()
