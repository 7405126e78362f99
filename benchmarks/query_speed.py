"""Speed and memory of skal's k-center and BADGE kernels against the alternatives.

Every contender gets the SAME inputs, generated once per (kind, N) and written
to .npy files; each measurement runs in its own subprocess, which loads the
inputs, imports what it needs, warms up, and only then starts the clock and
the memory baseline. Reported per measurement:

* wall seconds and CPU seconds (user + system) of the selection alone;
* peak extra memory: the peak resident set size above the baseline (inputs
  loaded), from a 2 ms sampler thread and ``ru_maxrss``; torch and numpy
  allocations are both in it (tracemalloc would miss torch's);
* its ratio to the (N, D) float32 embedding array.

Two kinds of input, d = D = 512, L = 1000 labeled, C = 9 classes:

* ``gauss``: unstructured standard normal embeddings; probabilities from a
  random linear head (unconfident: median max-probability about 0.52);
* ``clustered``: C well-separated groups (means 3 N(0, I), so groups are
  about 96 apart and 32 wide), as a trained network's embeddings are;
  probabilities from a head aligned with the group means plus noise (median
  max-probability about 0.82).

Contenders (``--contenders``):

* ``skal-kcenter``: :func:`skal.kernels.k_center_greedy` (lazy, exact).
* ``naive-kcenter``: the same function with ``method="naive"``: one
  incremental min-distance vector, one full distance row per pick (torch).
* ``fullmatrix-kcenter``: the (N, N + L) float32 distance matrix, then the
  greedy loop on its rows; skipped where it does not fit in memory.
* ``skactiveml-coreset``: scikit-activeml's ``CoreSet`` with X = [pool;
  labeled] (float32) and y = NaN for the pool, 0 for the labeled set.
* ``skal-badge``: :func:`skal.kernels.badge_kmeanspp` (pruned, exact).
* ``naive-badge``: the same with ``method="naive"`` (factorised, no pruning).
* ``fullmatrix-badge``: the (N, C*D) float32 gradient matrix, then the same
  k-means++ draws; skipped where it does not fit.
* ``skactiveml-badge``: scikit-activeml's ``Badge`` with ``fit_clf=False``
  and a classifier stub whose ``predict_proba`` returns the given
  probabilities and embeddings (X is just a column of row indices, so no
  feature validation is charged to it).

The picks of each contender are compared with skal's: k-center ones must be
identical up to float32 rounding ties (a first divergence is checked in
float64 and reported with its relative gap); BADGE ones with the same seed
must be identical for the skal/naive/fullmatrix family (the same inverse-CDF
draws), while scikit-activeml draws differently and only its first pick
(largest gradient norm) must match.

A contender that times out is skipped at larger sizes. Where
scikit-activeml's Badge could not be measured, its time is extrapolated
linearly in N * k from the largest measured size of the same kind, and the
table says ``(extrapolated)``.

The machine this runs on may be shared: ``--wait-quiet`` waits (up to that
many seconds) before each measurement until the other processes leave the
CPUs mostly idle, and the table records how busy they were.

Usage::

    python benchmarks/query_speed.py --quick
    python benchmarks/query_speed.py --sizes 10000 30000 90000 --k 1000 2500 \\
        --out benchmarks/results/query_speed.md
    python benchmarks/query_speed.py --sizes 90000 --k 2500 --contenders skal-badge skactiveml-badge
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

KCENTER = ["skal-kcenter", "naive-kcenter", "fullmatrix-kcenter", "skactiveml-coreset"]
BADGE = ["skal-badge", "naive-badge", "fullmatrix-badge", "skactiveml-badge"]
ALL = KCENTER + BADGE
SEED = 0


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------
def make_inputs(kind, n, n_labeled, dim, n_classes, seed):
    """Pool (N, d), labeled (L, d) and probabilities (N, C), all float32."""
    rng = np.random.default_rng([seed, n, 0 if kind == "gauss" else 1])
    m = n + n_labeled
    if kind == "gauss":
        x = rng.standard_normal((m, dim), dtype=np.float32)
        head = rng.standard_normal((n_classes, dim), dtype=np.float32)
        logits = (x[:n] @ head.T) * (2.0 / np.sqrt(dim))
    elif kind == "clustered":
        means = 3.0 * rng.standard_normal((n_classes, dim), dtype=np.float32)
        x = means[rng.integers(0, n_classes, m)]
        x += rng.standard_normal((m, dim), dtype=np.float32)
        logits = 4.0 * (x[:n] @ means.T) / (means * means).sum(1)
        logits += rng.standard_normal((n, n_classes), dtype=np.float32)
    else:
        raise ValueError(kind)
    logits -= logits.max(1, keepdims=True)
    probs = np.exp(logits)
    probs /= probs.sum(1, keepdims=True)
    return x[:n], x[n:], probs.astype(np.float32)


# --------------------------------------------------------------------------
# contenders (run inside the worker)
# --------------------------------------------------------------------------
def prepare(name, pool, labeled, probs):
    """Returns a zero-argument callable that runs the selection.

    Work that only reshapes the inputs into the form a library expects
    happens here, before the baseline; everything else is in the callable.
    """
    import torch

    if name in ("skal-kcenter", "naive-kcenter"):
        from skal.kernels import k_center_greedy

        method = "lazy" if name == "skal-kcenter" else "naive"
        return lambda k: k_center_greedy(pool, labeled, k, method=method)

    if name in ("skal-badge", "naive-badge"):
        from skal.kernels import badge_kmeanspp

        method = "pruned" if name == "skal-badge" else "naive"
        return lambda k: badge_kmeanspp(probs, pool, k, method=method, random_state=SEED)

    if name == "fullmatrix-kcenter":

        def run(k):
            x = torch.from_numpy(pool)
            n = x.shape[0]
            ys = torch.cat([x, torch.from_numpy(labeled)])  # pool then labeled
            ysq = torch.linalg.vector_norm(ys, dim=1).square_()
            full = torch.empty((n, ys.shape[0]))
            for s in range(0, n, 2048):
                blk = full[s:s + 2048]
                torch.addmm(ysq[None, :], x[s:s + 2048], ys.T, alpha=-2, out=blk)
                blk.add_(ysq[s:s + blk.shape[0], None]).clamp_min_(0)
            mind = full[:, n:].min(1).values
            picks = []
            for _ in range(k):
                i = int(torch.argmax(mind))
                picks.append(i)
                torch.minimum(mind, full[i, :n], out=mind)  # symmetric: a row
                mind[picks] = float("-inf")
            return np.asarray(picks)

        return run

    if name == "fullmatrix-badge":

        def run(k):
            h = torch.from_numpy(pool)
            p = torch.from_numpy(probs)
            a = p.clone()
            a[torch.arange(len(a)), p.argmax(1)] -= 1
            g = (a[:, :, None] * h[:, None, :]).reshape(len(h), -1)  # (N, C*D)
            gsq = torch.linalg.vector_norm(g, dim=1).square_()
            rng = np.random.RandomState(SEED)
            chosen = torch.zeros(len(h), dtype=torch.bool)
            from skal.kernels import draw_d2  # skal's draw, so the picks can be compared

            j = int(torch.argmax(gsq))
            picks = [j]
            chosen[j] = True
            d2 = torch.addmv(gsq + gsq[j], g, g[j], alpha=-2).clamp_min_(0)
            d2[j] = 0
            while len(picks) < k:
                j = draw_d2(d2, chosen, rng)
                picks.append(j)
                chosen[j] = True
                new = torch.addmv(gsq + gsq[j], g, g[j], alpha=-2).clamp_min_(0)
                torch.minimum(d2, new, out=d2)
                d2[j] = 0
            return np.asarray(picks)

        return run

    if name == "skactiveml-coreset":
        from skactiveml.pool import CoreSet

        x_all = np.concatenate([pool, labeled])
        y_all = np.full(len(x_all), np.nan)
        y_all[len(pool):] = 0
        return lambda k: np.asarray(CoreSet(random_state=SEED).query(x_all, y_all, batch_size=k))

    if name == "skactiveml-badge":
        from skactiveml.base import SkactivemlClassifier
        from skactiveml.pool import Badge

        class Precomputed(SkactivemlClassifier):
            """Returns the given probabilities and embeddings; X holds row ids."""

            def __init__(self, probs=None, embeddings=None, missing_label=np.nan):
                super().__init__(missing_label=missing_label)
                self.probs = probs
                self.embeddings = embeddings

            def fit(self, X, y, sample_weight=None):
                return self

            def predict_proba(self, X, **kwargs):
                rows = np.asarray(X)[:, 0].astype(np.int64)
                if len(rows) == len(self.probs) and (rows == np.arange(len(rows))).all():
                    return self.probs, self.embeddings  # no copy for the whole pool
                return self.probs[rows], self.embeddings[rows]

        x_ids = np.arange(len(pool), dtype=np.float64)[:, None]
        y_all = np.full(len(pool), np.nan)
        clf = Precomputed(probs, pool)
        return lambda k: np.asarray(
            Badge(random_state=SEED).query(x_ids, y_all, clf=clf, fit_clf=False, batch_size=k)
        )

    raise ValueError(f"unknown contender {name!r}")


def _rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def worker(spec):
    """Runs one measurement; prints one JSON line."""
    import resource

    import torch

    if spec.get("threads"):
        torch.set_num_threads(spec["threads"])
    pool = np.load(spec["pool"])
    labeled = np.load(spec["labeled"])
    probs = np.load(spec["probs"])
    # Warm-up: the same contender on a small slice, so that imports, thread
    # pools and first-call kernel dispatch are not charged to the run.
    m = min(len(pool), 512)
    prepare(spec["name"], pool[:m], labeled[:64], probs[:m])(min(spec["k"], 16, m))
    run = prepare(spec["name"], pool, labeled, probs)

    base = _rss_bytes()
    maxrss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    peak = [base]
    done = threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.002)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    c0, t0 = time.process_time(), time.perf_counter()
    picks = run(spec["k"])
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    done.set()
    sampler.join()
    peak[0] = max(peak[0], _rss_bytes())
    maxrss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if maxrss_after > maxrss_before:  # the run set a new lifetime peak: exact
        peak[0] = max(peak[0], maxrss_after)
    np.save(spec["picks"], np.asarray(picks, dtype=np.int64))
    print(json.dumps({"wall": wall, "cpu": cpu, "peak_extra": peak[0] - base, "n_picks": len(picks)}))


# --------------------------------------------------------------------------
# the parent: scheduling, agreement checks, table
# --------------------------------------------------------------------------
def cpu_busy(interval=1.0):
    """Fraction of all CPUs busy over `interval` seconds (from /proc/stat)."""
    def read():
        with open("/proc/stat") as f:
            v = [int(t) for t in f.readline().split()[1:]]
        idle = v[3] + v[4]
        return sum(v) - idle, sum(v)

    b0, t0 = read()
    time.sleep(interval)
    b1, t1 = read()
    return (b1 - b0) / max(t1 - t0, 1)


def wait_quiet(max_wait, threshold=0.15):
    """Wait until the CPUs are < threshold busy for 2 s running; returns busy."""
    if max_wait <= 0:
        return cpu_busy(0.5)
    deadline = time.time() + max_wait
    quiet = 0
    busy = 1.0
    while time.time() < deadline:
        busy = cpu_busy(1.0)
        quiet = quiet + 1 if busy < threshold else 0
        if quiet >= 2:
            break
    return busy


def fits_in_memory(nbytes):
    try:
        with open("/proc/meminfo") as f:
            info = {l.split(":")[0]: int(l.split()[1]) * 1024 for l in f}
        avail = info["MemAvailable"]
    except OSError:
        return True
    return nbytes < 0.6 * avail


def materialised_bytes(name, n, n_labeled, dim, n_classes):
    if name == "fullmatrix-kcenter":
        return 4 * n * (n + n_labeled) + 4 * n * dim
    if name == "fullmatrix-badge":
        return 4 * n * n_classes * dim * 2
    if name == "skactiveml-badge":  # float64 (N, C*D) plus a distance chunk
        return 8 * n * n_classes * dim * 2
    return 0


def kcenter_gap(pool, labeled, picks_a, picks_b):
    """First index where two k-center pick lists differ, and the float64
    relative gap of the two candidates' distances there (a rounding tie when
    tiny)."""
    diff = np.flatnonzero(picks_a[: len(picks_b)] != picks_b[: len(picks_a)])
    if len(diff) == 0:
        return None, None
    i = int(diff[0])
    centers = np.concatenate([labeled, pool[picks_a[:i]]]).astype(np.float64)
    cand = pool[[picks_a[i], picks_b[i]]].astype(np.float64)
    d = ((cand[:, None, :] - centers[None, :, :]) ** 2).sum(-1).min(1)
    return i, abs(d[0] - d[1]) / max(d.max(), 1e-300)


def agreement(name, picks, ref_name, ref, pool, labeled, first_only=False):
    if picks is None or ref is None:
        return ""
    if first_only:
        return f"first pick {'=' if picks[0] == ref[0] else '!='} {ref_name}'s"
    if np.array_equal(picks, ref):
        return f"picks identical to {ref_name}"
    if name in KCENTER:
        i, gap = kcenter_gap(pool, labeled, ref, picks)
        return f"picks = {ref_name}'s up to #{i}, then a float32 tie (rel. gap {gap:.1e}); overlap {len(np.intersect1d(picks, ref))}/{len(ref)}"
    i = int(np.flatnonzero(picks != ref)[0])
    return f"picks = {ref_name}'s up to #{i} (float32 rounding of D^2 at a draw); overlap {len(np.intersect1d(picks, ref))}/{len(ref)}"


def run_one(script, spec, timeout):
    cmd = [sys.executable, str(script), "--_worker", json.dumps(spec)]
    env = dict(os.environ)
    if spec.get("threads"):  # every OpenMP/BLAS runtime in the child, not only torch's
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(spec["threads"])
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    except subprocess.TimeoutExpired:
        return {"status": f"timeout (> {timeout:.0f} s)"}
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return {"status": f"failed: {tail[0][:120]}"}
    res = json.loads(proc.stdout.strip().splitlines()[-1])
    res["status"] = "ok"
    return res


def fmt_table(rows):
    cols = ["kind", "N", "k", "contender", "wall_s", "cpu_s", "peak_extra_MB", "peak/emb",
            "skal_speedup", "cpu_busy_before", "note"]
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(str(r.get(c, "")) for c in cols) + " |")
    return "\n".join(lines), cols


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[10000, 30000, 90000], help="pool sizes N")
    ap.add_argument("--k", type=int, nargs="+", default=[1000, 2500], help="batch sizes")
    ap.add_argument("--kinds", nargs="+", default=["gauss", "clustered"], choices=["gauss", "clustered"])
    ap.add_argument("--labeled", type=int, default=1000, help="labeled set size L")
    ap.add_argument("--dim", type=int, default=512, help="embedding dimension d = D")
    ap.add_argument("--classes", type=int, default=9, help="number of classes C")
    ap.add_argument("--contenders", nargs="+", default=ALL, choices=ALL)
    ap.add_argument("--timeout", type=float, default=900, help="seconds per measurement")
    ap.add_argument("--threads", type=int, default=None,
                    help="intra-op threads of every contender (torch, OpenMP, BLAS); default: library defaults")
    ap.add_argument("--wait-quiet", type=float, default=0,
                    help="before each measurement wait up to this many seconds for idle CPUs")
    ap.add_argument("--quick", action="store_true", help="tiny smoke run (N=3000, k=200, d=64, L=200)")
    ap.add_argument("--out", type=Path, help="write the table: .csv as CSV, anything else as markdown")
    ap.add_argument("--workdir", type=Path, help="where inputs and picks go (default: a temp dir)")
    ap.add_argument("--_worker", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)

    if args._worker:
        worker(json.loads(args._worker))
        return
    if args.quick:
        args.sizes, args.k, args.dim, args.labeled = [3000], [200], 64, 200
        args.timeout = min(args.timeout, 300)

    script = Path(__file__).resolve()
    tmp = tempfile.TemporaryDirectory(prefix="query_speed_") if args.workdir is None else None
    workdir = Path(tmp.name) if tmp else args.workdir
    workdir.mkdir(parents=True, exist_ok=True)
    import torch

    print(f"# query_speed: {os.cpu_count()} CPUs, torch {torch.__version__}, "
          f"threads {args.threads or f'default ({torch.get_num_threads()})'}, "
          f"d={args.dim}, L={args.labeled}, C={args.classes}", flush=True)
    rows, timed_out = [], {}
    for kind in args.kinds:
        for n in sorted(args.sizes):
            pool, labeled, probs = make_inputs(kind, n, args.labeled, args.dim, args.classes, SEED)
            paths = {}
            for key, arr in (("pool", pool), ("labeled", labeled), ("probs", probs)):
                paths[key] = str(workdir / f"{kind}_{n}_{key}.npy")
                np.save(paths[key], arr)
            emb_bytes = pool.nbytes
            for k in sorted(args.k):
                picks, times = {}, {}
                for name in args.contenders:
                    row = {"kind": kind, "N": n, "k": k, "contender": name}
                    if k > n:
                        continue
                    prev = timed_out.get((kind, name))
                    need = materialised_bytes(name, n, args.labeled, args.dim, args.classes)
                    if prev and prev[0] <= n and prev[1] <= k:
                        row["note"] = f"skipped: timed out at N={prev[0]}, k={prev[1]}"
                    elif need and not fits_in_memory(need):
                        row["note"] = f"skipped: needs ~{need / 2**30:.1f} GiB, does not fit"
                    else:
                        row["cpu_busy_before"] = f"{wait_quiet(args.wait_quiet):.0%}"
                        spec = dict(paths, name=name, k=k, threads=args.threads, picks=str(workdir / f"picks_{kind}_{n}_{k}_{name}.npy"))
                        res = run_one(script, spec, args.timeout)
                        if res["status"] == "ok":
                            row.update(wall_s=f"{res['wall']:.2f}", cpu_s=f"{res['cpu']:.2f}",
                                       peak_extra_MB=f"{res['peak_extra'] / 2**20:.0f}",
                                       **{"peak/emb": f"{res['peak_extra'] / emb_bytes:.2f}"})
                            picks[name] = np.load(spec["picks"])
                            times[name] = res["wall"]
                        else:
                            row["note"] = res["status"]
                            if res["status"].startswith("timeout"):
                                timed_out[(kind, name)] = (n, k)
                    rows.append(row)
                    _write_table(args.out, rows)  # after every row: a killed run keeps what it measured
                    print(f"  {kind} N={n} k={k} {name}: {row.get('wall_s', '-')} s, "
                          f"{row.get('peak_extra_MB', '-')} MB {row.get('note', '')}", flush=True)
                _annotate(rows, kind, n, k, picks, times, pool, labeled)
                _write_table(args.out, rows)
    _extrapolate(rows)
    table, cols = fmt_table(rows)
    print()
    print(table)
    print()
    for line in _ratio_lines(rows):
        print(line)
    if args.out:
        _write_table(args.out, rows)
        print(f"\nwritten to {args.out}")
    if tmp:
        tmp.cleanup()


def _write_table(out, rows):
    """Rewrites the table at `out` (.csv as CSV, anything else as markdown)."""
    if out is None:
        return
    table, cols = fmt_table(rows)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    if out.suffix == ".csv":
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for r in rows:
                w.writerow({c: r.get(c, "") for c in cols})
    else:
        tmp.write_text(table + "\n\n" + "\n".join(_ratio_lines(rows)) + "\n")
    os.replace(tmp, out)


def _annotate(rows, kind, n, k, picks, times, pool, labeled):
    """Agreement notes and skal's speedup over each contender, per config."""
    here = [r for r in rows if (r["kind"], r["N"], r["k"]) == (kind, n, k)]
    for r in here:
        name = r["contender"]
        if name not in picks:
            continue
        skal = "skal-kcenter" if name in KCENTER else "skal-badge"
        if name != skal and skal in times:
            r["skal_speedup"] = f"{times[name] / times[skal]:.1f}x"
            note = agreement(name, picks[name], skal, picks.get(skal), pool, labeled,
                             first_only=name == "skactiveml-badge")
            r["note"] = "; ".join(x for x in (r.get("note"), note) if x)


