"""The command line: `skal run` and main.py, outputs, resume after SIGKILL, and errors."""

import csv
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from skal.cli import main, run_main
from skal.results import RESULT_COLUMNS
from skal.estimator import ImageClassifier

REPO = Path(__file__).resolve().parents[1]
TINY = ["--preset", "fast", "--model", "small_cnn", "--epochs", "1", "--cycles", "3",
        "--budget", "10", "--device", "cpu"]


def read_rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def numbers(rows):
    """What must replay exactly: everything but the timings."""
    return [{k: r[k] for k in RESULT_COLUMNS if not k.endswith("seconds")} for r in rows]


def run_dir(out, dataset="breastmnist", method="random", preset="fast"):
    return Path(out) / preset / dataset / method


def test_run_writes_tidy_csv_and_labeled_indices(shipped_root, tmp_path, capsys):
    rc = run_main(["--method", "random", "--dataset", "breastmnist", *TINY, "--root",
                   str(shipped_root), "--out", str(tmp_path), "--quiet"])
    assert rc == 0
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err == ""  # --quiet is silent
    folder = run_dir(tmp_path)
    rows = read_rows(folder / "results.csv")
    assert list(rows[0]) == list(RESULT_COLUMNS)
    assert [(r["method"], r["dataset"], r["seed"], r["cycle"], r["n_labeled"]) for r in rows] == [
        ("random", "breastmnist", "0", str(c), str(10 * c)) for c in (1, 2, 3)]
    assert all(0 <= float(r["acc"]) <= 1 and 0 <= float(r["auc"]) <= 1 for r in rows)
    assert float(rows[-1]["query_seconds"]) == 0.0
    labeled = read_rows(folder / "trial_0" / "labeled.csv")
    assert [int(r["cycle"]) for r in labeled] == [1] * 10 + [2] * 10 + [3] * 10
    assert len({r["index"] for r in labeled}) == 30
    assert (folder / "trial_0" / "checkpoint" / "checkpoint.pkl").is_file()


def test_skal_run_with_progress_then_a_finished_run_is_not_recomputed(
        shipped_root, tmp_path, capsys, monkeypatch):
    args = ["run", "--method", "random", "--dataset", "breastmnist", *TINY, "--trials", "2",
            "--root", str(shipped_root), "--out", str(tmp_path)]
    assert main(args) == 0
    captured = capsys.readouterr()
    for bar in ("trials", "cycles (trial 0)", "epochs"):
        assert bar in captured.err
    assert "results:" in captured.out and "± " in captured.out
    first = read_rows(run_dir(tmp_path) / "results.csv")
    assert [r["seed"] for r in first] == ["0"] * 3 + ["1"] * 3

    def no_training(self, *a, **k):
        raise AssertionError("a finished run must not train again")

    monkeypatch.setattr(ImageClassifier, "fit", no_training)
    start = time.perf_counter()
    assert main(args) == 0
    assert time.perf_counter() - start < 10
    err = capsys.readouterr().err
    assert "trial 0: already complete" in err and "trial 1: already complete" in err
    assert "nothing was recomputed" in err
    assert read_rows(run_dir(tmp_path) / "results.csv") == first


def test_resume_after_sigkill_matches_an_uninterrupted_run(shipped_root, tmp_path):
    # Big enough cycles that the kill lands inside cycle 2, not after the run.
    settings = ["--method", "random", "--dataset", "breastmnist", "--preset", "fast",
                "--model", "small_cnn", "--epochs", "2", "--cycles", "3", "--budget", "170",
                "--device", "cpu", "--root", str(shipped_root), "--quiet"]
    assert run_main([*settings, "--out", str(tmp_path / "reference")]) == 0
    reference = read_rows(run_dir(tmp_path / "reference") / "results.csv")

    out = tmp_path / "killed"
    command = [sys.executable, str(REPO / "main.py"), *settings, "--out", str(out)]
    results = run_dir(out) / "results.csv"
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while not (results.is_file() and len(read_rows(results)) >= 1):
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "no cycle finished in 120 s"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert len(read_rows(results)) < 3, "the run ended before it could be killed"

    resumed = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    rows = read_rows(results)
    assert numbers(rows) == numbers(reference)
    assert (read_rows(run_dir(out) / "trial_0" / "labeled.csv")
            == read_rows(run_dir(tmp_path / "reference") / "trial_0" / "labeled.csv"))


