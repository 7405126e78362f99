"""benchmarks/run_all.py: a tiny grid in parallel (joblib, then a local Dask cluster),
reruns that load instead of training, failed cells, and bad input."""

import csv
import os
from pathlib import Path

import pytest

from conftest import write_synthetic_medmnist
from benchmarks import report, run_all
from skal.cli import main as skal_main
from skal.estimator import ImageClassifier
from skal.results import RESULT_COLUMNS

METHODS = ("random", "coreset")
DATASETS = ("breastmnist", "bloodmnist")  # the real file, and a synthetic RGB one
SEEDS = (0, 1)
TINY = ["--preset", "fast", "--model", "small_cnn", "--epochs", "1", "--cycles", "2",
        "--budget", "10", "--device", "cpu"]


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def numbers(rows):
    """What must replay exactly: everything but the timings."""
    return [{k: r[k] for k in r if not k.endswith("seconds")} for r in rows]


def usable_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    """A small synthetic bloodmnist; breastmnist is the copy skal ships."""
    root = tmp_path_factory.mktemp("data")
    write_synthetic_medmnist(root, "bloodmnist", n_per_split=(60, 8, 40))
    return root


def grid_args(root, out, work, *extra):
    return ["--methods", *METHODS, "--datasets", *DATASETS, "--seeds", *map(str, SEEDS), *TINY,
            "--root", str(root), "--no-verify", "--out", str(out), "--work-dir", str(work),
            *extra]


