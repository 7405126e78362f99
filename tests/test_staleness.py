"""benchmarks/staleness.py: the stale loop queries with the previous cycle's model, and
its summary pairs the two modes by seed."""

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LogisticRegression

from benchmarks import staleness
from skal.callbacks import Callback
from skal.experiment import ActiveLearningClassifier


class _Models(Callback):
    """The trained model's coefficients at each cycle's end."""

    def __init__(self):
        self.coefs = []

    def on_cycle_end(self, experiment, record):
        self.coefs.append(experiment.estimator_.coef_.copy())


def _fit(cls):
    seen = []

    def first_items(learner, X_pool, n_instances=1):
        seen.append(learner.estimator.coef_.copy())  # the model that picks
        return np.arange(n_instances)

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3))
    y = (X[:, 0] + 0.3 * rng.normal(size=60) > 0).astype(int)
    models = _Models()
    experiment = cls(LogisticRegression(), first_items, query_size=10, n_cycles=4,
                     random_state=0, callbacks=[models])
    experiment.fit(X, y)
    return seen, models.coefs, experiment


def test_each_query_after_the_first_is_made_by_the_previous_cycles_model():
    seen, models, stale = _fit(staleness.OneRoundBehind)
    assert len(seen) == 3 and len(models) == 4
    np.testing.assert_array_equal(seen[0], models[0])  # batch 1: the first model, as today
    np.testing.assert_array_equal(seen[1], models[0])  # one round behind from then on
    np.testing.assert_array_equal(seen[2], models[1])
    assert not np.array_equal(models[0], models[1])  # so the test can tell them apart
    # The synchronous loop queries with the model just trained.
    seen_sync, models_sync, sync = _fit(ActiveLearningClassifier)
    for query, model in zip(seen_sync, models_sync):
        np.testing.assert_array_equal(query, model)
    # Training and evaluation are the parent's: the final model is the one
    # trained on every label, and the learner holds it again after the query.
    assert stale.learner_.estimator is stale.estimator_


def test_summary_pairs_modes_by_seed():
    rows = []
    for seed, (sync_acc, stale_acc) in enumerate([((0.6, 0.8), (0.6, 0.7)),
                                                  ((0.5, 0.7), (0.5, 0.7))]):
        for mode, curve in (("sync", sync_acc), ("stale", stale_acc)):
            for cycle, acc in enumerate(curve, start=1):
                rows.append({"mode": mode, "method": "margin", "dataset": "d", "seed": seed,
                             "cycle": cycle, "n_labeled": 10 * cycle, "acc": acc,
                             "train_seconds": 1.0, "query_seconds": 0.0})
    summary = staleness.summarize(pd.DataFrame(rows), n_boot=200).iloc[0]
    # Final ACC: stale − sync = -0.1 and 0 -> mean -0.05. Area (mean height of
    # a two-point curve): (0.6 + 0.7) / 2 - (0.6 + 0.8) / 2 = -0.05 and 0 -> -0.025.
    assert summary["n_pairs"] == 2
    assert summary["final_acc_diff"] == pytest.approx(-0.05)
    assert summary["acc_area_diff"] == pytest.approx(-0.025)
    assert summary["acc_area_sync"] == pytest.approx((0.7 + 0.6) / 2)
    text = staleness.render(staleness.summarize(pd.DataFrame(rows), n_boot=200), "cmd",
                            pd.DataFrame(rows))
    # -0.025 is 2.5 points of ACC area: more than issue 17 allows.
    assert "The largest mean cost, 2.50 points of ACC area (margin on d" in text
    assert "is more than one point" in text
