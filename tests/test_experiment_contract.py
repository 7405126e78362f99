"""ActiveLearningClassifier keeps scikit-learn's estimator contract: every check of
``check_estimator`` around a scikit-learn classifier, and any class labels end to end."""

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils.estimator_checks import parametrize_with_checks

from skal.data import load_medmnist
from skal.estimator import ImageClassifier
from skal.experiment import ActiveLearningClassifier


@parametrize_with_checks([
    ActiveLearningClassifier(LogisticRegression(max_iter=200), "random", n_initial=10,
                             query_size=5, n_cycles=2, random_state=0),
    ActiveLearningClassifier(LogisticRegression(max_iter=200), "entropy", n_initial=10,
                             query_size=5, n_cycles=2, random_state=0),
])
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def breast(shipped_root):
    X, y = load_medmnist("breastmnist", "train", root=shipped_root)
    X_test, y_test = load_medmnist("breastmnist", "test", root=shipped_root)
    return X[:120], y[:120], X_test[:60], y_test[:60]


def run(X, y, X_test, y_test, strategy="margin", pipeline=False, **net):
    network = ImageClassifier("small_cnn", n_channels=1, max_epochs=1, lr=0.01, random_state=0,
                              device="cpu", **net)
    if pipeline:
        network = make_pipeline(FunctionTransformer(lambda images: images[:, 2:26, 2:26]),
                                network)
    al = ActiveLearningClassifier(network, strategy, query_size=10, n_cycles=3,
                                  random_state=0, keep_models=True)
    return al.fit(X, y, X_eval=X_test, y_eval=y_test)


def numbers(al):
    return [(r["n_labeled"], r["acc"], r["auc"], r["queried"]) for r in al.learning_curve_]


@pytest.mark.parametrize("labels", [("benign", "malignant"), (3, 8)],
                         ids=["strings", "non-contiguous ints"])
@pytest.mark.parametrize("pipeline", [False, True], ids=["network", "pipeline"])
def test_any_labels_give_the_numbers_of_integer_ids(breast, labels, pipeline):
    X, y, X_test, y_test = breast
    labels = np.array(labels)  # sorted, so label k is class id k
    ids = run(X, y, X_test, y_test, pipeline=pipeline, n_classes=2)
    named = run(X, labels[y], X_test, labels[y_test], pipeline=pipeline)
    # The same picks, ACC and AUC: the labels are only names.
    assert numbers(named) == numbers(ids)
    assert named.classes_.tolist() == labels.tolist()
    np.testing.assert_array_equal(named.predict(X_test), labels[ids.predict(X_test)])
    np.testing.assert_allclose(named.predict_proba(X_test), ids.predict_proba(X_test))
    for a, b in zip(named.staged_predict_proba(X_test), ids.staged_predict_proba(X_test)):
        np.testing.assert_allclose(a, b)
    assert named.score(X_test, labels[y_test]) == ids.score(X_test, y_test)


def test_an_evaluation_label_outside_the_task_is_named(breast):
    X, y, X_test, y_test = breast
    labels = np.array(["benign", "malignant"])
    bad = labels[y_test].astype(object)
    bad[0] = "normal"
    with pytest.raises(ValueError, match=r"y_eval has labels \['normal'\] outside"):
        run(X, labels[y], X_test, bad)


def test_a_classifier_that_saw_fewer_classes_gets_zero_columns():
    # 28 items of "a", one "b", one "c": the 5 initial items miss a class, which a
    # scikit-learn classifier then does not know; the experiment's columns stay the task's.
    from sklearn.tree import DecisionTreeClassifier

    X = np.arange(30, dtype=float).reshape(30, 1)
    y = np.array(["a"] * 28 + ["b", "c"])
    al = ActiveLearningClassifier(DecisionTreeClassifier(random_state=0), "random",
                                  n_initial=5, query_size=5, n_cycles=1, random_state=0)
    al.fit(X, y)
    seen = al.estimator_.classes_.tolist()
    assert al.classes_.tolist() == ["a", "b", "c"] and len(seen) < 3
    proba = al.predict_proba(X)
    assert proba.shape == (30, 3)
    columns = [al.classes_.tolist().index(c) for c in seen]
    np.testing.assert_array_equal(proba[:, columns], al.estimator_.predict_proba(X))
    unseen = [k for k in range(3) if k not in columns]
    assert (proba[:, unseen] == 0).all()
    assert set(al.predict(X)) <= set(seen)
