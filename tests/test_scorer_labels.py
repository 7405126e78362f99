"""Labels are encoded once, through ``classes_``: every score is the same whatever the labels' names.

Issue 16.1: the budget-curve scorer compared the raw held-out labels with the
probabilities' column positions, so {3, 8} scored 0.0 and strings raised.
"""

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV, StratifiedKFold
from threadpoolctl import threadpool_limits

from skal.experiment import ActiveLearningClassifier
from skal.metrics import budget_curve_scorer, encode_targets, make_budget_curve_scorer

# The same task under three names of its classes, each in the classes' sorted
# order (so the encoding, the stratified folds and the fits are identical).
LABELINGS = {"ids": [0, 1, 2], "other ints": [3, 5, 8], "strings": ["cat", "dog", "eel"]}


@pytest.fixture(autouse=True)
def one_blas_thread():
    # LogisticRegression's many tiny solves are 15x slower when BLAS threads
    # contend for a busy machine's cores; one thread gives the same numbers.
    with threadpool_limits(1):
        yield


def digits(classes=(0, 1)):
    X, y = load_digits(return_X_y=True)
    keep = np.isin(y, classes)
    return X[keep], np.searchsorted(classes, y[keep])  # 0..C-1


def experiment(**kwargs):
    params = dict(n_initial=10, query_size=10, n_cycles=3, random_state=0, keep_models=True)
    params.update(kwargs)
    return ActiveLearningClassifier(LogisticRegression(max_iter=200), "margin", **params)


def split(X, y):
    order = np.random.default_rng(0).permutation(len(X))
    return X[order[:250]], y[order[:250]], X[order[250:]], y[order[250:]]


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_scorer_gives_one_score_whatever_the_labels_are_called():
    X_train, y_train, X_test, y_test = split(*digits((0, 1)))
    scores = {}
    for name, labels in {"ids": [0, 1], "3 and 8": [3, 8], "strings": ["3", "8"]}.items():
        labels = np.array(labels)
        al = experiment().fit(X_train, labels[y_train])
        assert al.classes_.tolist() == labels.tolist()
        assert al.score(X_test, labels[y_test]) == 1.0  # the final model is right everywhere
        scores[name] = (budget_curve_scorer(al, X_test, labels[y_test]),
                        make_budget_curve_scorer("auc")(al, X_test, labels[y_test]))
    # Before the fix: 0.9954..., 0.0 and "Mix of label input types".
    assert scores["ids"] == scores["3 and 8"] == scores["strings"]
    assert scores["ids"][0] == pytest.approx(0.99545454545, abs=1e-9)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_learning_curve_scores_the_user_labels_of_the_evaluation_set():
    X_train, y_train, X_test, y_test = split(*digits((0, 1, 2)))
    labels = np.array(LABELINGS["strings"])
    al = experiment().fit(X_train, labels[y_train], X_eval=X_test,
                          y_eval=labels[y_test][:, None])  # medmnist's (N, 1) shape
    # The last cycle's ACC is the final model's accuracy on the user's labels.
    assert al.learning_curve_[-1]["acc"] == pytest.approx(al.score(X_test, labels[y_test]))
    assert budget_curve_scorer(al, X_test, labels[y_test]) == pytest.approx(
        al.budget_curve_area("acc"))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_grid_search_over_relabeled_data_picks_the_same_parameters_with_the_same_score():
    X, y = digits((0, 1, 2))
    X, y = X[:240], y[:240]
    grid = {"query_strategy": ["random", "margin"], "estimator__C": [1e-4, 1.0]}
    searches = {}
    for name, labels in LABELINGS.items():
        search = GridSearchCV(experiment(n_initial=6, query_size=6), grid,
                              scoring=budget_curve_scorer,
                              cv=StratifiedKFold(3, shuffle=True, random_state=0),
                              error_score="raise")
        searches[name] = search.fit(X, np.array(labels)[y])
    means = {name: s.cv_results_["mean_test_score"] for name, s in searches.items()}
    assert len(set(np.round(means["ids"], 6))) > 1, "the grid must rank something"
    for name, search in searches.items():
        assert search.best_params_ == searches["ids"].best_params_, name
        assert search.best_score_ == searches["ids"].best_score_, name
        np.testing.assert_array_equal(means[name], means["ids"])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_held_out_label_outside_classes_is_a_clear_error():
    X_train, y_train, X_test, y_test = split(*digits((0, 1)))
    labels = np.array([3, 8])
    al = experiment().fit(X_train, labels[y_train])
    held_out = labels[y_test].copy()
    held_out[:2] = 5  # a class the experiment never saw
    with pytest.raises(ValueError, match=r"labels \[5\] outside the task's classes \(\[3, 8\]\)"
                                         r".*StratifiedKFold"):
        budget_curve_scorer(al, X_test, held_out)


def test_encode_targets_known_answers_and_errors():
    classes = np.array(["cat", "dog", "eel"])
    assert encode_targets(["eel", "cat", "dog"], classes, "multi-class").tolist() == [2, 0, 1]
    assert encode_targets(np.array([[8], [3]]), np.array([3, 8]), "binary-class").tolist() == [1, 0]
    with pytest.raises(ValueError, match=r"y_eval has labels \['fox'\] outside"):
        encode_targets(["fox", "cat"], classes, "multi-class", name="y_eval")
    with pytest.raises(ValueError, match="one label per item"):
        encode_targets(np.zeros((2, 3)), classes, "multi-class")
    ml = np.array([[0, 1, 1], [1, 0, 0]])
    assert encode_targets(ml, np.arange(3), "multi-label, binary-class").tolist() == ml.tolist()
    with pytest.raises(ValueError, match=r"\(N, 3\) 0/1 label columns"):
        encode_targets(np.array([0, 2]), np.arange(3), "multi-label, binary-class")
