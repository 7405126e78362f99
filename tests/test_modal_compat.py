"""modAL is unmaintained: these tests pin the parts of its API skal depends on.

modAL (0.4.1, and 0.4.2.1) calls ``check_X_y(force_all_finite=...)``, which
scikit-learn 1.8 removed; pyproject.toml keeps scikit-learn below 1.8, and the
end-to-end test below fails on any version where that breaks.
"""

import numpy as np
from modAL.models import ActiveLearner
from modAL.uncertainty import uncertainty_sampling

from skal.estimator import ImageClassifier


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
