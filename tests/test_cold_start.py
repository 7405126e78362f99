"""Cold-start first batches: TypiClust and ProbCover known answers, and their use as
``initial_strategy`` / ``--initial``."""

import functools

import numpy as np
import pytest
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from skal import registry
from skal.cli import build_run_parser
from skal.experiment import ActiveLearningClassifier, ExperimentParameterError, _cycle_seed
from skal.query import INITIAL_STRATEGIES, get_initial_strategy
from skal.query.cold_start import (coverage, probcover, purity_delta, random_initial,
                                   typiclust_initial)

POOL = np.zeros((1, 2, 2), np.uint8)  # the strategies read `features`, not the pixels


def pool_of(features):
    return np.zeros((len(features), 2, 2), np.uint8)


# ----------------------------------------------------------------------------
# ProbCover
# ----------------------------------------------------------------------------

#: Balls of radius 1. A: a centre and 4 points 0.6 from it (an outer point's ball holds
#: itself, the centre and its 2 neighbours, 0.85 away, not the opposite one, 1.2 away);
#: B: a centre and 2 points 0.6 on either side; C: one point alone.
BALLS = np.array([[0, 0], [0.6, 0], [-0.6, 0], [0, 0.6], [0, -0.6],
                  [10, 0], [10.6, 0], [9.4, 0],
                  [0, 10]], dtype=float)


def test_probcover_picks_the_densest_uncovered_ball_first():
    picks, rows = probcover(None, pool_of(BALLS), 3, features=BALLS, delta=1.0,
                            random_state=0, return_utilities=True)
    # A's centre covers 5, B's centre 3 (its outer points cover 2), then C covers itself
    assert picks.tolist() == [0, 5, 8]
    assert rows.shape == (3, len(BALLS)) and rows.dtype == np.float64
    assert rows[np.arange(3), picks].tolist() == [5.0, 3.0, 1.0]
    # Step 0: every ball's count (an outer point of A holds 4); later rows: picks are NaN,
    # and A's points cover nothing new once A's centre is in.
    assert rows[0].tolist() == [5, 4, 4, 4, 4, 3, 2, 2, 1]
    assert np.isnan(rows[1, 0]) and rows[1, 1:5].tolist() == [0, 0, 0, 0]
    assert all(np.nanargmax(rows[j]) == picks[j] for j in range(3))
    assert coverage(BALLS, picks[:1], 1.0) == pytest.approx(5 / 9)
    assert coverage(BALLS, picks[:2], 1.0) == pytest.approx(8 / 9)
    assert coverage(BALLS, picks, 1.0) == 1.0


def test_probcover_counts_labeled_balls_as_covered():
    picks = probcover(None, pool_of(BALLS), 1, features=BALLS, delta=1.0, labeled=[1],
                      random_state=0)
    assert picks.tolist() == [5]  # A is covered by the labeled point 1


def test_probcover_draws_at_random_once_everything_is_covered():
    picks = probcover(None, pool_of(BALLS), 5, features=BALLS, delta=100.0, random_state=0)
    assert len(set(picks.tolist())) == 5
    assert coverage(BALLS, picks[:1], 100.0) == 1.0


def test_purity_delta_is_the_alpha_quantile_of_the_distance_to_another_label():
    points = np.array([[0.0], [1.0], [2.0], [10.0], [11.0]])
    labels = np.array([0, 0, 0, 1, 1])
    # distance to the nearest point of another label: 10, 9, 8, 8, 9
    assert purity_delta(points, labels, alpha=1.0) == 8.0
    assert purity_delta(points, labels, alpha=0.6) == 9.0  # 3 of 5 balls must be pure
    assert purity_delta(points, labels, alpha=0.2) == 10.0
    assert purity_delta(points, np.zeros(5), alpha=0.9) == np.inf