def _extrapolate(rows):
    """Where scikit-activeml's Badge was not measured, estimate it linearly in
    N * k from the largest measured size of the same kind; say so."""
    for r in rows:
        if r["contender"] != "skactiveml-badge" or r.get("wall_s"):
            continue
        measured = [m for m in rows if m["contender"] == "skactiveml-badge" and m.get("wall_s")
                    and m["kind"] == r["kind"]]
        if not measured:
            continue
        m = max(measured, key=lambda m: (m["N"] * m["k"], m["N"]))
        est = float(m["wall_s"]) * (r["N"] * r["k"]) / (m["N"] * m["k"])
        r["est_wall"] = est
        skal = next((s for s in rows if s["contender"] == "skal-badge" and
                     (s["kind"], s["N"], s["k"]) == (r["kind"], r["N"], r["k"]) and s.get("wall_s")), None)
        r["note"] = (r.get("note", "") + f"; ~{est:.0f} s extrapolated from N={m['N']}, k={m['k']} "
                     "(linear in N*k), NOT measured").lstrip("; ")
        if skal:
            r["skal_speedup"] = f"~{est / float(skal['wall_s']):.0f}x (extrapolated)"


def _ratio_lines(rows):
    out = []
    by_cfg = {}
    for r in rows:
        by_cfg.setdefault((r["kind"], r["N"], r["k"]), []).append(r)
    for (kind, n, k), rs in by_cfg.items():
        parts = []
        for fam, skal in (("kcenter", "skal-kcenter"), ("badge", "skal-badge")):
            s = next((r for r in rs if r["contender"] == skal and r.get("wall_s")), None)
            if not s:
                continue
            vs = [f"{r['skal_speedup']} vs {r['contender']}" for r in rs
                  if r.get("skal_speedup") and (r["contender"] in KCENTER) == (fam == "kcenter")]
            parts.append(f"{skal} {s['wall_s']} s, peak {s['peak/emb']}x emb ({', '.join(vs) or 'no other'})")
        out.append(f"{kind:9s} N={n:6d} k={k:5d}: " + " | ".join(parts))
    return out


if __name__ == "__main__":
    main()
