"""Query functions on stubs with known answers, the registry, and the errors.

A stub is a tiny fitted-estimator stand-in whose duck-typed methods return
rows of fixed tables; the pool holds row ids, ``X_pool = ids[:, None]``, so
a pool item's scores are known exactly. The real-network runs through modAL
are in ``test_query_integration.py``.
"""

import numpy as np
import pytest
from modAL.models import ActiveLearner
from scipy.special import entr
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer

import skal.query as q
from skal.query import (STRATEGIES, bald, badge, cluster_margin, coreset, entropy,
                        get_query_strategy, least_confidence, ll4al, margin,
                        missing_requirements, random_sampling, scal, strategy_requirements,
                        subsample_size, typiclust)
from skal.query.scores import (entropy_scores, least_confidence_scores, margin_scores,
                               mutual_information)
from skal.query.diversity import typical_picks, typicality
from skal.query.selection import round_robin, top_k


# --------------------------------------------------------------------------
# stubs
# --------------------------------------------------------------------------
class Stub:
    """A fitted estimator stand-in with only the methods whose tables are given.

    Every method reads the row ids in ``X[:, 0]`` and returns those rows of
    its table; ``calls`` records (method, ids, kwargs).
    """

    def __init__(self, proba=None, mc=None, embedding=None, loss=None, multi_label=False):
        self.multi_label = multi_label
        self.calls = []
        tables = {"predict_proba": proba, "embed": embedding, "predict_loss": loss}
        for name, table in tables.items():
            if table is not None:
                setattr(self, name, self._reader(name, np.asarray(table)))
        if mc is not None:
            mc = np.asarray(mc)

            def predict_proba_mc(X, n_samples=20, random_state=None):
                ids = self._ids(X)
                self.calls.append(("predict_proba_mc", ids, dict(n_samples=n_samples,
                                                                random_state=random_state)))
                return mc[:, ids]

            self.predict_proba_mc = predict_proba_mc

    def _ids(self, X):
        return np.asarray(X)[:, 0].astype(np.int64)

    def _reader(self, name, table):
        def read(X):
            ids = self._ids(X)
            self.calls.append((name, ids, {}))
            return table[ids]
        return read

    def fit(self, X, y):  # lets modAL's ActiveLearner wrap a stub
        return self


def ids(n, start=0):
    return np.arange(start, start + n)[:, None]


def margin_proba(margins):
    """Two-class probabilities with the given margins p1 - p2."""
    margins = np.asarray(margins, dtype=float)
    return np.stack([0.5 + margins / 2, 0.5 - margins / 2], axis=1)


def blob(center, n, radius=1.0):
    """A center point then ``n - 1`` points evenly on a circle around it."""
    angles = np.linspace(0, 2 * np.pi, n - 1, endpoint=False)
    ring = np.stack([np.cos(angles), np.sin(angles)], axis=1) * radius
    return np.vstack([[0.0, 0.0], ring]) + np.asarray(center, dtype=float)


# 4-class probabilities chosen so that the three uncertainty scores disagree.
PROBA = np.array([
    [0.97, 0.01, 0.01, 0.01],  # 0: confident
    [0.40, 0.20, 0.20, 0.20],  # 1: 2nd highest entropy
    [0.45, 0.44, 0.11, 0.00],  # 2: 2nd smallest margin
    [0.50, 0.30, 0.20, 0.00],  # 3
    [0.30, 0.30, 0.30, 0.10],  # 4: smallest margin (0), 2nd least confident
    [0.27, 0.25, 0.25, 0.23],  # 5: least confident, highest entropy
])

# 3 labels, independent sigmoids.
PROBA_MULTI = np.array([
    [0.50, 0.00, 1.00],  # one maximally uncertain label
    [0.30, 0.30, 0.30],  # moderately uncertain everywhere
    [0.90, 0.90, 0.90],
    [0.60, 0.50, 0.95],
])


# --------------------------------------------------------------------------
# scores and selection rules
# --------------------------------------------------------------------------
def test_scores_single_label_values():
    np.testing.assert_allclose(least_confidence_scores(PROBA)[[0, 5]], [0.03, 0.73])
    np.testing.assert_allclose(margin_scores(PROBA), [0.96, 0.2, 0.01, 0.2, 0.0, 0.02], atol=1e-12)
    np.testing.assert_allclose(entropy_scores(PROBA), entr(PROBA).sum(1))


