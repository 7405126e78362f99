"""Issue 16.4: one of each -- one atomic writer, one network factory, one rule per setting,
one ``missing_requirements``."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

from skal import results
from skal.label import store


# ----------------------------------------------------------------------------
# One atomic writer
# ----------------------------------------------------------------------------


def test_the_label_store_writes_through_the_one_writer():
    assert store.atomic_write is results.atomic_write
    assert store.atomic_write_bytes is results.atomic_write_bytes
    assert store.fsync_dir is results.fsync_dir


@pytest.mark.parametrize("write", [
    lambda path, data: results.atomic_write(path, lambda fh: fh.write(data)),
    store.atomic_write_bytes,
], ids=["results.atomic_write", "store.atomic_write_bytes"])
def test_two_threads_writing_one_path_never_tear_it(tmp_path, write):
    # Two writers replace the same file over and over with contents of their
    # own; a reader checks every version it sees is one writer's whole content.
    # With a shared temporary name one writer truncates or renames away the
    # other's file: torn content, or FileNotFoundError from the rename.
    target = tmp_path / "labels.csv"
    contents = [bytes([65 + k]) * (64 * 1024 + k) for k in range(2)]
    write(target, contents[0])
    errors, seen, stop = [], set(), threading.Event()

    def writer(k):
        try:
            for _ in range(150):
                write(target, contents[k])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    def reader():
        while not stop.is_set():
            data = target.read_bytes()
            seen.add(data[:1])
            if data not in contents:
                errors.append(AssertionError(f"torn file: {len(data)} bytes"))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert errors == []
    assert target.read_bytes() in contents
    assert [p.name for p in tmp_path.iterdir()] == ["labels.csv"]  # no temporary file left


def test_the_writer_gives_the_mode_open_gives_without_touching_the_umask(tmp_path, monkeypatch):
    def no_umask(*args):
        raise AssertionError("os.umask called: it sets the process's umask")

    with open(tmp_path / "plain", "wb"):
        pass
    monkeypatch.setattr(os, "umask", no_umask)
    results.atomic_write(tmp_path / "atomic", lambda fh: fh.write(b"x"))
    assert (tmp_path / "atomic").stat().st_mode == (tmp_path / "plain").stat().st_mode


# ----------------------------------------------------------------------------
# One missing_requirements
# ----------------------------------------------------------------------------


def test_one_missing_requirements_with_one_return_type():
    import skal.query
    import skal.query._base
    from sklearn.linear_model import LogisticRegression

    from skal.estimator import ImageClassifier
    from skal.query import REQUIREMENTS, check_requirements, missing_requirements

    assert not hasattr(skal.query._base, "missing_requirements")
    # scal needs embeddings and a loss head: a logistic regression has neither; the
    # dict lists both, in REQUIREMENTS' order, with REQUIREMENTS' descriptions.
    missing = missing_requirements("scal", LogisticRegression())
    assert missing == {"loss_head": "a loss-prediction head (predict_loss)",
                       "embedding": "penultimate-layer embeddings (embed)"}
    assert list(missing) == [need for need in REQUIREMENTS if need in missing]
    # The checker refuses with the first of them.
    with pytest.raises(ValueError, match="scal needs a loss-prediction head"):
        check_requirements("scal", LogisticRegression())
    multi = ImageClassifier("small_cnn", n_classes=3, multi_label=True)
    assert missing_requirements("badge", multi) == {
        "single_label": "single-label output (one class per item)"}
    assert missing_requirements("margin", multi) == {}


# ----------------------------------------------------------------------------
# One network factory
# ----------------------------------------------------------------------------


def _comparable(params):
    """get_params(deep=True) with objects (callbacks, their policies) as their class and params."""
    out = {}
    for key, value in params.items():
        if key == "callbacks":
            value = [(name, type(cb), cb.get_params()) for name, cb in value]
        elif hasattr(value, "get_params") and not isinstance(value, type):
            value = (type(value), value.get_params())
        out[key] = value
    return out


def test_a_labeling_projects_network_has_the_presets_schedule_and_epoch_size(tmp_path):
    from skorch.callbacks import LRScheduler
    from torch.optim.lr_scheduler import MultiStepLR

    from skal.label.loop import build_network
    from skal.label.project import create_project
    from skal.protocols import get_preset
    from label_support import CLASSES, make_image_folder

    folder, _ = make_image_folder(tmp_path, n=8)
    project, _ = create_project(tmp_path / "p", images=folder, classes=CLASSES, size=12,
                                method="margin", epochs=5)
    assert project.config["preset"] == "fast"
    net = build_network(project.config)
    fast = get_preset("fast")
    assert net.min_epoch_size == fast.min_epoch_size == 400
    schedules = [cb for name, cb in net.callbacks if name == "lr_scheduler"]
    assert len(schedules) == 1 and isinstance(schedules[0], LRScheduler)
    assert schedules[0].policy is MultiStepLR
    # fast's milestone 6 of 8 epochs, scaled to the project's 5: round(6 * 5 / 8) = 4.
    assert schedules[0].kwargs == {"milestones": [4], "gamma": fast.lr_gamma}
    assert net.get_params()["optimizer__momentum"] == fast.momentum
    assert net.get_params()["optimizer__weight_decay"] == fast.weight_decay
    assert net.warm_start is True


@pytest.mark.parametrize("method", ["margin", "bald", "scal"])
def test_experiment_and_labeling_project_build_the_same_network(method):
    from skal.label.loop import build_network
    from skal.label.project import DEFAULTS
    from skal.protocols import build_experiment, get_preset

    fast = get_preset("fast")
    # A project's defaults repeat three of the fast preset's values (skal.label.project
    # stays free of torch, which skal.protocols imports): they must stay the same.
    assert (DEFAULTS["preset"], DEFAULTS["model"], DEFAULTS["lr"], DEFAULTS["batch_size"]) == (
        "fast", fast.model, fast.lr, fast.batch_size)
    dropout = fast.mc_dropout if method == "bald" else 0.0
    config = {**DEFAULTS, "method": method, "classes": ["benign", "malignant"], "channels": 3,
              "batch": 10, "epochs": 6, "seed": 3, "dropout": dropout}
    labeling = build_network(config)
    experiment = build_experiment("fast", method, "breastmnist", 3, epochs=6, budget=10).estimator
    assert type(labeling).__mro__[1:].count(type(experiment)) == 1  # the same class, shared pass
    ours = _comparable(labeling.get_params())
    theirs = _comparable(experiment.get_params())
    # The one difference: a labeling project warm-starts by itself; an experiment
    # sets its estimator's warm_start in fit.
    assert (ours.pop("warm_start"), theirs.pop("warm_start")) == (True, False)
    assert ours == theirs
    if method == "scal":
        assert ours["trim_size"] == 2 and ours["finetune_epochs"] == fast.scal_finetune_epochs


# ----------------------------------------------------------------------------
# Each settings rule declared once
# ----------------------------------------------------------------------------

# (rule, a value that breaks it, the command line's flag, the labeling project's
# option, the experiment's or estimator's parameter)
BAD = [
    ("budget", 0, "--budget", "--batch", "query_size"),
    ("cycles", 0, "--cycles", None, "n_cycles"),
    ("epochs", 0, "--epochs", "--epochs", None),
    ("dropout", 1.5, "--dropout", "--dropout", "dropout"),
    ("seed", -1, "--seed", "--seed", None),
    ("seed", 2**32, "--seed", "--seed", None),
    ("lr", 0.0, None, "--lr", "lr"),
    ("batch_size", 0, None, "--batch-size", "batch_size"),
    ("loss_weight", -0.5, "--weight", None, "loss_weight"),
    ("loss_weight", float("nan"), "--weight", None, "loss_weight"),
]


def test_the_callers_constraints_are_the_rules_themselves():
    from skal.estimator import ImageClassifier, LossPredictionClassifier
    from skal.experiment import ActiveLearningClassifier
    from skal.settings import RULES

    experiment = ActiveLearningClassifier._parameter_constraints
    assert experiment["query_size"] is RULES["budget"].constraints
    assert experiment["n_initial"][:-1] == RULES["budget"].constraints
    assert experiment["n_cycles"] is RULES["cycles"].constraints
    for name in ("dropout", "lr", "batch_size"):
        assert ImageClassifier._parameter_constraints[name] is RULES[name].constraints
    assert (LossPredictionClassifier._parameter_constraints["loss_weight"]
            is RULES["loss_weight"].constraints)


@pytest.mark.parametrize("rule, value, flag, option, parameter", BAD)
def test_every_caller_refuses_the_same_bad_value_naming_its_parameter(
        tmp_path, capsys, rule, value, flag, option, parameter):
    from sklearn.linear_model import LogisticRegression
    from sklearn.utils._param_validation import InvalidParameterError

    from skal.cli import run_main
    from skal.estimator import ImageClassifier, LossPredictionClassifier
    from skal.experiment import ActiveLearningClassifier
    from skal.label.project import LabelError, create_project
    from skal.runner import SettingsError, check_settings
    from skal.settings import RULES
    from label_support import CLASSES, make_image_folder

    says = RULES[rule].says
    if flag is not None:
        keyword = {"--weight": "loss_weight"}.get(flag, flag[2:])
        with pytest.raises(SettingsError) as info:
            check_settings(**{keyword: value})
        assert str(info.value) == f"{flag} must be {says}, got {value}."
        # The command line: the same message, one line, exit status 2, nothing trained.
        assert run_main(["--method", "random", "--dataset", "breastmnist", "--out",
                         str(tmp_path / "out"), "--quiet", flag, str(value)]) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"main.py: error: {flag} must be {says}, got {value}."
        assert not (tmp_path / "out").exists()
    if option is not None:
        folder, _ = make_image_folder(tmp_path, n=4)
        key = option[2:].replace("-", "_")
        with pytest.raises(LabelError) as info:
            create_project(tmp_path / "p", images=folder, classes=CLASSES, size=12,
                           **{key: value})
        assert str(info.value) == f"{option} must be {says}, got {value}."
        assert not (tmp_path / "p").exists()
    if parameter is not None:
        X, y = np.zeros((6, 8, 8), np.uint8), np.array([0, 1] * 3)
        if parameter in ("query_size", "n_cycles"):
            model = ActiveLearningClassifier(LogisticRegression(), **{parameter: value})
            X = X.reshape(6, -1)
        elif parameter == "loss_weight":
            model = LossPredictionClassifier("small_cnn", n_classes=2, loss_weight=value)
        else:
            model = ImageClassifier("small_cnn", n_classes=2, **{parameter: value})
        with pytest.raises(InvalidParameterError, match=f"The '{parameter}' parameter of "):
            model.fit(X, y)