def test_probcover_chooses_delta_by_purity_and_needs_the_classes():
    rng = np.random.default_rng(0)
    blobs = np.concatenate([rng.normal(0, 0.1, (30, 2)), rng.normal(5, 0.1, (20, 2))])
    picks = probcover(None, pool_of(blobs), 2, features=blobs, n_classes=2, random_state=0)
    assert sorted(p // 30 if p < 30 else 1 for p in picks) == [0, 1]  # one per blob
    with pytest.raises(ValueError, match="n_classes"):
        probcover(None, pool_of(blobs), 2, features=blobs)


# ----------------------------------------------------------------------------
# TypiClust
# ----------------------------------------------------------------------------


def ring(center, n, radius=1.0):
    """A centre point and ``n`` points on a circle around it: the centre is the most typical."""
    angles = np.linspace(0, 2 * np.pi, n, endpoint=False)
    return np.concatenate([[center], center + radius * np.c_[np.cos(angles), np.sin(angles)]])


def clusters():
    parts = [ring(np.array([0.0, 0.0]), 11), ring(np.array([50.0, 0.0]), 7),
             ring(np.array([0.0, 50.0]), 5)]
    return np.concatenate(parts), np.cumsum([0] + [len(p) for p in parts])[:-1]


def test_typiclust_takes_each_clusters_most_typical_point_largest_first():
    features, starts = clusters()
    picks, typ = typiclust_initial(None, pool_of(features), 3, features=features,
                                   random_state=0, return_utilities=True)
    assert picks.tolist() == starts.tolist()  # the centres: sizes 12, 8, 6 in that order
    # the centre's mean distance to its ring is the radius
    assert typ[0, picks[0]] == pytest.approx(1.0)
    # each row holds the chosen cluster's members only, and the pick is its most typical
    sizes = [12, 8, 6]
    for j in range(3):
        assert np.isfinite(typ[j]).sum() == sizes[j]
        assert np.nanargmax(typ[j]) == picks[j]


def test_typiclust_skips_clusters_below_the_minimum_size():
    features, starts = clusters()
    outliers = np.array([[100.0, 100.0], [100.5, 100.0]])  # a 2-point cluster
    both = np.concatenate([features, outliers])
    picks = typiclust_initial(None, pool_of(both), 4, features=both, random_state=0)
    assert picks[:3].tolist() == starts.tolist()
    assert picks[3] < len(features)  # the outlier pair is never picked
    # with no minimum, the pair is a cluster like the others
    picks = typiclust_initial(None, pool_of(both), 4, features=both, random_state=0,
                              min_cluster_size=1)
    assert picks[3] >= len(features)


def test_typiclust_with_labeled_items_covers_their_cluster():
    features, starts = clusters()
    picks = typiclust_initial(None, pool_of(features), 2, features=features, random_state=0,
                              labeled=[1])  # a member of the largest cluster is labeled
    assert picks.tolist() == starts[1:].tolist()


def test_cold_start_inputs_are_checked():
    features, _ = clusters()
    with pytest.raises(ValueError, match="one finite row per pool item"):
        typiclust_initial(None, pool_of(features[:-1]), 2, features=features)
    with pytest.raises(ValueError, match="larger than the unlabeled pool"):
        probcover(None, pool_of(BALLS), 9, features=BALLS, delta=1.0, labeled=[0])
    with pytest.raises(ValueError, match="delta must be positive"):
        probcover(None, pool_of(BALLS), 1, features=BALLS, delta=0.0)


def test_features_by_name_go_through_pool_features(tmp_path):
    X = np.random.default_rng(0).integers(0, 256, size=(30, 6, 6), dtype=np.uint8)
    picks = typiclust_initial(None, X, 3, features="pca", feature_params={"n_components": 3},
                              cache_dir=tmp_path, random_state=0)
    assert len(set(picks.tolist())) == 3
    assert len(list(tmp_path.glob("*.npy"))) == 1


# ----------------------------------------------------------------------------
# The registry, the experiment and the command line
# ----------------------------------------------------------------------------


def test_registry_names_match():
    assert tuple(INITIAL_STRATEGIES) == registry.INITIALS
    assert get_initial_strategy("probcover") is probcover
    with pytest.raises(ValueError, match="valid names are: random, typiclust, probcover"):
        get_initial_strategy("kmeans")


def flat_logreg():
    return make_pipeline(FunctionTransformer(lambda X: X.reshape(len(X), -1) / 255.0),
                         LogisticRegression(max_iter=200))


@pytest.fixture
def toy():
    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 30)
    X = (rng.integers(0, 100, size=(60, 4, 4)) + 100 * y[:, None, None]).astype(np.uint8)
    return X, y