def test_multilabel_chestmnist_end_to_end(tmp_path, make_synthetic_medmnist, capsys):
    make_synthetic_medmnist(tmp_path / "data", "chestmnist", n_per_split=(40, 4, 40))
    args = ["--method", "entropy", "--dataset", "chestmnist", *TINY, "--root",
            str(tmp_path / "data"), "--out", str(tmp_path / "out"), "--quiet"]
    # The synthetic file is not medmnist's: the MD5 check refuses it...
    assert run_main(args) == 1
    err = capsys.readouterr().err
    assert "expected MD5" in err and "Traceback" not in err
    # ...unless told not to check.
    assert run_main([*args, "--no-verify"]) == 0
    rows = read_rows(run_dir(tmp_path / "out", "chestmnist", "entropy") / "results.csv")
    assert [r["n_labeled"] for r in rows] == ["10", "20", "30"]


def test_size_64_loads_that_file_and_gets_its_own_folder(tmp_path, make_synthetic_medmnist,
                                                          capsys):
    from skal.runner import run_trial

    root, out = tmp_path / "data", tmp_path / "out"
    make_synthetic_medmnist(root, "bloodmnist", n_per_split=(40, 4, 20), size=64)
    args = ["--method", "ll4al", "--dataset", "bloodmnist", *TINY, "--cycles", "2", "--root",
            str(root), "--out", str(out), "--no-verify", "--quiet"]
    # Only the 64x64 file is there: at the default 28 the run cannot find its data...
    assert run_main(args) == 1
    assert "'bloodmnist.npz' was not found" in one_line_error(capsys)
    # ...at 64 it trains (the loss head reads 64x64 stages) into bloodmnist_64/.
    assert run_main([*args, "--size", "64"]) == 0
    rows = read_rows(run_dir(out, "bloodmnist_64", "ll4al") / "results.csv")
    assert [r["n_labeled"] for r in rows] == ["10", "20"] and rows[0]["dataset"] == "bloodmnist"
    assert all(float(r["test_loss"]) > 0 for r in rows)
    assert not run_dir(out, "bloodmnist", "ll4al").exists()
    # The trial trained on the 64x64 images (resumed from its checkpoint, not retrained).
    experiment = run_trial("ll4al", "bloodmnist", 0, preset="fast", out=out, model="small_cnn",
                           epochs=1, cycles=2, budget=10, device="cpu", size=64, root=root,
                           verify=False)
    assert experiment.n_resumed_cycles_ == 2
    assert experiment.learner_.X_training.shape[1:] == (64, 64, 3)
    with pytest.raises(SystemExit):
        run_main([*args, "--size", "32"])
    assert "invalid choice: 32" in capsys.readouterr().err


# -- bad input -------------------------------------------------------------------


@pytest.mark.parametrize("option, value, listed", [
    ("--method", "magic", "random"),
    ("--dataset", "mnist", "pathmnist"),
    ("--preset", "slow", "paper"),
    ("--model", "vgg", "small_cnn"),
])
def test_unknown_choice_exits_2_and_lists_valid_values(capsys, option, value, listed):
    args = {"--method": "random", "--dataset": "breastmnist"}
    args[option] = value
    argv = [item for pair in args.items() for item in pair]
    with pytest.raises(SystemExit) as exit_info:
        main(["run", *argv])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert f"invalid choice: '{value}'" in err and listed in err


def one_line_error(capsys):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize("extra, message", [
    (["--budget", "300"], "The budget exceeds the pool"),
    (["--budget", "0"], "--budget must be an integer >= 1, got 0."),
    (["--cycles", "0"], "--cycles must be an integer >= 1, got 0."),
    (["--trials", "0"], "--trials must be an integer >= 1"),
    (["--epochs", "0"], "--epochs must be an integer >= 1"),
    (["--dropout", "1.5"], "--dropout must be in [0, 1)"),
    (["--seed", "-1"], "--seed must be in [0, 2**32)"),
    (["--weight", "-0.5"], "--weight must be a number >= 0"),
    (["--weight", "nan"], "--weight must be a number >= 0"),
    (["--device", "gpu"], "not a device torch knows"),
    pytest.param(["--device", "cuda"], "CUDA is not available", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="CUDA is available here")),
])
def test_impossible_settings_give_one_line(shipped_root, tmp_path, capsys, extra, message):
    base = ["--method", "random", "--dataset", "breastmnist", "--preset", "fast",
            "--cycles", "3", "--root", str(shipped_root), "--out", str(tmp_path), "--quiet"]
    assert run_main([*base, *extra]) == 2
    err = one_line_error(capsys)
    assert err.startswith("main.py: error: ") and message in err