def test_scores_multi_label_average_binary_scores():
    # Label by label as binary problems (1 - p, p), then the mean over labels.
    np.testing.assert_allclose(least_confidence_scores(PROBA_MULTI, multi_label=True),
                               [0.5 / 3, 0.3, 0.1, (0.4 + 0.5 + 0.05) / 3])
    np.testing.assert_allclose(margin_scores(PROBA_MULTI, multi_label=True),
                               [2 / 3, 0.4, 0.8, (0.2 + 0.0 + 0.9) / 3])
    h = lambda p: -p * np.log(p) - (1 - p) * np.log(1 - p)  # noqa: E731
    np.testing.assert_allclose(entropy_scores(PROBA_MULTI, multi_label=True),
                               [np.log(2) / 3, h(0.3), h(0.9), (h(0.6) + h(0.5) + h(0.95)) / 3])


def test_mutual_information_values():
    mc = np.array([[[0.5, 0.5], [1.0, 0.0], [0.9, 0.1]],
                   [[0.5, 0.5], [0.0, 1.0], [0.6, 0.4]]])
    expected_2 = entropy_scores([[0.75, 0.25]])[0] - (entropy_scores([[0.9, 0.1]])[0]
                                                      + entropy_scores([[0.6, 0.4]])[0]) / 2
    np.testing.assert_allclose(mutual_information(mc), [0.0, np.log(2), expected_2], atol=1e-12)
    # Multi-label: each label's binary MI, averaged. Label 0 disagrees fully, label 1 never.
    mc_multi = np.array([[[1.0, 0.5]], [[0.0, 0.5]]])
    np.testing.assert_allclose(mutual_information(mc_multi, multi_label=True), [np.log(2) / 2])


def test_top_k_orders_by_score_and_breaks_ties_at_random():
    scores = np.array([0.1, 0.9, 0.5, 0.9, 0.3])
    firsts = {tuple(top_k(scores, 2, np.random.default_rng(s))) for s in range(20)}
    assert firsts == {(1, 3), (3, 1)}
    assert list(top_k(scores, 4, np.random.default_rng(0))[2:]) == [2, 4]
    with pytest.raises(ValueError, match="NaN"):
        top_k([0.1, np.nan], 1, np.random.default_rng(0))


def test_round_robin_smallest_cluster_first():
    labels = np.array([1, 0, 1, 0, 0, 2, 0])  # sizes: 0 -> 4, 1 -> 2, 2 -> 1
    picks = round_robin(labels, 6, np.random.default_rng(0))
    # Round 1: cluster 2, 1, 0 (first members); round 2: 1, 0; round 3: 0.
    assert list(picks) == [5, 0, 1, 2, 3, 4]


# --------------------------------------------------------------------------
# uncertainty methods
# --------------------------------------------------------------------------
@pytest.mark.parametrize("method, expected", [
    (least_confidence, [5, 4]),
    (margin, [4, 2]),
    (entropy, [5, 1]),
])
def test_uncertainty_known_rows(method, expected):
    picks = method(Stub(proba=PROBA), ids(6), n_instances=2, random_state=0)
    assert picks.dtype == np.int64
    assert list(picks) == expected


@pytest.mark.parametrize("method, expected", [
    (least_confidence, [3, 1]),  # mean min(p, 1-p): 0.317 > 0.3
    (margin, [3, 1]),  # mean |2p-1|: 0.367 < 0.4 (for binary labels, margin = 1 - 2 LC)
    (entropy, [1, 3]),  # mean binary entropy: 0.611 > 0.522
])
def test_uncertainty_multi_label_averages_per_label_scores(method, expected):
    # Read as one softmax over labels, row 1 would win all three.
    stub = Stub(proba=PROBA_MULTI, multi_label=True)
    assert list(method(stub, ids(4), n_instances=2, random_state=0)) == expected


def test_bald_picks_max_mutual_information_and_seeds_the_passes():
    # Row 0 is maximally uncertain on average but every pass agrees: MI 0.
    mc = np.array([[[0.5, 0.5], [1.0, 0.0], [0.9, 0.1], [0.5, 0.5]],
                   [[0.5, 0.5], [0.0, 1.0], [0.6, 0.4], [0.5, 0.5]]])
    stub = Stub(mc=mc)
    assert list(bald(stub, ids(4), n_instances=2, n_samples=7, random_state=3)) == [1, 2]
    _, _, kwargs = stub.calls[-1]
    assert kwargs["n_samples"] == 7 and isinstance(kwargs["random_state"], int)
    bald(stub, ids(4), n_instances=2, n_samples=7, random_state=3)
    assert stub.calls[-1][2] == kwargs  # same state, same dropout seed


