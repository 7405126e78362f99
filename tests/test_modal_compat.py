"""modAL is unmaintained: these tests pin the parts of its API skal depends on.

modAL 0.4.1 calls ``check_X_y(force_all_finite=...)`` (scikit-learn 1.8
removed the keyword), ``DataFrame.append`` (pandas 2.0 removed it) and
``np.float``/``np.bool`` (numpy 1.24 removed them; 2.0 brought ``np.bool``
back); skal/_modal_compat.py bridges each. The tests below run modAL with the
bridge and with the bridge undone, so they fail if the bridge is removed or
stops being needed, on every version in range (CI runs this file on the
newest versions and on the lowest pyproject.toml allows).
"""

import inspect
import subprocess
import sys
import warnings

import modAL.batch as modal_batch
import modAL.models.base as modal_base
import numpy as np
import pandas as pd
import pytest
import sklearn.utils
from modAL.models import ActiveLearner
from modAL.uncertainty import uncertainty_sampling
from sklearn.linear_model import LogisticRegression
from sklearn.neighbors import KNeighborsClassifier

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


# ----------------------------------------------------------------------------
# pandas >= 2.0: teach with DataFrames (modAL's data_vstack used DataFrame.append)
# ----------------------------------------------------------------------------


def _frames():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(30, 3)), columns=["a", "b", "c"],
                     index=[f"row{i}" for i in range(30)])
    y = (X["a"] > 0).to_numpy().astype(int)
    return X, y


def test_teach_with_dataframes_stacks_rows_as_dataframe_append_did():
    X, y = _frames()
    learner = ActiveLearner(LogisticRegression(), X_training=X.iloc[:10], y_training=y[:10])
    learner.teach(X.iloc[10:14], y[10:14])
    learner.teach(X.iloc[[20]], y[[20]])
    assert isinstance(learner.X_training, pd.DataFrame)
    pd.testing.assert_frame_equal(learner.X_training, X.iloc[[*range(14), 20]])
    assert learner.y_training.tolist() == y[[*range(14), 20]].tolist()
    idx, rows = learner.query(X.iloc[21:], n_instances=2)
    pd.testing.assert_frame_equal(rows, X.iloc[21:].iloc[idx])


def test_teach_with_dataframes_fails_without_the_bridge(monkeypatch):
    # Undo the bridge where ActiveLearner.teach looks the name up.
    monkeypatch.setattr(modal_base, "data_vstack", _modal_compat._modal_data_vstack)
    X, y = _frames()
    learner = ActiveLearner(LogisticRegression(), X_training=X.iloc[:10], y_training=y[:10])
    with pytest.raises(AttributeError, match="append"):  # pandas >= 2.0 has no DataFrame.append
        learner.teach(X.iloc[10:14], y[10:14])


def test_data_vstack_of_other_inputs_is_modals_own():
    a, b = np.arange(6).reshape(2, 3), np.arange(6, 9).reshape(1, 3)
    assert np.array_equal(_modal_compat.data_vstack([a, b]), np.arange(9).reshape(3, 3))
    assert _modal_compat.data_vstack([a.tolist(), b.tolist()]) == np.arange(9).reshape(3, 3).tolist()
    frame = pd.DataFrame(a, columns=list("xyz"))
    one_row = pd.Series([6, 7, 8], index=list("xyz"), name=5)  # a row, as iterrows gives it
    stacked = _modal_compat.data_vstack([frame, one_row])
    assert stacked.index.tolist() == [0, 1, 5] and stacked.to_numpy().tolist() == [
        [0, 1, 2], [3, 4, 5], [6, 7, 8]]


# ----------------------------------------------------------------------------
# numpy >= 1.24: modAL.expected_error (np.float) and modAL.batch (np.bool)
# ----------------------------------------------------------------------------


def test_expected_error_imports_after_skals_bridge_and_not_before():
    before = subprocess.run([sys.executable, "-c", "import modAL.expected_error"],
                            capture_output=True, text=True)
    assert before.returncode != 0 and "np.float" in before.stderr
    code = ("import numpy as np, pandas as pd, skal.query, modAL.expected_error as e, modAL; "
            "assert modAL.expected_error is e and callable(e.expected_error_reduction); "
            # the bridge adds no name to numpy or pandas
            "assert not hasattr(np, 'float') and not hasattr(pd.DataFrame, 'append')")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_expected_error_reduction_picks_the_same_from_a_dataframe_as_from_an_array():
    from modAL.expected_error import expected_error_reduction

    X, y = _frames()
    for loss in ("binary", "log"):
        picks = []
        # modAL indexes the pool's probabilities by the DataFrame's row labels
        # (iterrows), in every version: the pool needs the index 0..n-1.
        frame = X.reset_index(drop=True)
        for data in (X.to_numpy(), frame):  # the frame's rows go through add_row, data_vstack
            learner = ActiveLearner(KNeighborsClassifier(3), X_training=data[:8],
                                    y_training=y[:8])
            pool = data[8:] if isinstance(data, np.ndarray) else data[8:].reset_index(drop=True)
            idx = expected_error_reduction(learner, pool, loss=loss, n_instances=3)
            picks.append(np.asarray(idx).tolist())
        assert len(set(picks[0])) == 3 and max(picks[0]) < 22
        assert picks[1] == picks[0], loss


def test_ranked_batch_sampling_runs_through_an_active_learner():
    from modAL.batch import uncertainty_batch_sampling

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = (X[:, 0] > 0).astype(int)
    learner = ActiveLearner(LogisticRegression(), query_strategy=uncertainty_batch_sampling,
                            X_training=X[:10], y_training=y[:10])
    idx, rows = learner.query(X[10:], n_instances=4)  # np.ones(n, np.bool) inside
    assert len(set(idx.tolist())) == 4 and np.array_equal(rows, X[10:][idx])


def test_numpy_as_modal_batch_sees_it():
    if hasattr(np, "bool"):  # numpy >= 2.0: nothing to bridge, modAL.batch sees numpy itself
        assert modal_batch.np is np
    else:  # numpy 1.24 to 1.26
        assert isinstance(modal_batch.np, _modal_compat._NumpyForModal)
    proxy = _modal_compat._NumpyForModal("numpy")
    assert proxy.bool is bool and proxy.ones is np.ones and proxy.float64 is np.float64
    assert np.ones(3, proxy.bool).dtype == np.bool_