def test_strategy_that_needs_what_the_model_lacks(shipped_root, tmp_path, capsys):
    # BALD needs MC dropout; forcing the study's dropout-free network cannot serve it.
    assert main(["run", "--method", "bald", "--dataset", "breastmnist", *TINY, "--dropout", "0",
                 "--root", str(shipped_root), "--out", str(tmp_path), "--quiet"]) == 2
    err = one_line_error(capsys)
    assert "bald needs MC-dropout" in err and "dropout=0.0" in err


def test_missing_dataset_offline_shows_the_data_layer_message(tmp_path, no_network, capsys):
    (tmp_path / "empty").mkdir()  # a --root that does not exist is refused before this
    rc = main(["run", "--method", "random", "--dataset", "dermamnist", *TINY, "--root",
               str(tmp_path / "empty"), "--out", str(tmp_path / "out"), "--quiet"])
    assert rc == 1
    err = one_line_error(capsys)
    assert "'dermamnist.npz' was not found" in err and "download" in err
    assert len(no_network) == 1


def test_rerun_with_other_settings_is_refused(shipped_root, tmp_path, capsys):
    base = ["--method", "random", "--dataset", "breastmnist", *TINY, "--root", str(shipped_root),
            "--out", str(tmp_path), "--quiet"]
    assert run_main(base) == 0
    assert run_main([*base, "--epochs", "2"]) == 2
    err = one_line_error(capsys)
    assert "other settings" in err and "max_epochs" in err and "--out" in err


def test_weight_reaches_the_ranking_loss_and_a_rerun_must_repeat_it(shipped_root, tmp_path,
                                                                    capsys):
    base = ["--method", "ll4al", "--dataset", "breastmnist", *TINY, "--cycles", "2",
            "--root", str(shipped_root), "--out", str(tmp_path), "--quiet"]
    assert run_main([*base, "--weight", "0.25"]) == 0
    from skal.protocols import build_estimator

    assert build_estimator("paper", "ll4al", "breastmnist", 0).loss_weight == 1.0  # the study's
    # The trained trial's estimator has the weight: a rerun with another is refused,
    # one with the same weight loads the finished trial.
    assert run_main([*base, "--weight", "0.5"]) == 2
    err = one_line_error(capsys)
    assert "other settings" in err and "loss_weight" in err
    assert run_main([*base, "--weight", "0.25"]) == 0


