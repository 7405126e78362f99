"""Balanced accuracy (mean per-class recall) from the predictions ACC counts (issue 19.1).

It is in every learning-curve record (one function, ``curve_metrics``, fills
them) and every row of a trial's ``results.csv``.
"""

import csv

import numpy as np
import pytest
from medmnist.evaluator import getACC
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, balanced_accuracy_score
from threadpoolctl import threadpool_limits

from skal.experiment import ActiveLearningClassifier
from skal.metrics import (CURVE_METRICS, accuracy, balanced_accuracy, curve_metrics,
                          predicted_classes)
from skal.results import RESULT_COLUMNS
from skal.runner import TrialFiles


def test_binary_known_answer():
    y = np.array([0, 0, 0, 0, 1, 1])
    positive = np.array([.1, .2, .3, .8, .9, .4])  # predicts 0, 0, 0, 1, 1, 0
    proba = np.stack([1 - positive, positive], axis=1)
    assert accuracy(y, proba, "binary-class") == pytest.approx(4 / 6)
    # recall of class 0: 3/4, of class 1: 1/2
    assert balanced_accuracy(y, proba, "binary-class") == pytest.approx((3 / 4 + 1 / 2) / 2)


def test_always_guessing_the_majority_scores_one_over_the_number_of_classes():
    y = np.array([0] * 73 + [1] * 27)  # breastmnist's test split is 73 % one class
    proba = np.tile([.6, .4], (100, 1))
    assert accuracy(y, proba, "binary-class") == pytest.approx(0.73)
    assert balanced_accuracy(y, proba, "binary-class") == 0.5


def test_multi_class_known_answer():
    y = np.array([0, 0, 1, 1, 2, 2])
    predicted = np.array([0, 0, 0, 1, 2, 0])
    proba = np.eye(3)[predicted] * 0.5 + 0.5 / 3
    assert accuracy(y, proba, "multi-class") == pytest.approx(4 / 6)
    assert balanced_accuracy(y, proba, "multi-class") == pytest.approx((1 + 1 / 2 + 1 / 2) / 3)


def test_multi_label_is_the_mean_over_labels_as_medmnists_acc_is():
    y = np.array([[1, 0], [0, 1], [0, 1], [0, 0]])
    score = np.array([[.9, .1], [.7, .8], [.2, .3], [.1, .2]])  # predicts [1,0],[1,1],[0,0],[0,0]
    # label 0: recall of 1 is 1/1, of 0 is 2/3; label 1: recall of 1 is 1/2, of 0 is 2/2
    expected = ((1 + 2 / 3) / 2 + (1 / 2 + 1) / 2) / 2
    assert balanced_accuracy(y, score, "multi-label, binary-class") == pytest.approx(expected)


def test_a_score_of_exactly_the_threshold_is_the_negative_class_for_both():
    y = np.array([0, 1])
    proba = np.array([[.5, .5], [.2, .8]])
    assert predicted_classes(proba, "binary-class").tolist() == [0, 1]
    assert accuracy(y, proba, "binary-class") == balanced_accuracy(y, proba, "binary-class") == 1


@pytest.mark.parametrize("task, n_columns", [("binary-class", 2), ("multi-class", 4),
                                             ("ordinal-regression", 5),
                                             ("multi-label, binary-class", 3)])
def test_the_predictions_are_the_ones_medmnists_acc_counts(task, n_columns):
    rng = np.random.default_rng(0)
    for _ in range(20):
        score = rng.random((30, n_columns))
        if task == "multi-label, binary-class":
            y = rng.integers(0, 2, (30, n_columns))
            ours = np.mean([accuracy_score(y[:, k], predicted_classes(score, task)[:, k])
                            for k in range(n_columns)])
        else:
            score /= score.sum(axis=1, keepdims=True)
            y = rng.integers(0, n_columns, 30)
            ours = accuracy_score(y, predicted_classes(score, task))
        assert ours == getACC(y, score, task)


def test_curve_metrics_gives_every_figure_of_a_record():
    y = np.array([0, 0, 1, 1, 2, 2])
    proba = np.eye(3)[[0, 0, 0, 1, 2, 0]] * 0.5 + 0.5 / 3
    record = curve_metrics(y, proba, "multi-class")
    assert tuple(record) == CURVE_METRICS
    assert record["balanced_acc"] == pytest.approx(2 / 3) and record["acc"] == pytest.approx(4 / 6)
    assert set(CURVE_METRICS) <= set(RESULT_COLUMNS)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_every_record_and_every_row_of_a_trials_results_csv_has_it(tmp_path):
    X, y = load_digits(return_X_y=True)
    keep = np.isin(y, (3, 5, 8))
    X, y = X[keep], np.array(["three", "five", "eight"])[np.searchsorted([3, 5, 8], y[keep])]
    files = TrialFiles(tmp_path, "margin", "digits", 0)
    with threadpool_limits(1):
        al = ActiveLearningClassifier(
            LogisticRegression(max_iter=200), "margin", n_initial=6, query_size=6, n_cycles=3,
            random_state=0, callbacks=[files]).fit(X[:300], y[:300], X_eval=X[300:],
                                                   y_eval=y[300:])
    last = al.learning_curve_[-1]
    # The final model's own predictions, in the user's labels: the same rate.
    assert last["balanced_acc"] == pytest.approx(balanced_accuracy_score(y[300:],
                                                                         al.predict(X[300:])))
    assert last["balanced_acc"] != last["acc"]  # an unbalanced error set tells them apart
    with open(tmp_path / "results.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert tuple(rows[0]) == RESULT_COLUMNS
    assert [row["balanced_acc"] for row in rows] == [repr(r["balanced_acc"])
                                                     for r in al.learning_curve_]