@pytest.fixture(scope="module")
def grid(tmp_path_factory, data_root):
    """The grid run once with joblib and 2 jobs; its output is kept for the other tests."""
    base = tmp_path_factory.mktemp("grid")
    args = grid_args(data_root, base / "out", base / "work", "--jobs", "2")
    rc = run_all.main(args)
    first = (base / "out" / "results.csv").read_bytes()
    return {"args": args, "rc": rc, "out": base / "out", "work": base / "work", "csv": first,
            "root": data_root, "threads": max(1, usable_cores() // 2),
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}


def test_joblib_grid_writes_one_tidy_csv_and_the_report(grid, capsys):
    assert grid["rc"] == 0
    out, work = grid["out"], grid["work"]
    rows = read_rows(out / "results.csv")
    assert tuple(rows[0]) == RESULT_COLUMNS
    assert set(report.REQUIRED_COLUMNS) < set(RESULT_COLUMNS)
    assert [(r["dataset"], r["method"], r["seed"], r["cycle"], r["n_labeled"]) for r in rows] == [
        (d, m, str(s), str(c), str(10 * c))
        for d in DATASETS for m in METHODS for s in SEEDS for c in (1, 2)]
    assert all(0 <= float(r["acc"]) <= 1 and 0 <= float(r["auc"]) <= 1 for r in rows)
    assert not (out / "failures.csv").exists()

    text = (out / "report.md").read_text()
    assert "python benchmarks/run_all.py --methods random coreset" in text
    assert "--jobs 2" in text
    assert (out / "curves_breastmnist.png").is_file() and (out / "curves_bloodmnist.png").is_file()
    # Checkpoints stay in the work dir, one folder per cell, laid out as `skal run --out`.
    assert not list(out.rglob("*.pkl"))
    for d in DATASETS:
        for m in METHODS:
            for s in SEEDS:
                cell = work / "fast" / d / m / f"trial_{s}"
                assert (cell / "checkpoint" / "checkpoint.pkl").is_file()
                assert numbers(read_rows(cell / "results.csv")) == [
                    r for r in numbers(rows)
                    if (r["dataset"], r["method"], r["seed"]) == (d, m, str(s))]
                # no shared per-method results.csv: seeds run at once never race on a file
                assert not (cell.parent / "results.csv").exists()


def test_a_cell_is_the_command_lines_trial(grid, monkeypatch, capsys):
    # `skal run` with the same settings finds the cell's checkpoint and loads it:
    # the grid ran the same experiment through the same code.
    monkeypatch.setattr(ImageClassifier, "fit", lambda *a, **k: pytest.fail("retrained"))
    assert skal_main(["run", "--method", "coreset", "--dataset", "bloodmnist", "--seed", "1",
                      "--trials", "1", *TINY, "--root", str(grid["root"]), "--no-verify",
                      "--out", str(grid["work"])]) == 0
    assert "trial 1: already complete" in capsys.readouterr().err
    cli = read_rows(grid["work"] / "fast" / "bloodmnist" / "coreset" / "results.csv")
    ours = [r for r in read_rows(grid["out"] / "results.csv")
            if (r["dataset"], r["method"], r["seed"]) == ("bloodmnist", "coreset", "1")]
    assert [(r["cycle"], r["acc"], r["auc"]) for r in cli if r["seed"] == "1"] == [
        (r["cycle"], r["acc"], r["auc"]) for r in ours]


def test_rerun_loads_finished_cells_and_writes_the_same_csv(grid, monkeypatch, capsys):
    assert run_all.main(grid["args"]) == 0
    captured = capsys.readouterr()
    n_cells = len(METHODS) * len(DATASETS) * len(SEEDS)
    assert f"0 computed, 0 resumed, {n_cells} loaded, 0 failed" in captured.out
    assert "nothing was recomputed" in captured.out
    assert captured.err.count("loaded from its checkpoint") == n_cells
    assert (grid["out"] / "results.csv").read_bytes() == grid["csv"]

    # In this process (--jobs 1), where a training would be seen.
    monkeypatch.setattr(ImageClassifier, "fit", lambda *a, **k: pytest.fail("retrained"))
    assert run_all.main(grid_args(grid["root"], grid["out"], grid["work"], "--jobs", "1")) == 0
    assert (grid["out"] / "results.csv").read_bytes() == grid["csv"]


def test_reuse_takes_complete_cells_from_a_csv_and_computes_only_the_rest(grid, tmp_path,
                                                                           capsys):
    # The committed grid minus one cell (random, breastmnist, seed 1), and a cell cut short
    # (coreset, bloodmnist, seed 0: cycle 1 only), in a fresh work dir: exactly those two are
    # computed (the same numbers as the grid's), every other row is copied as written.
    lines = grid["csv"].decode().splitlines(keepends=True)
    dropped = [ln for ln in lines[1:] if ln.startswith("random,breastmnist,1,")
               or ln.startswith("coreset,bloodmnist,0,2,")]
    assert len(dropped) == 3
    partial = tmp_path / "partial.csv"
    partial.write_text("".join(ln for ln in lines if ln not in dropped))
    args = grid_args(grid["root"], tmp_path / "out", tmp_path / "work", "--jobs", "1",
                     "--threads", str(grid["threads"]), "--reuse", str(partial))
    assert run_all.main(args) == 0
    captured = capsys.readouterr()
    assert f"6 cell(s) taken from {partial} as they are" in captured.err
    assert "2 computed, 0 resumed, 0 loaded, 0 failed, 6 reused" in captured.out
    assert numbers(read_rows(tmp_path / "out" / "results.csv")) == numbers(
        read_rows(grid["out"] / "results.csv"))
    assert run_all.main(grid_args(grid["root"], tmp_path / "out", tmp_path / "work",
                                  "--reuse", str(tmp_path / "nothing.csv"))) == 2
    err = capsys.readouterr().err
    assert "--reuse" in err and "no such file" in err


def joblib_rows(grid, dataset=None):
    rows = [dict(zip(RESULT_COLUMNS, line.split(",")))
            for line in grid["csv"].decode().splitlines()[1:]]
    return [r for r in rows if dataset in (None, r["dataset"])]


def test_jobs_1_computes_the_numbers_of_jobs_2(grid, tmp_path, capsys):
    # The fixture's grid ran 2 cells at a time in joblib worker processes; the same
    # cells computed one after the other in this process, with the same torch
    # threads per cell, give the same numbers (ACC, AUC, test loss, labeled sets).
    args = ["--methods", *METHODS, "--datasets", "breastmnist", "--seeds", *map(str, SEEDS),
            *TINY, "--root", str(grid["root"]), "--no-verify", "--out", str(tmp_path / "out"),
            "--work-dir", str(tmp_path / "work"), "--jobs", "1",
            "--threads", str(grid["threads"])]
    assert run_all.main(args) == 0
    captured = capsys.readouterr()
    assert "4 computed" in captured.out
    assert captured.err.count(f"({grid['threads']} thread(s), ") == 4
    assert len({line.rsplit(":", 1)[-1].split(")")[0] for line in captured.err.splitlines()
                if "thread(s)" in line}) == 1  # one process: this one
    rows = read_rows(tmp_path / "out" / "results.csv")
    assert all(r["test_loss"] and float(r["test_loss"]) > 0 for r in rows)
    assert numbers(rows) == numbers(joblib_rows(grid, "breastmnist"))
    for method in METHODS:
        for seed in SEEDS:
            cell = Path("fast", "breastmnist", method, f"trial_{seed}", "labeled.csv")
            assert (tmp_path / "work" / cell).read_bytes() == (grid["work"] / cell).read_bytes()


def test_local_dask_cluster_gives_the_joblib_numbers(grid, tmp_path, capsys):
    args = grid_args(grid["root"], tmp_path / "out", tmp_path / "work", "--dask-workers", "2")
    assert run_all.main(args) == 0
    captured = capsys.readouterr()
    assert "8 computed" in captured.out
    assert captured.err.count(f"({grid['threads']} thread(s), ") == 8
    dask_rows = read_rows(tmp_path / "out" / "results.csv")
    assert numbers(dask_rows) == numbers(joblib_rows(grid))
    assert (tmp_path / "out" / "report.md").is_file()
    # distributed sets OMP_NUM_THREADS=1 here to spawn its workers; left there, every
    # later subprocess would train on one thread (and give other numbers).
    assert os.environ.get("OMP_NUM_THREADS") == grid["omp_num_threads"]


def test_existing_scheduler_whose_worker_has_two_threads(grid, tmp_path, capsys):
    # Cells take turns inside a worker process (a trial seeds the process's global
    # generators): a 2-thread worker still gives the joblib numbers (with the
    # joblib run's torch threads: the thread count changes float sums).
    from distributed import LocalCluster

    saved = dict(os.environ)
    try:
        with LocalCluster(n_workers=1, threads_per_worker=2, processes=True,
                          dashboard_address=None) as cluster:
            args = ["--methods", *METHODS, "--datasets", "breastmnist", "--seeds",
                    *map(str, SEEDS), *TINY, "--root", str(grid["root"]), "--no-verify",
                    "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work"),
                    "--scheduler", cluster.scheduler_address, "--threads", str(grid["threads"])]
            assert run_all.main(args) == 0
    finally:
        run_all.restore_environ(saved)
    assert capsys.readouterr().err.count(f"({grid['threads']} thread(s), ") == 4
    rows = read_rows(tmp_path / "out" / "results.csv")
    assert numbers(rows) == numbers(joblib_rows(grid, "breastmnist"))