def test_help_says_the_default_preset(capsys):
    with pytest.raises(SystemExit):
        run_main(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "default preset: paper" in help_text and "--no-verify" in help_text
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    assert "default preset: paper" in " ".join(capsys.readouterr().out.split())


def test_the_preset_eval_split_is_the_one_scored(shipped_root, tmp_path, monkeypatch):
    import dataclasses

    import skal.runner
    from skal.protocols import get_preset
    from skal.runner import run_trial

    requested = []
    load = skal.runner.load_medmnist

    def recording_load(flag, split, **kwargs):
        requested.append(split)
        return load(flag, split, **kwargs)

    monkeypatch.setattr(skal.runner, "load_medmnist", recording_load)
    preset = dataclasses.replace(get_preset("fast"), eval_split="val")
    experiment = run_trial("random", "breastmnist", 0, preset=preset, out=tmp_path, epochs=1,
                           cycles=1, budget=10, model="small_cnn", device="cpu", root=shipped_root)
    assert requested == ["train", "val"]
    X_val, y_val = load("breastmnist", "val", root=shipped_root)
    from skal.metrics import evaluate
    expected = evaluate(y_val, experiment.predict_proba(X_val), "breastmnist")
    assert experiment.learning_curve_[-1]["acc"] == expected.ACC


def test_the_command_lines_names_are_the_registries():
    from skal import registry
    from skal.data import FLAGS_2D
    from skal.models import MODELS
    from skal.protocols import PRESETS
    from skal.query import STRATEGIES

    assert registry.METHODS == tuple(STRATEGIES)
    assert registry.DATASETS == tuple(FLAGS_2D)
    assert registry.PRESETS == tuple(PRESETS)
    assert registry.MODELS == tuple(sorted(MODELS))
    from skal.data import dataset_info

    assert all(dataset_info(flag).sizes == registry.SIZES for flag in FLAGS_2D)


HEAVY = ("torch", "skorch", "modAL", "medmnist", "sklearn")


@pytest.mark.parametrize("code", [
    "from skal.cli import main; main(['--help'])",
    "from skal.cli import main; main(['run', '--help'])",
    "from skal.cli import main; main(['label', 'init', '--help'])",
    "from skal.cli import run_main; run_main(['--help'])",
    "import skal",
])
def test_help_and_import_skal_load_nothing_heavy(code):
    # `skal --help` answers in about a second because nothing heavy is imported first.
    probe = (f"import sys\ntry:\n    {code}\nexcept SystemExit:\n    pass\n"
             f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


def test_top_level_names_are_lazy_and_real():
    import skal
    from skal import (STRATEGIES, ActiveLearningClassifier, ImageClassifier,
                      LossPredictionClassifier, load_medmnist)
    from skal.data import load_medmnist as data_load
    from skal.estimator import ImageClassifier as Image, LossPredictionClassifier as Loss
    from skal.experiment import ActiveLearningClassifier as AL
    from skal.query import STRATEGIES as registered

    assert (ActiveLearningClassifier, ImageClassifier,
            LossPredictionClassifier) == (AL, Image, Loss)
    assert STRATEGIES is registered and load_medmnist is data_load
    assert set(skal.__all__) >= {"ActiveLearningClassifier", "STRATEGIES", "load_medmnist"}
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        skal.nothing  # noqa: B018


def test_old_checkpoints_find_the_progress_bar_under_its_old_name():
    # Checkpoints pickled before skal.runner existed name skal.cli.EpochProgressBar.
    import skal.cli
    from skal.runner import EpochProgressBar

    assert skal.cli.EpochProgressBar is EpochProgressBar


FOLDER_RUN = ["--method", "margin", "--preset", "fast", "--epochs", "1", "--cycles", "2",
              "--budget", "8", "--device", "cpu", "--quiet"]


def _labels_csv(path, truth):
    path.write_text("file,label\n" + "".join(f"{f},{c}\n" for f, c in truth.items()))
    return path


def test_run_on_a_folder_of_own_images_and_its_labels(tmp_path, capsys):
    from label_support import make_image_folder
    from skal.runner import load_folder

    folder, truth = make_image_folder(tmp_path, n=50)
    labels = _labels_csv(tmp_path / "labels.csv", truth)
    args = ["--images", str(folder), "--labels", str(labels), "--out", str(tmp_path / "out"),
            *FOLDER_RUN]
    assert run_main(args) == 0
    rows = list(csv.DictReader(open(tmp_path / "out/fast/images/margin/results.csv")))
    assert [(r["dataset"], r["cycle"], r["n_labeled"]) for r in rows] == [
        ("images", "1", "8"), ("images", "2", "16")]
    # The held-out 20 %, stratified: 10 images, 5 of each class; ids in sorted class order.
    info, (X, y, X_test, y_test) = load_folder(folder, labels, size=28)
    assert info.label_names == ("bright", "dark") and info.n_classes == 2
    assert X.shape == (40, 28, 28) and sorted(y_test.tolist()) == [0] * 5 + [1] * 5
    capsys.readouterr()
    assert run_main([a for a in args if a != "--quiet"]) == 0
    assert "already complete" in capsys.readouterr().err  # loaded, not recomputed


def test_a_folder_run_needs_every_image_labeled(tmp_path, capsys):
    from label_support import make_image_folder

    folder, truth = make_image_folder(tmp_path, n=20)
    truth.pop(next(iter(truth)))
    labels = _labels_csv(tmp_path / "labels.csv", truth)
    assert run_main(["--images", str(folder), "--labels", str(labels), *FOLDER_RUN]) == 1
    assert "1 image(s) of" in capsys.readouterr().err
    assert run_main(["--images", str(folder), *FOLDER_RUN]) == 2
    assert "--images and --labels go together" in capsys.readouterr().err