def test_random_initial_set_is_the_permutation_every_run_drew(toy):
    X, y = toy
    al = ActiveLearningClassifier(flat_logreg(), "random", n_initial=6, query_size=4,
                                  n_cycles=2, random_state=7).fit(X, y)
    order = np.random.default_rng(_cycle_seed(7, 0, 0)).permutation(len(X))
    np.testing.assert_array_equal(al.initial_indices_, order[:6])
    np.testing.assert_array_equal(random_initial(None, X, 6, random_state=np.random.default_rng(
        _cycle_seed(7, 0, 0))), order[:6])


def test_initial_strategy_chooses_the_first_batch(toy):
    X, y = toy
    seen = {}

    def first_six(learner, X_pool, n_instances=1, *, random_state=None, n_classes=None):
        seen.update(learner=learner, n=n_instances, n_classes=n_classes, rng=random_state)
        return np.array([0, 59, 1, 58, 2, 57])[:n_instances]

    al = ActiveLearningClassifier(flat_logreg(), "random", n_initial=6, query_size=4,
                                  n_cycles=2, random_state=0, initial_strategy=first_six)
    al.fit(X, y)
    assert al.initial_indices_.tolist() == [0, 59, 1, 58, 2, 57]
    assert seen["learner"] is None and seen["n"] == 6 and seen["n_classes"] == 2
    assert isinstance(seen["rng"], np.random.Generator)

    pca_probcover = functools.partial(probcover, features="pca", cache_dir=False,
                                      feature_params={"n_components": 2})
    al = ActiveLearningClassifier(flat_logreg(), "random", n_initial=2, query_size=4,
                                  n_cycles=1, random_state=0, initial_strategy=pca_probcover)
    al.fit(X, y)
    expected = probcover(None, X, 2, features="pca", cache_dir=False,
                         feature_params={"n_components": 2}, n_classes=2,
                         random_state=np.random.default_rng(_cycle_seed(al.entropy_, 0, 0)))
    np.testing.assert_array_equal(al.initial_indices_, expected)
    assert sorted(y[al.initial_indices_].tolist()) == [0, 1]  # two separated groups, one each


def test_initial_strategy_is_validated(toy):
    X, y = toy
    with pytest.raises(ExperimentParameterError, match="initial_strategy"):
        ActiveLearningClassifier(flat_logreg(), initial_strategy="kmeans").fit(X, y)

    def bad(learner, X_pool, n_instances=1, random_state=None):
        return np.zeros(n_instances, dtype=int)

    with pytest.raises(RuntimeError, match="initial strategy returned"):
        ActiveLearningClassifier(flat_logreg(), n_initial=3, query_size=2, n_cycles=1,
                                 initial_strategy=bad).fit(X, y)


def test_initial_option_of_main_py():
    parser = build_run_parser()
    args = parser.parse_args(["--method", "random", "--dataset", "breastmnist",
                              "--initial", "typiclust"])
    assert args.initial == "typiclust"
    assert parser.parse_args(["--method", "random", "--dataset", "breastmnist"]).initial == \
        "random"
    with pytest.raises(SystemExit):
        parser.parse_args(["--method", "random", "--dataset", "breastmnist", "--initial", "x"])