def test_failed_cells_are_reported_and_the_others_finish(tmp_path, no_network, capsys):
    root = tmp_path / "data"  # breastmnist: the copy skal ships
    root.mkdir()
    # dermamnist's file is missing from the root named explicitly; bald cannot run
    # on a network without dropout: 3 of 4 cells fail.
    args = ["--methods", "random", "bald", "--datasets", "breastmnist", "dermamnist",
            "--seeds", "0", *TINY, "--dropout", "0", "--root", str(root),
            "--out", str(tmp_path / "out"), "--work-dir", str(tmp_path / "work")]
    assert run_all.main(args) == 1
    captured = capsys.readouterr()
    assert "1 computed, 0 resumed, 0 loaded, 3 failed" in captured.out
    assert "bald breastmnist seed 0: ExperimentConfigError: bald needs MC-dropout" in captured.out
    assert "random dermamnist seed 0: DatasetNotFoundError: MedMNIST file 'dermamnist.npz'" \
        in captured.out
    assert len(no_network) == 1  # one download attempt, in the parent, not one per cell
    failures = read_rows(tmp_path / "out" / "failures.csv")
    assert [(f["method"], f["dataset"], f["seed"]) for f in failures] == [
        ("bald", "breastmnist", "0"), ("random", "dermamnist", "0"), ("bald", "dermamnist", "0")]
    assert "dermamnist.npz' was not found" in failures[1]["error"]
    rows = read_rows(tmp_path / "out" / "results.csv")
    assert {(r["method"], r["dataset"]) for r in rows} == {("random", "breastmnist")}
    report = (tmp_path / "out" / "report.md").read_text()
    assert "bald needs MC-dropout" in report and "dermamnist" in report

    # Without the failing cells the rerun succeeds (loading the finished one), and
    # failures.csv goes.
    args[args.index("bald")] = "random"
    args[args.index("dermamnist")] = "breastmnist"
    assert run_all.main(args) == 0
    assert "0 computed, 0 resumed, 1 loaded, 0 failed" in capsys.readouterr().out
    assert not (tmp_path / "out" / "failures.csv").exists()


