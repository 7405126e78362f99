"""Every registered query through modAL's ActiveLearner with a real skal network.

Tiny: a small CNN, one epoch, 20 labeled and 40 pool images of random
uint8 noise. The point is the plumbing (modAL call, Pipeline steps, the
networks' embed / predict_proba_mc / predict_loss, the kernels), not the
quality of the picks, which ``test_query.py`` checks with known answers.
"""

import numpy as np
import pytest
from modAL.models import ActiveLearner
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

from skal.estimator import ImageClassifier, LossPredictionClassifier
from skal.query import STRATEGIES, bald, get_query_strategy, strategy_requirements

N_LABELED, N_POOL, N_QUERY = 20, 40, 5


@pytest.fixture(scope="module")
def images():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (N_LABELED + N_POOL, 28, 28), dtype=np.uint8)
    y = np.arange(len(X)) % 3
    return X[:N_LABELED], y[:N_LABELED], X[N_LABELED:]


def make_estimator(name, wrapper):
    needs = strategy_requirements(name)
    cls = LossPredictionClassifier if "loss_head" in needs else ImageClassifier
    net = cls("small_cnn", n_classes=3, max_epochs=1, random_state=0,
              dropout=0.3 if "dropout" in needs else 0.0, device="cpu")
    if wrapper == "pipeline":
        return Pipeline([("id", FunctionTransformer(lambda X: X)), ("net", net)])
    return net


@pytest.mark.parametrize("wrapper", ["plain", "pipeline"])
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_query_through_modal_active_learner(name, wrapper, images):
    X_lab, y_lab, X_pool = images
    learner = ActiveLearner(make_estimator(name, wrapper), query_strategy=get_query_strategy(name),
                            X_training=X_lab, y_training=y_lab)
    idx, rows = learner.query(X_pool, n_instances=N_QUERY, random_state=0)
    assert isinstance(idx, np.ndarray) and idx.dtype == np.int64 and idx.shape == (N_QUERY,)
    assert len(set(idx.tolist())) == N_QUERY
    assert idx.min() >= 0 and idx.max() < N_POOL
    np.testing.assert_array_equal(rows, X_pool[idx])
    again, _ = learner.query(X_pool, n_instances=N_QUERY, random_state=0)
    np.testing.assert_array_equal(idx, again)
    if wrapper == "pipeline":
        return
    # The learner can be taught the picks and query again (the AL loop's step).
    learner.teach(rows, np.arange(N_QUERY) % 3)
    rest = np.delete(X_pool, idx, axis=0)
    nxt, _ = learner.query(rest, n_instances=N_QUERY, random_state=1)
    assert len(set(nxt.tolist())) == N_QUERY and nxt.max() < len(rest)


@pytest.mark.parametrize("name", ["coreset", "least_confidence"])
def test_query_with_a_fitted_estimator_directly(name, images):
    X_lab, y_lab, X_pool = images
    net = make_estimator(name, "plain").fit(X_lab, y_lab)
    idx = STRATEGIES[name](net, X_pool, n_instances=3, random_state=0, subsample=20)
    assert idx.dtype == np.int64 and len(set(idx.tolist())) == 3


def test_bald_with_dropout_zero_raises_the_estimators_error(images):
    X_lab, y_lab, X_pool = images
    net = ImageClassifier("small_cnn", n_classes=3, max_epochs=1, random_state=0,
                          device="cpu").fit(X_lab, y_lab)
    with pytest.raises(ValueError, match="dropout > 0"):
        bald(net, X_pool, n_instances=2)


def test_loss_methods_refuse_a_plain_image_classifier(images):
    X_lab, y_lab, X_pool = images
    learner = ActiveLearner(make_estimator("margin", "pipeline"), query_strategy=STRATEGIES["scal"],
                            X_training=X_lab, y_training=y_lab)
    with pytest.raises(ValueError, match="scal needs a loss-prediction head.*"
                                         "LossPredictionClassifier"):
        learner.query(X_pool, n_instances=2)