def test_ll4al_takes_top_predicted_loss():
    stub = Stub(loss=[0.1, 0.9, 0.5, 0.7, 0.2])
    assert list(ll4al(stub, ids(5), n_instances=2, random_state=0)) == [1, 3]


# --------------------------------------------------------------------------
# diversity methods
# --------------------------------------------------------------------------
# Pool ids 0..4, a labeled item with id 5 at the origin.
CORESET_POINTS = np.array([[1, 0], [10, 0], [0, 5], [9, 1], [-3, 0], [0, 0]], dtype=float)
# Farthest-first from the origin: (10,0); (0,5) (5 > 3); (-3,0) (3 > sqrt 2);
# (9,1) (sqrt 2 > 1); (1,0).
CORESET_ORDER = [1, 2, 4, 3, 0]


def test_coreset_farthest_first_from_the_learners_labeled_set():
    learner = ActiveLearner(Stub(embedding=CORESET_POINTS), query_strategy=coreset,
                            X_training=ids(1, start=5), y_training=[0])
    picks, rows = learner.query(ids(5), n_instances=5, random_state=0)
    assert list(picks) == CORESET_ORDER
    np.testing.assert_array_equal(rows[:, 0], CORESET_ORDER)


def test_coreset_X_labeled_for_a_bare_estimator():
    stub = Stub(embedding=CORESET_POINTS)
    assert list(coreset(stub, ids(5), n_instances=5, X_labeled=ids(1, start=5))) == CORESET_ORDER


def test_coreset_without_labeled_set_starts_at_random_then_farthest_first():
    stub = Stub(embedding=CORESET_POINTS)
    firsts = set()
    for seed in range(12):
        picks = coreset(stub, ids(5), n_instances=2, random_state=seed)
        distances = np.linalg.norm(CORESET_POINTS[:5] - CORESET_POINTS[picks[0]], axis=1)
        assert picks[1] == np.argmax(distances)
        firsts.add(picks[0])
    assert len(firsts) > 1


def typiclust_points():
    # Three far-apart blobs; each blob's first point (its center) is its densest.
    a, b, c = blob((0, 0), 30), blob((60, 0), 20), blob((0, 60), 10)
    return np.vstack([a, b, c])  # ids: A 0..29, B 30..49, C 50..59


def test_typicality_is_highest_at_a_blobs_center():
    for n in (10, 20, 30):
        typ = typicality(blob((0, 0), n), n_neighbors=20)
        assert np.argmax(typ) == 0 and typ[0] > typ[1:].max()
    np.testing.assert_array_equal(typicality(np.zeros((1, 2))), [1.0])


def test_typiclust_densest_point_of_the_largest_uncovered_clusters():
    points = typiclust_points()
    pool = np.array([i for i in range(60) if i != 0])[:, None]  # A's center is labeled
    learner = ActiveLearner(Stub(embedding=points), query_strategy=typiclust,
                            X_training=np.array([[0]]), y_training=[0])
    picks, rows = learner.query(pool, n_instances=2, random_state=0)
    # A is covered by the labeled item, so B (largest uncovered), then C.
    assert list(rows[:, 0]) == [30, 50]


def test_typiclust_revisits_covered_clusters_without_retaking_labeled_items():
    # max_clusters=3 keeps the three blobs as clusters although L + n = 4: after
    # B and C, every cluster is covered once and the largest, A, is visited
    # again; its densest point (the center, id 0) is labeled, so a ring point.
    points = typiclust_points()
    pool = np.arange(1, 60)[:, None]
    learner = ActiveLearner(Stub(embedding=points), query_strategy=typiclust,
                            X_training=np.array([[0]]), y_training=[0])
    _, rows = learner.query(pool, n_instances=3, random_state=0, max_clusters=3)
    assert list(rows[:2, 0]) == [30, 50]
    assert 1 <= rows[2, 0] <= 29


def test_typiclust_without_labeled_set_starts_with_the_largest_cluster():
    points = typiclust_points()
    picks = typiclust(Stub(embedding=points), ids(60), n_instances=3, random_state=1)
    assert list(picks) == [0, 30, 50]