@pytest.mark.parametrize("extra, message", [
    (["--methods", "random", "magic"], "unknown method(s) 'magic'; valid methods: random"),
    (["--datasets", "mnist"], "Unknown MedMNIST flag 'mnist'"),
    (["--datasets", "organmnist3d"], "3D MedMNIST dataset"),
    (["--root", "EMPTY", "--size", "128"], "no MedMNIST 2D file found in"),
    (["--epochs", "0"], "--epochs must be an integer >= 1"),
    (["--weight", "-1"], "--weight must be a number >= 0"),
    (["--root", "EMPTY", "--size", "64"], "looked for pathmnist_64.npz ... organsmnist_64.npz"),
    (["--dask-workers", "2", "--jobs", "2"], "--jobs is for joblib on this machine"),
])
def test_bad_input_exits_2_before_any_work(tmp_path, monkeypatch, capsys, shipped_root, extra,
                                           message):
    def no_work(*a, **k):
        raise AssertionError("work started")

    monkeypatch.setattr(run_all, "_prepare_datasets", no_work)
    monkeypatch.setattr(run_all, "run_cells", no_work)
    (tmp_path / "EMPTY").mkdir()
    extra = [str(tmp_path / "EMPTY") if e == "EMPTY" else e for e in extra]
    base = ["--root", str(shipped_root)] if "--root" not in extra else []
    args = [*base, *TINY, *extra, "--out", str(tmp_path / "out"),
            "--work-dir", str(tmp_path / "work")]
    assert run_all.main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("run_all.py: error: ") and message in err and "\n" not in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "work").exists()


@pytest.fixture
def planned(monkeypatch):
    """The cells and settings run_all.main hands to run_cells, which runs nothing."""
    seen = {}

    def fake_run_cells(cells, settings, **kwargs):
        seen["cells"], seen["settings"] = cells, settings
        return iter(())

    monkeypatch.setattr(run_all, "run_cells", fake_run_cells)
    return seen


@pytest.mark.parametrize("files, datasets", [
    # An empty data root: the two datasets skal ships.
    ((), ("pneumoniamnist", "breastmnist")),
    # A file in the root joins them, in medmnist's order.
    (("retinamnist",), ("pneumoniamnist", "retinamnist", "breastmnist")),
    (("bloodmnist", "breastmnist"), ("pneumoniamnist", "breastmnist", "bloodmnist")),
])
def test_default_grid_is_every_method_on_the_files_present_or_shipped(
        tmp_path, monkeypatch, planned, files, datasets):
    root = tmp_path / "data"
    root.mkdir()
    for flag in files:
        write_synthetic_medmnist(root, flag, n_per_split=(20, 4, 10))
    monkeypatch.setenv("MEDMNIST_ROOT", str(root))
    assert run_all.main(["--no-verify", "--out", str(tmp_path / "out"),
                         "--work-dir", str(tmp_path / "w")]) == 0
    from skal.query import STRATEGIES

    assert planned["cells"] == [(m, d, s) for d in datasets for m in STRATEGIES for s in range(5)]
    assert planned["settings"]["preset"] == "fast" and planned["settings"]["download"] is False


def test_size_64_grid_finds_the_64_files_and_keeps_its_own_folders(tmp_path, planned):
    root = tmp_path / "data"
    write_synthetic_medmnist(root, "bloodmnist", n_per_split=(20, 4, 10), size=64)
    write_synthetic_medmnist(root, "dermamnist", n_per_split=(20, 4, 10))  # 28 only
    assert run_all.main(["--root", str(root), "--no-verify", "--size", "64", "--seeds", "0",
                         "--methods", "random", "--weight", "0.5", "--out", str(tmp_path / "o"),
                         "--work-dir", str(tmp_path / "w")]) == 0
    assert planned["cells"] == [("random", "bloodmnist", 0)]
    assert planned["settings"]["size"] == 64 and planned["settings"]["loss_weight"] == 0.5
    assert run_all.default_out("paper", 64).name == "paper_64"
    assert run_all.default_out("paper").name == "paper"
