"""The image classifiers as scikit-learn classifiers: any labels, scikit-learn's checks.

scikit-learn's estimator checks that need no data (or only an unfitted
``predict``) run as they are. The checks that fit generate 2-D tables, which
an image classifier refuses by design (X is (N, H, W[, C]) images), so their
contract is tested below on images instead: idempotent fit, no parameter
changed by fit, NotFittedError before fit, pickling.
"""

import pickle

import joblib
import numpy as np
import pytest
from modAL.models import ActiveLearner
from sklearn.base import is_classifier
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import estimator_checks

from skal.estimator import ImageClassifier, LossPredictionClassifier
from skal.query import STRATEGIES


def make_images(n=24, labels=(0, 1, 2), seed=0):
    """Images whose class shows in their brightness, labelled with ``labels``."""
    rng = np.random.default_rng(seed)
    k = np.arange(n) % len(labels)
    X = rng.integers(0, 60, (n, 28, 28)) + (k * (190 // max(len(labels) - 1, 1)))[:, None, None]
    return X.clip(0, 255).astype(np.uint8), np.asarray(labels)[k]


def net(cls=ImageClassifier, **kwargs):
    params = dict(n_channels=1, max_epochs=2, batch_size=8, random_state=0, device="cpu")
    params.update(kwargs)
    return cls("small_cnn", **params)


BOTH = [ImageClassifier, LossPredictionClassifier]


# -- any labels ----------------------------------------------------------------
@pytest.mark.parametrize("cls", BOTH)
def test_non_contiguous_integer_labels_give_one_output_per_class(cls):
    X, y = make_images(labels=(3, 8))
    clf = net(cls).fit(X, y)
    assert clf.n_classes_ == 2 and clf.module_.n_classes == 2  # not 9 outputs
    np.testing.assert_array_equal(clf.classes_, [3, 8])
    assert clf.predict_proba(X).shape == (24, 2)
    assert set(clf.predict(X).tolist()) <= {3, 8}
    assert clf.score(X, y) == np.mean(clf.predict(X) == y)


@pytest.mark.parametrize("cls", BOTH)
def test_string_labels_speak_in_the_users_labels(cls):
    X, y = make_images(labels=("benign", "malignant"))
    clf = net(cls, max_epochs=6).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, ["benign", "malignant"])
    pred = clf.predict(X)
    assert set(pred.tolist()) <= {"benign", "malignant"}
    np.testing.assert_array_equal(pred, clf.classes_[clf.predict_proba(X).argmax(axis=1)])
    assert clf.score(X, y) > 0.9  # brightness separates the classes


def test_declared_classes_cover_a_class_missing_from_y_and_are_sorted():
    X, y = make_images(labels=("b", "c"))
    clf = net(classes=["c", "a", "b"]).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, ["a", "b", "c"])  # predict_proba's column order
    proba = clf.predict_proba(X)
    assert proba.shape == (24, 3)
    assert set(clf.predict(X).tolist()) <= {"a", "b", "c"}


def test_n_classes_alone_keeps_medmnists_integer_ids():
    X, y = make_images()
    a = net(n_classes=4).fit(X, y)
    b = net(classes=[0, 1, 2, 3]).fit(X, y)
    np.testing.assert_array_equal(a.classes_, np.arange(4))
    assert a.classes_.dtype == np.int64 and a.predict(X).dtype == np.int64
    # The encoding of ids 0..n-1 is the identity: the same network, the same numbers.
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    np.testing.assert_array_equal(a.predict(X), a.predict_proba(X).argmax(axis=1))


@pytest.mark.parametrize("params, message", [
    (dict(classes=["a", "b"], n_classes=3), "n_classes=3 but classes lists 2 labels"),
    (dict(classes=["a", "a", "b"]), "repeated labels"),
    (dict(classes=[]), "non-empty 1-D"),
    (dict(classes=["a", "b"], multi_label=True), "classes is for single-label tasks"),
])
def test_inconsistent_classes_are_refused_before_training(params, message):
    X, y = make_images(labels=("a", "b"))
    if params.get("multi_label"):
        y = np.eye(2, dtype=int)[np.arange(24) % 2]
    with pytest.raises(ValueError, match=message):
        net(**params).fit(X, y)


def test_labels_outside_the_declared_classes_are_named():
    X, y = make_images(labels=("a", "b", "z"))
    with pytest.raises(ValueError, match=r"labels \['z'\] outside the task's classes \(\['a', 'b'\]\)"):
        net(classes=["a", "b"]).fit(X, y)


def test_a_continued_fit_keeps_its_classes():
    X, y = make_images(labels=("a", "b", "c"))
    warm = net(warm_start=True)
    warm.fit(X[y != "c"], y[y != "c"])
    with pytest.raises(ValueError, match=r"labels \['c'\] outside"):
        warm.fit(X, y)