def test_typical_picks_known_answer():
    # One loop serves typiclust and typiclust_initial. 1-D rows, clusters given:
    # c0 = rows 0-4 (0, 1, 1.1, 1.25, 5), c1 = rows 5-7 (20 taken, 21, 21.5),
    # c2 = row 8 (100). Typicality with 2 neighbours, by hand: c0 1/1.05,
    # 1/0.175, 1/0.125, 1/0.2, 1/3.825; c1's untaken rows 1/0.75 and 1/1.
    features = np.array([0, 1, 1.1, 1.25, 5, 20, 21, 21.5, 100])[:, None]
    clusters = np.array([0, 0, 0, 0, 0, 1, 1, 1, 2])
    taken = np.zeros(9, dtype=bool)
    taken[5] = True
    rng = np.random.default_rng(0)
    # Smaller clusters than 2 are skipped: c0's best (1.1), c0 again (larger
    # than c1 at one covered each), c1's best untaken (21), then c0 (1.25).
    picks, steps = typical_picks(features, clusters, 3, taken, 4, rng, n_neighbors=2,
                                 min_cluster_size=2)
    assert picks.tolist() == [2, 1, 6, 3] and picks.dtype == np.int64
    np.testing.assert_array_equal(steps[0][0], [0, 1, 2, 3, 4])
    np.testing.assert_allclose(steps[0][1], 1 / np.array([1.05, 0.175, 0.125, 0.2, 3.825]))
    np.testing.assert_array_equal(steps[2][0], [6, 7])
    np.testing.assert_allclose(steps[2][1], [1 / 0.75, 1.0])
    assert taken.sum() == 1  # the caller's array is left as it was
    # Every cluster eligible: the outlier's cluster is uncovered, so second.
    picks, _ = typical_picks(features, clusters, 3, taken, 3, rng, n_neighbors=2)
    assert picks.tolist() == [2, 8, 1]
    # The small cluster is taken once no large one has an untaken row left.
    picks, _ = typical_picks(features, clusters, 3, taken, 8, rng, n_neighbors=2,
                             min_cluster_size=2)
    assert picks[-1] == 8 and sorted(picks.tolist()) == [0, 1, 2, 3, 4, 6, 7, 8]


# --------------------------------------------------------------------------
# hybrid methods
# --------------------------------------------------------------------------
def test_scal_one_item_per_cluster_of_the_top_predicted_losses():
    rng = np.random.default_rng(0)
    # Pool of 40: clusters A (12), B (10), C (8) hold the top 30 losses; D (10)
    # the lowest ones. n_instances=3 -> 30 candidates -> 3 clusters.
    centers = {"A": (0, 0), "B": (100, 0), "C": (0, 100), "D": (100, 100)}
    sizes = {"A": 12, "B": 10, "C": 8, "D": 10}
    embedding = np.vstack([rng.normal(centers[k], 1.0, (sizes[k], 2)) for k in "ABCD"])
    loss = np.concatenate([rng.uniform(5, 6, 12), rng.uniform(4, 7, 10),
                           rng.uniform(3, 4, 8), rng.uniform(0, 1, 10)])
    # D must be out of the top 30 although it is a well-separated cluster.
    assert loss[30:].max() < np.sort(loss)[-30]
    stub = Stub(loss=loss, embedding=np.hstack([embedding, np.zeros((40, 510))]))
    picks = scal(stub, ids(40), n_instances=3, random_state=0)
    a, b, c = np.argmax(loss[:12]), 12 + np.argmax(loss[12:22]), 22 + np.argmax(loss[22:30])
    assert list(picks) == sorted([a, b, c], key=lambda i: -loss[i])
    # Only the 30 candidates were embedded (512-d raw features).
    embedded = [call[1] for call in stub.calls if call[0] == "embed"]
    assert len(embedded) == 1 and sorted(embedded[0]) == list(range(30))


def test_scal_with_budget_equal_to_candidates_is_top_loss():
    stub = Stub(loss=[0.3, 0.2, 0.9], embedding=np.eye(3))
    assert list(scal(stub, ids(3), n_instances=3, random_state=0)) == [2, 0, 1]


def test_badge_distinct_and_first_pick_is_largest_gradient_norm():
    rng = np.random.default_rng(0)
    proba = rng.dirichlet(np.ones(4), size=50)
    embedding = rng.normal(size=(50, 6))
    gradient = proba - np.eye(4)[proba.argmax(1)]
    norms = np.linalg.norm(gradient, axis=1) * np.linalg.norm(embedding, axis=1)
    stub = Stub(proba=proba, embedding=embedding)
    runs = [badge(stub, ids(50), n_instances=10, random_state=s) for s in range(3)]
    for picks in runs:
        assert len(set(picks)) == 10
        assert picks[0] == np.argmax(norms)
    assert len({tuple(p) for p in runs}) > 1  # later picks are D^2 samples


