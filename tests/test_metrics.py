"""skal's ACC and AUC equal medmnist's Evaluator; the budget-curve area."""

import numpy as np
import pytest
from medmnist import Evaluator

from skal.data import dataset_info, load_medmnist, locate_dataset
from skal.metrics import (TASKS, accuracy, auc, budget_curve_area, cross_entropy, evaluate,
                          infer_task, make_budget_curve_scorer, resolve_task)


def random_scores(rng, n, n_outputs, multi_label):
    raw = rng.random((n, n_outputs))
    return raw if multi_label else raw / raw.sum(axis=1, keepdims=True)


def check_against_evaluator(flag, root):
    info = dataset_info(flag)
    _, y_test = load_medmnist(flag, "test", root=root, verify=False)
    rng = np.random.default_rng(0)
    # medmnist reads the very file skal read (the root's, else skal's shipped copy).
    evaluator = Evaluator(flag, "test", root=str(locate_dataset(flag, root=root).parent))
    for _ in range(3):
        scores = random_scores(rng, len(y_test), info.n_classes, info.is_multilabel)
        expected = evaluator.evaluate(scores)
        # skal's labels are (N,) or (N, L) int64; medmnist's the file's (N, 1) uint8.
        got = evaluate(y_test, scores, flag, undefined="raise")
        assert got == expected
        assert (accuracy(y_test, scores, info), auc(y_test, scores, info)) == (
            expected.ACC, expected.AUC)


@pytest.mark.parametrize("flag", ["breastmnist", "pneumoniamnist"])
def test_equals_medmnist_evaluator_on_real_binary_test_labels(shipped_root, flag):
    check_against_evaluator(flag, shipped_root)


def test_equals_medmnist_evaluator_on_real_ordinal_test_labels(real_root):
    # retinamnist: 5 grades, ordinal regression; skal does not ship it.
    check_against_evaluator("retinamnist", real_root)


@pytest.mark.parametrize("flag", ["pathmnist", "chestmnist"])
def test_equals_medmnist_evaluator_multiclass_and_multilabel(tmp_path, make_synthetic_medmnist,
                                                             flag):
    make_synthetic_medmnist(tmp_path, flag, n_per_split=(4, 4, 90))
    check_against_evaluator(flag, tmp_path)


def test_binary_uses_the_last_column_at_threshold_half():
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.5, 0.5], [0.4, 0.6], [0.9, 0.1], [0.2, 0.8]])
    # 0.5 is not above the threshold: class 0, as medmnist decides.
    assert accuracy(y, proba, "binary-class") == 0.5
    assert accuracy(y, proba, "multi-class") == 0.5  # arg-max also picks 0 on the tie


def test_task_resolution():
    assert resolve_task("chestmnist") == "multi-label, binary-class"
    assert resolve_task(dataset_info("retinamnist")) == "ordinal-regression"
    assert resolve_task("multi-class") == "multi-class"
    with pytest.raises(ValueError, match="Unknown task 'regression'.*multi-class"):
        resolve_task("regression")
    assert infer_task(np.array([0, 1, 1])) == "binary-class"
    assert infer_task(np.array([0, 1, 1]), n_classes=3) == "multi-class"
    assert infer_task(np.zeros((3, 14))) == "multi-label, binary-class"
    assert set(TASKS) == {dataset_info(f).task for f in
                          ("pathmnist", "breastmnist", "retinamnist", "chestmnist")}


def test_undefined_auc_is_nan_with_a_warning_or_raises():
    y = np.array([1, 1, 1])
    proba = np.array([[0.2, 0.8], [0.6, 0.4], [0.1, 0.9]])
    with pytest.warns(RuntimeWarning, match="AUC is undefined"):
        result = evaluate(y, proba, "binary-class")
    assert np.isnan(result.AUC) and result.ACC == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        evaluate(y, proba, "binary-class", undefined="raise")
    with pytest.raises(ValueError, match="different lengths"):
        accuracy(y[:2], proba, "binary-class")


def test_budget_curve_area():
    assert budget_curve_area([10, 20, 30], [0.5, 0.7, 0.7]) == pytest.approx(0.65)
    # Normalised: a flat curve's area is its height, whatever the budgets.
    assert budget_curve_area([100, 250, 1000], [0.8, 0.8, 0.8]) == pytest.approx(0.8)
    # Uneven steps weigh by their width.
    assert budget_curve_area([0, 10, 40], [0, 1, 1]) == pytest.approx((5 + 30) / 40)
    assert budget_curve_area([10], [0.42]) == 0.42
    with pytest.raises(ValueError, match="strictly increasing"):
        budget_curve_area([10, 10], [0.1, 0.2])
    with pytest.raises(ValueError, match="same non-zero length"):
        budget_curve_area([10, 20], [0.1])


def test_budget_curve_scorer_replays_staged_predictions():
    class Fitted:  # what the scorer reads from a fitted ActiveLearningClassifier
        task_ = "binary-class"
        classes_ = np.array([0, 1])
        learning_curve_ = [{"n_labeled": 10}, {"n_labeled": 20}]

        def staged_predict_proba(self, X):
            yield np.tile([0.9, 0.1], (len(X), 1))  # all class 0
            yield np.tile([0.1, 0.9], (len(X), 1))  # all class 1

    y = np.array([0, 1, 1, 1])
    assert make_budget_curve_scorer("acc")(Fitted(), np.zeros((4, 2, 2)), y) == pytest.approx(
        (0.25 + 0.75) / 2)
    with pytest.raises(ValueError, match="metric must be"):
        make_budget_curve_scorer("f1")


def test_cross_entropy_is_the_studys_criterion_on_probabilities():
    import torch

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(6, 4))
    proba = torch.softmax(torch.tensor(logits), 1).numpy()
    y = np.array([0, 1, 1, 3, 0, 1])  # class 2 absent: the task's labels still count
    expected = torch.nn.functional.cross_entropy(torch.tensor(logits), torch.tensor(y)).item()
    assert cross_entropy(y[:, None], proba, "multi-class") == pytest.approx(expected, rel=1e-9)
    # Known answer, binary: -(log .5 + log .75) / 2.
    assert cross_entropy([0, 1], [[.5, .5], [.25, .75]], "binary-class") == pytest.approx(
        -(np.log(.5) + np.log(.75)) / 2)

    # Multi-label: BCE with logits, mean over items and labels.
    targets = rng.integers(0, 2, size=(6, 3))
    logits = rng.normal(size=(6, 3))
    expected = torch.nn.functional.binary_cross_entropy_with_logits(
        torch.tensor(logits), torch.tensor(targets, dtype=torch.float64)).item()
    sig = torch.sigmoid(torch.tensor(logits)).numpy()
    assert cross_entropy(targets, sig, "multi-label, binary-class") == pytest.approx(
        expected, rel=1e-9)
    # Certain and wrong is clipped, not infinite.
    assert np.isfinite(cross_entropy([0, 1], [[0., 1.], [1., 0.]], "binary-class"))