def test_continuous_targets_get_scikit_learns_message():
    X, _ = make_images(n=6)
    with pytest.raises(ValueError, match="Unknown label type"):
        net().fit(X, np.linspace(0, 1, 6))


def test_true_loss_takes_the_users_labels():
    X, y = make_images(labels=("a", "b"))
    clf = net(LossPredictionClassifier).fit(X, y)
    codes = (y == "b").astype(np.int64)
    losses = clf.true_loss(X, y)
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(losses, -np.log(proba[np.arange(24), codes]), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("wrapper", ["plain", "pipeline"])
def test_active_learning_with_string_labels_end_to_end(wrapper):
    X, y = make_images(n=40, labels=("benign", "malignant", "normal"))
    labeled, pool = np.arange(12), np.arange(12, 40)
    for name, cls, extra in [("margin", ImageClassifier, {}), ("badge", ImageClassifier, {}),
                             ("coreset", ImageClassifier, {}),
                             ("scal", LossPredictionClassifier, dict(trim_size=2, finetune_epochs=1))]:
        clf = net(cls, classes=["benign", "malignant", "normal"], max_epochs=1, warm_start=True,
                  **extra)
        if wrapper == "pipeline":
            clf = Pipeline([("id", FunctionTransformer(lambda Z: Z)), ("net", clf)])
        learner = ActiveLearner(clf, query_strategy=STRATEGIES[name],
                                X_training=X[labeled], y_training=y[labeled])
        left = pool
        for _ in range(2):
            idx, rows = learner.query(X[left], n_instances=3, random_state=0)
            learner.teach(rows, y[left][idx])  # SCAL's trim ranks by true_loss on these labels
            left = np.delete(left, idx)
        assert len(learner.y_training) == 18
        pred = learner.predict(X)
        assert set(pred.tolist()) <= {"benign", "malignant", "normal"}
        np.testing.assert_array_equal(learner.estimator.classes_,
                                      ["benign", "malignant", "normal"])


# -- scikit-learn's checks -------------------------------------------------------
# Checks that apply to an estimator whose X is images: they need no data, or
# only call an unfitted predict.
APPLICABLE_CHECKS = [
    "check_estimator_cloneable",
    "check_estimator_repr",
    "check_get_params_invariance",
    "check_parameters_default_constructible",
    "check_do_not_raise_errors_in_init_or_set_params",
    "check_estimator_tags_renamed",
    "check_valid_tag_types",
    "check_mixin_order",
    "check_estimators_unfitted",
]


@pytest.mark.parametrize("check", APPLICABLE_CHECKS)
@pytest.mark.parametrize("cls", BOTH)
def test_scikit_learn_estimator_checks(cls, check):
    getattr(estimator_checks, check)(cls.__name__, cls("small_cnn", max_epochs=1))


@pytest.mark.parametrize("cls", BOTH)
def test_declared_a_classifier_of_images(cls):
    from sklearn.utils import get_tags

    tags = get_tags(cls("small_cnn"))
    assert is_classifier(cls("small_cnn"))
    assert tags.input_tags.three_d_array and not tags.input_tags.two_d_array


# The contract of scikit-learn's data-driven checks, on images.
@pytest.mark.parametrize("cls", BOTH)
def test_fit_is_idempotent_and_changes_no_parameter(cls):
    # check_fit_idempotent, check_dont_overwrite_parameters, check_estimators_overwrite_params
    X, y = make_images(labels=("a", "b"))
    clf = net(cls, classes=np.array(["a", "b"]))

    def params():  # skorch's callbacks__* are its callbacks' live state, not parameters
        return {k: joblib.hash(v) for k, v in clf.get_params(deep=False).items()
                if not k.startswith("callbacks__")}

    before = params()
    first = clf.fit(X, y).predict_proba(X)
    assert params() == before
    np.testing.assert_array_equal(clf.fit(X, y).predict_proba(X), first)


@pytest.mark.parametrize("cls", BOTH)
def test_unfitted_methods_raise_not_fitted_error_on_images(cls):
    # check_estimators_unfitted / check_fit_check_is_fitted, on images
    X, y = make_images(n=6)
    clf = net(cls)
    for method in ("predict", "predict_proba", "embed"):
        with pytest.raises(NotFittedError):
            getattr(clf, method)(X)
    with pytest.raises(NotFittedError):
        clf.score(X, y)
    clf.fit(X, y)
    clf.check_is_fitted()


@pytest.mark.parametrize("cls", BOTH)
def test_pickle_keeps_labels_and_predictions(cls):
    # check_estimators_pickle, on images and string labels
    X, y = make_images(labels=("x", "y"))
    clf = net(cls).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.classes_, clf.classes_)
    np.testing.assert_array_equal(again.predict(X), clf.predict(X))