def test_badge_uses_one_joint_pass_when_the_network_offers_it():
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(3), size=40)
    embedding = rng.normal(size=(40, 5))
    separate = Stub(proba=proba, embedding=embedding)
    joint = Stub(proba=proba, embedding=embedding)

    def predict_proba_and_embed(X):
        rows = joint._ids(X)
        joint.calls.append(("predict_proba_and_embed", rows, {}))
        return proba[rows], embedding[rows]

    joint.predict_proba_and_embed = predict_proba_and_embed
    expected = badge(separate, ids(40), n_instances=8, random_state=3)
    assert list(badge(joint, ids(40), n_instances=8, random_state=3)) == list(expected)
    assert [c[0] for c in joint.calls] == ["predict_proba_and_embed"]


def cluster_margin_stub():
    # Cluster P (2 items) near the origin, Q (6 items) far away; known margins.
    embedding = np.vstack([blob((0, 0), 2, 0.5), blob((50, 0), 6, 0.5)])
    margins = np.array([0.30, 0.10,  # P: 1 then 0
                        0.25, 0.05, 0.40, 0.15, 0.35, 0.20])  # Q: 3, 5, 7, 2, 6, 4
    return Stub(proba=margin_proba(margins), embedding=embedding)


def test_cluster_margin_round_robin_over_clusters():
    picks = cluster_margin(cluster_margin_stub(), ids(8), n_instances=5, n_clusters=2,
                           random_state=0)
    # Smaller cluster first: P's best, Q's best, P's 2nd, Q's 2nd, then Q only.
    assert list(picks) == [1, 3, 0, 5, 7]


def test_cluster_margin_default_one_cluster_per_item_smallest_first():
    # Three separated groups of sizes 2, 3, 5; the default makes n_instances=3 clusters.
    embedding = np.vstack([blob((0, 0), 2, 0.5), blob((50, 0), 3, 0.5), blob((0, 50), 5, 0.5)])
    margins = np.array([0.5, 0.6, 0.3, 0.2, 0.4, 0.1, 0.9, 0.8, 0.7, 0.05])
    stub = Stub(proba=margin_proba(margins), embedding=embedding)
    assert list(cluster_margin(stub, ids(10), n_instances=3, random_state=0)) == [0, 3, 9]


def test_cluster_margin_candidates_are_the_lowest_margins():
    # margin_multiple=1, n_instances=2: only the 2 lowest margins are candidates,
    # whatever the clusters.
    picks = cluster_margin(cluster_margin_stub(), ids(8), n_instances=2, margin_multiple=1,
                           random_state=0)
    assert sorted(picks) == [1, 3]


def test_cluster_margin_distance_threshold():
    # A threshold between the in-cluster and between-cluster distances gives P and Q.
    picks = cluster_margin(cluster_margin_stub(), ids(8), n_instances=3,
                           distance_threshold=10.0, random_state=0)
    assert list(picks) == [1, 3, 0]


# --------------------------------------------------------------------------
# the contract shared by every method
# --------------------------------------------------------------------------
def full_stub(n=30, multi_label=False, seed=0):
    rng = np.random.default_rng(seed)
    n_out = 3
    proba = rng.uniform(size=(n, n_out)) if multi_label else rng.dirichlet(np.ones(n_out), n)
    mc = rng.dirichlet(np.ones(n_out), size=(4, n))
    return Stub(proba=proba, mc=mc, embedding=rng.normal(size=(n, 5)),
                loss=rng.uniform(size=n), multi_label=multi_label)


