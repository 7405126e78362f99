"""modAL is unmaintained: these tests pin the parts of its API skal depends on.

modAL (0.4.1, and 0.4.2.1) calls ``check_X_y(force_all_finite=...)``, which
scikit-learn 1.8 removed; skal/_modal_compat.py bridges it. The tests below
run modAL with the bridge and with the bridge undone, so they fail if the
bridge is removed or stops being needed, on every scikit-learn in range.
"""

import inspect
import subprocess
import sys
import warnings

import modAL.models.base as modal_base
import numpy as np
import pytest
import sklearn.utils
from modAL.models import ActiveLearner
from modAL.uncertainty import uncertainty_sampling
from sklearn.linear_model import LogisticRegression

from skal import _modal_compat
from skal.estimator import ImageClassifier

# scikit-learn 1.6 and 1.7 still take the old keyword (with a FutureWarning); 1.8 removed it.
SKLEARN_TAKES_OLD_NAME = "force_all_finite" in inspect.signature(sklearn.utils.check_X_y).parameters


def _teach_and_query_logistic_regression():
    """A plain scikit-learn classifier through modAL's fit, query and teach."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(30, 4))
    y = (X[:, 0] > 0).astype(int)
    learner = ActiveLearner(LogisticRegression(), X_training=X[:10], y_training=y[:10])
    idx, _ = learner.query(X[10:], n_instances=3)
    learner.teach(X[10:][idx], y[10:][idx])
    assert learner.X_training.shape == (13, 4)
    return learner


def test_the_bridge_is_applied_by_importing_skals_learner_modules():
    code = ("import modAL.models.base as b, sklearn.utils as s; assert b.check_X_y is s.check_X_y; "
            "import {mod}; from skal import _modal_compat as c; "
            "assert b.check_X_y is c.check_X_y and c.is_applied()")
    for mod in ("skal.query", "skal.estimator"):
        subprocess.run([sys.executable, "-c", code.format(mod=mod)], check=True)


def test_modal_works_with_the_bridge_and_without_a_warning():
    assert _modal_compat.is_applied()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any FutureWarning about force_all_finite fails the test
        learner = _teach_and_query_logistic_regression()
    assert learner.score(learner.X_training, learner.y_training) > 0.5


def test_modal_breaks_without_the_bridge(monkeypatch):
    # Undo the bridge: modAL calls scikit-learn's check_X_y directly again.
    monkeypatch.setattr(modal_base, "check_X_y", sklearn.utils.check_X_y)
    assert not _modal_compat.is_applied()
    if SKLEARN_TAKES_OLD_NAME:
        with pytest.warns(FutureWarning, match="force_all_finite"):
            _teach_and_query_logistic_regression()
    else:
        with pytest.raises(TypeError, match="force_all_finite"):
            _teach_and_query_logistic_regression()


@pytest.mark.parametrize("force_all_finite, refuses_nan", [(True, True), (False, False),
                                                           ("allow-nan", False)])
def test_the_bridge_keeps_the_meaning_of_force_all_finite(force_all_finite, refuses_nan):
    X = np.array([[0.0, np.nan], [1.0, 2.0]])
    y = np.array([0, 1])
    kwargs = dict(accept_sparse=True, ensure_2d=False, allow_nd=True, multi_output=True,
                  dtype=None, force_all_finite=force_all_finite)  # modAL's exact call
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        if refuses_nan:
            with pytest.raises(ValueError, match="NaN"):
                _modal_compat.check_X_y(X, y, **kwargs)
        else:
            X_out, y_out = _modal_compat.check_X_y(X, y, **kwargs)
            assert np.isnan(X_out[0, 1]) and np.array_equal(y_out, y)


def test_active_learner_runs_end_to_end_with_an_image_classifier():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    y = np.arange(40) % 3
    net = ImageClassifier("small_cnn", n_classes=3, max_epochs=1, random_state=0, warm_start=True)
    learner = ActiveLearner(net, query_strategy=uncertainty_sampling,
                            X_training=X[:10], y_training=y[:10])
    pool = np.arange(10, 40)
    for _ in range(2):
        idx, rows = learner.query(X[pool], n_instances=4)
        assert len(set(idx.tolist())) == 4
        assert np.array_equal(rows, X[pool][idx])
        learner.teach(X[pool][idx], y[pool][idx])
        pool = np.delete(pool, idx)
    assert learner.X_training.shape == (18, 28, 28)
    assert learner.X_training.dtype == np.uint8  # modAL keeps images as stored
    assert learner.predict_proba(X[:5]).shape == (5, 3)
    assert 0.0 <= learner.score(X, y) <= 1.0
