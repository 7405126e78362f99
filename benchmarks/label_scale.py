"""``skal label`` on a large folder: init time and memory, and the page's requests under load.

Writes ``--count`` synthetic 64x64 grayscale PNGs (as ``label_latency.py``
does), then, each in its own process as a user would run them:

1. ``skal label init`` on the folder: wall time and peak memory (the
   child's maximum resident set size);
2. ``skal label teach`` of ``--labels`` labels, so that there is a model to
   train;
3. ``skal label serve`` (the default mode: the next batch is chosen ahead):
   the first batch is answered and submitted, which starts the background
   work (training on every label, then choosing the next batch); while it
   runs, the benchmark polls ``/api/state`` and saves single answers to the
   open batch, as the page does, and times each request.

Printed: init seconds and peak MB, the number of requests and the median
and worst latency of each kind during the background work, and the
server's resident memory (now, of which anonymous and file pages, and at
its peak). ``benchmarks/label_memory.py`` says where it goes, stage by stage.

Usage::

    python benchmarks/label_scale.py                    # 2,000 images
    python benchmarks/label_scale.py --count 100000     # a lab's folder (about 1 GB of
                                                        # temporary files: PNGs and images.npy)
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.label_latency import make_folder, request, wait_state  # noqa: E402


def rss_mb(pid):
    """Resident memory of a process in MB (Linux /proc): now, peak, anonymous, file pages.

    The file pages (libraries, the memory-mapped ``images.npy``) are part of
    "now"; the kernel can drop them at any time. All None where /proc lacks them.
    """
    try:
        fields = dict(line.split(":", 1) for line in
                      Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line)
        return tuple(int(fields[k].split()[0]) / 1024
                     for k in ("VmRSS", "VmHWM", "RssAnon", "RssFile"))
    except (OSError, KeyError, ValueError):
        return None, None, None, None


def label_command(*args, env):
    """Run ``python -m skal.label ARGS``; return its wall seconds."""
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "skal.label", *map(str, args)], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    return time.perf_counter() - start


def timed(call):
    start = time.perf_counter()
    result = call()
    return time.perf_counter() - start, result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000, help="images in the folder")
    parser.add_argument("--labels", type=int, default=200, help="labels taught before serving")
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2, help="torch threads of each process")
    parser.add_argument("--port", type=int, default=8792)
    args = parser.parse_args()

    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS=str(args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        truth = make_folder(tmp / "images", args.count, args.size)
        print(f"wrote {args.count} PNGs in {time.perf_counter() - start:.1f} s", flush=True)
        init_seconds = label_command("init", tmp / "project", "--images", tmp / "images",
                                     "--classes", "dark", "bright", "--size", args.size, env=env)
        # ru_maxrss of children: the largest child so far, in KB on Linux.
        init_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"init: {init_seconds:.1f} s, peak {init_peak:.0f} MB", flush=True)
        files = sorted(truth)[:: max(len(truth) // args.labels, 1)][: args.labels]
        labels_csv = tmp / "labels.csv"
        labels_csv.write_text("file,label\n" + "".join(f"{f},{truth[f]}\n" for f in files))
        teach_seconds = label_command("teach", tmp / "project", labels_csv, env=env)
        print(f"teach {len(files)} labels: {teach_seconds:.1f} s", flush=True)

        server = subprocess.Popen([sys.executable, "-m", "skal.label", "serve",
                                   str(tmp / "project"), "--port", str(args.port)],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        try:
            start = time.perf_counter()
            state = wait_state(args.port, lambda s: s["batch"] and s["worker"]["stage"] == "idle",
                               timeout=3600, interval=0.5)
            print(f"serve: first batch and the next chosen ahead after "
                  f"{time.perf_counter() - start:.1f} s", flush=True)
            batch = state["batch"]
            request(args.port, "/api/answers", {"round": batch["round"], "answers": [
                {"id": it["id"], "label": truth[it["file"]]} for it in batch["items"]]})
            request(args.port, "/api/submit", {"round": batch["round"]})
            polls, answers, stages = [], [], set()
            while True:  # the background work: training on the new labels, choosing ahead
                seconds, state = timed(lambda: request(args.port, "/api/state"))
                polls.append(seconds)
                stages.add(state["worker"]["stage"])
                if state["worker"]["stage"] == "idle" and state["next_batch"]:
                    break
                items = state["batch"]["items"]
                item = items[len(answers) % len(items)]
                seconds, _ = timed(lambda: request(args.port, "/api/answers", {
                    "round": state["batch"]["round"],
                    "answers": [{"id": item["id"], "label": truth[item["file"]]}]}))
                answers.append(seconds)
                time.sleep(0.2)
            rss, peak, anon, file = rss_mb(server.pid)
        finally:
            server.terminate()
            server.wait(timeout=30)

    def summary(values):
        return (f"median {statistics.median(values) * 1000:.0f} ms, worst "
                f"{max(values) * 1000:.0f} ms over {len(values)}") if values else "none"

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"\n{args.count} images {args.size}x{args.size}, {len(files)} labels taught, "
          f"{args.threads} torch threads, {os.cpu_count()} CPUs "
          f"({platform.processor() or platform.machine()}), 1-minute load {load:.1f}")
    print(f"init {init_seconds:.1f} s, peak {init_peak:.0f} MB")
    print(f"during the background work ({', '.join(sorted(stages))}): /api/state "
          f"{summary(polls)}; one answer {summary(answers)}")
    if rss is None:
        print("server memory: not measured (no /proc)")
    else:
        print(f"server memory: {rss:.0f} MB now ({anon:.0f} anonymous, {file:.0f} file pages), "
              f"{peak:.0f} MB at its peak")


if __name__ == "__main__":
    main()