@pytest.mark.parametrize("n_instances", [1, 4, 30])
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_method_on_a_stub_is_valid_and_deterministic(name, n_instances):
    strategy = STRATEGIES[name]
    stub = full_stub()
    first = strategy(stub, ids(30), n_instances=n_instances, random_state=7)
    again = strategy(stub, ids(30), n_instances=n_instances, random_state=7)
    assert isinstance(first, np.ndarray) and first.dtype == np.int64
    assert first.shape == (n_instances,) and len(set(first)) == n_instances
    assert first.min() >= 0 and first.max() < 30
    np.testing.assert_array_equal(first, again)
    # numpy Generators and RandomStates are accepted too.
    for state in (np.random.default_rng(1), np.random.RandomState(1)):
        assert len(set(strategy(stub, ids(30), n_instances=4, random_state=state))) == 4


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_method_applies_the_pipeline_steps_before_the_network(name):
    # The pipeline's first step maps id i to 29 - i; the stub sees the mapped ids.
    stub = full_stub()
    pipe = Pipeline([("flip", FunctionTransformer(lambda X: 29 - X)), ("net", stub)])
    X_pool = ids(30)
    direct = STRATEGIES[name](stub, 29 - X_pool, n_instances=4, random_state=3)
    piped = STRATEGIES[name](pipe, X_pool, n_instances=4, random_state=3)
    np.testing.assert_array_equal(piped, direct)


def test_pipeline_transforms_the_labeled_set_too():
    stub = Stub(embedding=CORESET_POINTS[::-1].copy())  # id i holds point 5 - i
    pipe = Pipeline([("flip", FunctionTransformer(lambda X: 5 - X)), ("net", stub)])
    picks = coreset(pipe, ids(5), n_instances=5, X_labeled=ids(1, start=5))
    assert list(picks) == CORESET_ORDER


@pytest.mark.parametrize("name", ["random", "least_confidence", "margin", "entropy", "bald"])
def test_all_equal_scores_ties_broken_at_random_under_random_state(name):
    n = 40
    stub = Stub(proba=np.full((n, 3), 1 / 3), mc=np.full((3, n, 3), 1 / 3))
    picks = {seed: STRATEGIES[name](stub, ids(n), n_instances=3, random_state=seed)
             for seed in range(5)}
    assert len({tuple(p) for p in picks.values()}) > 1
    for seed, p in picks.items():
        np.testing.assert_array_equal(STRATEGIES[name](stub, ids(n), n_instances=3,
                                                       random_state=seed), p)


@pytest.mark.parametrize("name", ["coreset", "badge", "ll4al", "scal", "typiclust"])
def test_ties_at_random_for_kernel_and_cluster_methods(name):
    n = 20
    # Identical embeddings, equal losses and probabilities: every item ties. Id n
    # is a labeled item at the origin, so that core-set's first pick is by distance.
    embedding = np.vstack([np.ones((n, 3)), np.zeros((1, 3))])
    stub = Stub(proba=np.tile([0.6, 0.4], (n, 1)), embedding=embedding, loss=np.zeros(n))
    kwargs = {"X_labeled": ids(1, start=n)} if name in ("coreset", "typiclust") else {}
    firsts = {int(STRATEGIES[name](stub, ids(n), n_instances=1, random_state=seed, **kwargs)[0])
              for seed in range(6)}
    assert len(firsts) > 1


# --------------------------------------------------------------------------
# subsampling
# --------------------------------------------------------------------------
@pytest.mark.parametrize("n_pool, n_instances, subsample, expected", [
    (100_000, 2500, "paper", 20000),  # capped at 20000
    (30_000, 700, "paper", 15000),  # half the pool
    (1_000, 70, "paper", 700),  # 10 x budget
    (100, 20, "paper", 100),  # never more than the pool
    (1_000, 5, None, 1000),
    (1_000, 5, 64, 64),
    (50, 5, 64, 50),
])
def test_subsample_size(n_pool, n_instances, subsample, expected):
    assert subsample_size(n_pool, n_instances, subsample) == expected


@pytest.mark.parametrize("name", ["least_confidence", "ll4al", "coreset", "scal"])
def test_subsample_scores_only_a_random_subset(name):
    stub = full_stub(n=200)
    picks = STRATEGIES[name](stub, ids(200), n_instances=2, subsample="paper", random_state=0)
    scored = stub.calls[0][1]
    assert len(scored) == 100  # max(200 // 2, 10 * 2)
    assert set(picks) <= set(scored)
    again = STRATEGIES[name](stub, ids(200), n_instances=2, subsample="paper", random_state=0)
    np.testing.assert_array_equal(picks, again)
    stub.calls.clear()
    other = STRATEGIES[name](stub, ids(200), n_instances=2, subsample=50, random_state=1)
    assert len(stub.calls[0][1]) == 50 and set(other) <= set(stub.calls[0][1])


def test_scal_scores_the_whole_pool_by_default():
    stub = full_stub(n=200)
    scal(stub, ids(200), n_instances=2, random_state=0)
    assert len(stub.calls[0][1]) == 200


# --------------------------------------------------------------------------
# registry
# --------------------------------------------------------------------------
def test_registry_names_and_exports():
    assert set(STRATEGIES) == {"random", "least_confidence", "margin", "entropy", "bald",
                               "ll4al", "coreset", "typiclust", "badge", "scal",
                               "cluster_margin"}
    for name, func in STRATEGIES.items():
        assert get_query_strategy(name) is func
        exported = "random_sampling" if name == "random" else name
        assert getattr(q, exported) is func and exported in q.__all__
    assert random_sampling is STRATEGIES["random"]


def test_get_query_strategy_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="Unknown query strategy 'coresets'.*coreset.*scal"):
        get_query_strategy("coresets")


def test_get_query_strategy_passes_callables_through():
    def custom(learner, X_pool, n_instances=1, **kwargs):
        return np.arange(n_instances)

    assert get_query_strategy(custom) is custom
    assert strategy_requirements(custom) == set()
    custom.requirements = {"embedding"}
    assert strategy_requirements(custom) == {"embedding"}


def test_strategy_requirements():
    assert strategy_requirements("random") == set()
    assert strategy_requirements("margin") == set()
    assert strategy_requirements("bald") == {"dropout"}
    assert "loss_head" in strategy_requirements("ll4al")
    assert "loss_head" in strategy_requirements("scal")
    assert "single_label" in strategy_requirements("badge")
    assert "single_label" in strategy_requirements("cluster_margin")
    assert "embedding" in strategy_requirements("coreset")
    for name in STRATEGIES:
        assert strategy_requirements(name) <= set(q.REQUIREMENTS)
    with pytest.raises(ValueError, match="valid names"):
        strategy_requirements("nope")


def test_requires_is_the_one_declaration():
    @q.requires("embedding", "single_label")
    def farthest(learner, X_pool, n_instances=1, **kwargs):
        return np.arange(n_instances)

    assert strategy_requirements(farthest) == {"embedding", "single_label"}
    # every registered strategy declares its needs (possibly none) with the decorator
    assert all(isinstance(getattr(f, "requirements", None), frozenset) for f in STRATEGIES.values())
    with pytest.raises(ValueError, match="Unknown requirement.*'embeddings'.*embedding"):
        q.requires("embeddings")


@pytest.mark.parametrize("name, estimator, message", [
    ("scal", "plain", "scal needs a loss-prediction head (predict_loss), which ImageClassifier "
                      "lacks; use skal.estimator.LossPredictionClassifier."),
    ("bald", "plain", "bald needs MC-dropout probabilities (predict_proba_mc with dropout > 0), "
                      "which ImageClassifier with dropout=0.0 lacks; build the estimator with "
                      "dropout > 0 (e.g. 0.3)."),
    ("badge", "multi", "badge needs single-label output (one class per item), which "
                       "ImageClassifier (multi_label=True) lacks; use an uncertainty method "
                       "(least_confidence, margin, entropy, bald) or a diversity method."),
])
def test_check_requirements_has_one_wording(name, estimator, message):
    from skal.estimator import ImageClassifier

    nets = {"plain": ImageClassifier("small_cnn", n_classes=3),
            "multi": ImageClassifier("small_cnn", n_classes=3, multi_label=True)}
    with pytest.raises(ValueError) as info:
        q.check_requirements(name, nets[estimator])
    assert str(info.value) == message
    q.check_requirements("margin", nets[estimator])  # needs nothing


def test_check_requirements_refuses_multi_label_targets():
    from skal.estimator import ImageClassifier

    net = ImageClassifier("small_cnn", n_classes=3)
    with pytest.raises(ValueError, match=r"badge needs single-label output .*which y "
                                         r"\(multi-label, 3 labels\) lacks"):
        q.check_requirements("badge", net, y=np.zeros((5, 3)))
    q.check_requirements("badge", net, y=np.zeros(5))


def test_missing_requirements_on_unfitted_estimators():
    from skal.estimator import ImageClassifier, LossPredictionClassifier

    plain = ImageClassifier("small_cnn", n_classes=3)
    assert set(missing_requirements("bald", plain)) == {"dropout"}
    assert missing_requirements("bald", ImageClassifier("small_cnn", n_classes=3,
                                                        dropout=0.3)) == {}
    assert set(missing_requirements("scal", plain)) == {"loss_head"}
    assert missing_requirements("scal", LossPredictionClassifier("small_cnn", n_classes=3)) == {}
    multi = Pipeline([("id", FunctionTransformer()),
                      ("net", ImageClassifier("small_cnn", n_classes=3, multi_label=True))])
    assert set(missing_requirements("badge", multi)) == {"single_label"}
    assert missing_requirements("margin", multi) == {}


# --------------------------------------------------------------------------
# errors
# --------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(STRATEGIES))
@pytest.mark.parametrize("n_instances", [0, -1, 2.5, True])
def test_n_instances_must_be_a_positive_integer(name, n_instances):
    with pytest.raises(ValueError, match="n_instances must be a positive integer"):
        STRATEGIES[name](full_stub(), ids(30), n_instances=n_instances)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_n_instances_larger_than_the_pool(name):
    with pytest.raises(ValueError, match=r"n_instances=31 is larger than the pool \(30 items\)"):
        STRATEGIES[name](full_stub(), ids(30), n_instances=31)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_n_instances_larger_than_the_subsample(name):
    with pytest.raises(ValueError, match=r"larger than the subsample \(10 of 30"):
        STRATEGIES[name](full_stub(), ids(30), n_instances=12, subsample=10)


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_empty_pool(name):
    with pytest.raises(ValueError, match="X_pool is empty"):
        STRATEGIES[name](full_stub(), np.empty((0, 1)), n_instances=1)


@pytest.mark.parametrize("subsample", ["half", 0, -3, 1.5])
def test_bad_subsample(subsample):
    with pytest.raises(ValueError, match="subsample must be"):
        least_confidence(full_stub(), ids(30), subsample=subsample)


@pytest.mark.parametrize("name", ["ll4al", "scal"])
def test_loss_methods_need_a_loss_prediction_classifier(name):
    stub = Stub(proba=PROBA, embedding=np.eye(6))
    with pytest.raises(ValueError, match=f"{name} needs a loss-prediction head.*"
                                         "LossPredictionClassifier"):
        STRATEGIES[name](stub, ids(6), n_instances=1)


@pytest.mark.parametrize("name", ["badge", "cluster_margin"])
def test_single_label_methods_refuse_multi_label_output(name):
    with pytest.raises(ValueError, match=f"{name} needs single-label output.*multi_label=True"):
        STRATEGIES[name](full_stub(multi_label=True), ids(30), n_instances=2)


@pytest.mark.parametrize("name", ["coreset", "typiclust", "badge", "scal", "cluster_margin"])
def test_embedding_methods_need_embed(name):
    stub = Stub(proba=PROBA, loss=np.arange(6.0))
    with pytest.raises(ValueError, match=f"{name} needs penultimate-layer embeddings \\(embed\\)"):
        STRATEGIES[name](stub, ids(6), n_instances=1)


def test_bald_needs_mc_dropout():
    with pytest.raises(ValueError, match=r"bald needs MC-dropout probabilities.*dropout > 0"):
        bald(Stub(proba=PROBA), ids(6))


def test_uncertainty_needs_predict_proba():
    with pytest.raises(ValueError, match=r"margin needs predicted probabilities"):
        margin(Stub(loss=np.arange(6.0)), ids(6))


def test_cluster_margin_n_clusters_and_threshold_exclusive():
    with pytest.raises(ValueError, match="not both"):
        cluster_margin(cluster_margin_stub(), ids(8), n_instances=2, n_clusters=2,
                       distance_threshold=1.0)


def test_bad_random_state():
    with pytest.raises(ValueError, match="random_state must be"):
        random_sampling(None, ids(5), random_state="seed")


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_a_subsample_drawn_first_gives_the_strategys_own_indices(name):
    # ActiveLearningClassifier draws the subsample itself (copying only those rows)
    # and hands the strategy the generator it drew from: the same indices as when
    # the strategy subsamples the whole pool, for every registered strategy.
    stub, X_pool = full_stub(n=30), ids(30)
    own = STRATEGIES[name](stub, X_pool, n_instances=3, random_state=11, subsample=12)
    rng = np.random.default_rng(11)
    positions = q.draw_subsample(30, 3, 12, rng)
    assert len(positions) == 12 and np.all(np.diff(positions) > 0)
    given = STRATEGIES[name](stub, X_pool[positions], n_instances=3, random_state=rng)
    np.testing.assert_array_equal(positions[given], own)
    assert q.draw_subsample(30, 3, None, rng) is None and q.draw_subsample(30, 3, 40, rng) is None
