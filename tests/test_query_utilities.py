"""``return_utilities``: one contract for every strategy, then known answers per rule."""

from __future__ import annotations

import numpy as np
import pytest
from modAL.models import ActiveLearner
from scipy.stats import rankdata

from skal.kernels import gradient_embedding_factors, gradient_embedding_sqdist
from skal.query import (RULES, STRATEGIES, badge, bald, check_generator, cluster_margin, coreset,
                        draw_subsample, random_sampling, scal, strategy_utility, typiclust)
from skal.query.diversity import typicality
from skal.query.scores import mutual_information
from test_query import CORESET_ORDER, CORESET_POINTS, Stub, full_stub, ids

N_POOL, N_LABELED = 30, 3


def _rank(row, j):
    """Rank of item ``j`` in a utility row: 1 + candidates strictly preferred."""
    return 1 + int(np.sum(row[~np.isnan(row)] > row[j]))


def _call(name, n_instances, subsample, labeled, seed, **kwargs):
    """The strategy on a 30-item stub pool (a learner with 3 labeled items, or the bare stub)."""
    stub = full_stub(n=N_POOL + N_LABELED, seed=seed)
    learner = (ActiveLearner(stub, query_strategy=STRATEGIES[name],
                             X_training=ids(N_LABELED, start=N_POOL), y_training=[0, 1, 2])
               if labeled else stub)
    return STRATEGIES[name](learner, ids(N_POOL), n_instances=n_instances,
                            random_state=seed, subsample=subsample, **kwargs)


CASES = [(n, subsample, labeled) for n in (1, 4, 10) for subsample in (None, 20)
         for labeled in (True, False)]


@pytest.mark.parametrize("n_instances, subsample, labeled", CASES)
@pytest.mark.parametrize("name", list(STRATEGIES))
def test_utilities_contract(name, n_instances, subsample, labeled):
    """The contract every strategy in STRATEGIES keeps (scikit-activeml's template)."""
    declared = strategy_utility(name)
    assert declared.rule in RULES and declared.name and declared.description and declared.plain
    seed = 11
    plain = _call(name, n_instances, subsample, labeled, seed)
    indices, utilities = _call(name, n_instances, subsample, labeled, seed,
                               return_utilities=True)
    # The same picks, bit for bit, with or without the utilities.
    assert indices.dtype == np.int64
    np.testing.assert_array_equal(indices, plain)
    assert utilities.dtype == np.float64 and utilities.shape == (n_instances, N_POOL)
    # The items the query scored: the subsample it drew first from its random_state.
    drawn = draw_subsample(N_POOL, n_instances, subsample, check_generator(seed))
    scored = np.arange(N_POOL) if drawn is None else drawn
    for j, pick in enumerate(indices):
        row = utilities[j]
        candidates = np.flatnonzero(~np.isnan(row))
        remaining = np.setdiff1d(scored, indices[:j])
        assert pick in candidates, "the pick was a candidate at its step"
        # NaN outside the subsample and at earlier picks; top-k and drawn rules
        # have every other scored item as a candidate, cluster rules fewer.
        assert set(candidates) <= set(remaining)
        if declared.rule in ("top_k", "drawn"):
            np.testing.assert_array_equal(candidates, remaining)
        if declared.rule == "drawn":
            assert row[pick] > 0 and (row[~np.isnan(row)] >= 0).all()
        else:  # top_k and greedy: the pick is the best of its step
            assert row[pick] == np.nanmax(row)
            assert _rank(row, pick) == 1
    if declared.rule == "top_k":
        # One score for every step: the rows agree wherever both are candidates.
        first = utilities[0]
        for row in utilities[1:]:
            both = ~np.isnan(row)
            np.testing.assert_array_equal(row[both], first[both])
        # and the picks are its ranks 1..n.
        assert [_rank(first, i) for i in indices] == list(range(1, n_instances + 1))


@pytest.mark.parametrize("name", sorted(set(STRATEGIES) - {"random"}))  # random asks no network
def test_utilities_are_nan_where_the_network_was_not_asked(name):
    stub = full_stub(n=200)
    indices, utilities = STRATEGIES[name](stub, ids(200), n_instances=3, subsample=50,
                                          random_state=4, return_utilities=True)
    scored = stub.calls[0][1]  # the first call of the network: the scored subset
    outside = np.setdiff1d(np.arange(200), scored)
    assert len(outside) == 150 and np.isnan(utilities[:, outside]).all()
    assert set(indices) <= set(scored)


# --------------------------------------------------------------------------
# known answers, rule by rule
# --------------------------------------------------------------------------
class SeededMC(Stub):
    """MC-dropout passes that depend on the seed they are given, as a real network's do."""

    def __init__(self, n):
        super().__init__()
        self.seeds = []

        def predict_proba_mc(X, n_samples=20, random_state=None):
            self.seeds.append(random_state)
            return self.passes(len(X), n_samples, random_state)

        self.predict_proba_mc = predict_proba_mc

    @staticmethod
    def passes(n, n_samples, seed):
        return np.random.default_rng(seed).dirichlet(np.ones(3), size=(n_samples, n))


def test_bald_utilities_are_the_mutual_information_of_the_pass_that_picked():
    stub = SeededMC(50)
    indices, utilities = bald(stub, ids(50), n_instances=5, n_samples=6, random_state=2,
                              return_utilities=True)
    (seed,) = stub.seeds  # one pass only
    expected = mutual_information(SeededMC.passes(50, 6, seed))
    np.testing.assert_array_equal(utilities[0], expected)
    np.testing.assert_array_equal(indices, np.argsort(-expected)[:5])
    # Another seed's pass (what the page used to show) ranks the picks differently.
    other = mutual_information(SeededMC.passes(50, 6, seed + 1))
    assert list(rankdata(-other, method="min")[indices]) != [1, 2, 3, 4, 5]


def test_coreset_utilities_are_distances_to_the_nearest_center():
    stub = Stub(embedding=CORESET_POINTS)
    indices, utilities = coreset(stub, ids(5), n_instances=3, X_labeled=ids(1, start=5),
                                 return_utilities=True)
    assert list(indices) == CORESET_ORDER[:3]
    points = CORESET_POINTS[:5]
    np.testing.assert_allclose(utilities[0], np.linalg.norm(points, axis=1))
    # After (10, 0): (9, 1) is sqrt 2 away from it; after (0, 5), (1, 0) stays 1 from the origin.
    np.testing.assert_allclose(utilities[1], [1, np.nan, 5, np.sqrt(2), 3])
    np.testing.assert_allclose(utilities[2], [1, np.nan, np.nan, np.sqrt(2), 3])


def test_coreset_without_labeled_set_has_no_center_before_the_first_pick():
    stub = Stub(embedding=CORESET_POINTS)
    indices, utilities = coreset(stub, ids(5), n_instances=2, random_state=0,
                                 return_utilities=True)
    assert np.isposinf(utilities[0]).all()
    expected = np.linalg.norm(CORESET_POINTS[:5] - CORESET_POINTS[indices[0]], axis=1)
    expected[indices[0]] = np.nan
    np.testing.assert_allclose(utilities[1], expected)


def test_typiclust_utilities_are_typicality_within_the_chosen_cluster():
    rng = np.random.default_rng(0)
    points = np.vstack([rng.normal(0, 1, (12, 2)), rng.normal(20, 1, (8, 2))]).astype(np.float32)
    stub = Stub(embedding=points)
    indices, utilities = typiclust(stub, ids(20), n_instances=2, random_state=0,
                                   return_utilities=True)  # 20 neighbours, as the page's old score
    # Two clusters: the larger (ids 0..11) first, then the other (12..19).
    np.testing.assert_array_equal(np.flatnonzero(~np.isnan(utilities[0])), np.arange(12))
    np.testing.assert_array_equal(np.flatnonzero(~np.isnan(utilities[1])), np.arange(12, 20))
    np.testing.assert_allclose(utilities[0, :12], typicality(points[:12]))
    np.testing.assert_allclose(utilities[1, 12:], typicality(points[12:]))
    # Within-cluster typicality, not pool-wide (what the page used to show).
    assert not np.allclose(utilities[1, 12:], typicality(points)[12:])
    assert indices[0] == np.argmax(typicality(points[:12]))


def test_badge_utilities_are_the_weights_it_drew_from():
    rng = np.random.default_rng(1)
    proba = rng.dirichlet(np.ones(3), 25)
    emb = rng.normal(size=(25, 4))
    stub = Stub(proba=proba, embedding=emb)
    indices, utilities = badge(stub, ids(25), n_instances=3, random_state=5,
                               return_utilities=True)
    a = gradient_embedding_factors(proba).numpy()
    gsq = (a ** 2).sum(1) * (emb ** 2).sum(1)
    np.testing.assert_allclose(utilities[0], gsq, rtol=1e-5)
    assert indices[0] == np.argmax(gsq)
    d2 = gradient_embedding_sqdist(a, emb, indices[:2]).numpy()
    expected = d2[:, 0].copy()
    expected[indices[0]] = np.nan
    np.testing.assert_allclose(utilities[1], expected, rtol=1e-4, atol=1e-6)
    expected = np.minimum(d2[:, 0], d2[:, 1])
    expected[indices[:2]] = np.nan
    np.testing.assert_allclose(utilities[2], expected, rtol=1e-4, atol=1e-6)


def test_random_utilities_are_the_chance_of_each_draw():
    indices, utilities = random_sampling(None, ids(10), n_instances=3, random_state=0,
                                         return_utilities=True)
    for j in range(3):
        row = utilities[j]
        assert np.isnan(row).sum() == j
        np.testing.assert_allclose(row[~np.isnan(row)], 1 / (10 - j))


def test_cluster_margin_and_scal_rows_hold_one_cluster_of_candidates():
    stub = full_stub(n=40, seed=3)
    for strategy in (cluster_margin, scal):
        indices, utilities = strategy(stub, ids(40), n_instances=3, random_state=0,
                                      return_utilities=True)
        candidates = ~np.isnan(utilities)
        # At most the 30 candidates (10 per pick), each in exactly one step's cluster.
        assert candidates.sum() <= 30 and (candidates.sum(axis=0) <= 1).all()
        for j, pick in enumerate(indices):
            assert candidates[j, pick] and utilities[j, pick] == np.nanmax(utilities[j])


def test_strategy_utility_refuses_an_undeclared_function():
    with pytest.raises(ValueError, match="declares no utility; decorate it"):
        strategy_utility(lambda learner, X_pool, n_instances=1: np.arange(n_instances))


def test_modal_learner_query_passes_the_utilities_through():
    stub = full_stub()
    learner = ActiveLearner(stub, query_strategy=STRATEGIES["margin"])
    with pytest.warns(DeprecationWarning):  # modAL hands a strategy's tuple back as it is
        indices, utilities = learner.query(ids(30), n_instances=3, random_state=0,
                                           return_utilities=True)
    plain, _ = learner.query(ids(30), n_instances=3, random_state=0)
    np.testing.assert_array_equal(indices, plain)
    assert utilities.shape == (3, 30)


def test_utilities_cost_nothing_unless_asked(monkeypatch):
    import skal.query.diversity as diversity

    def refuse(*args):
        raise AssertionError("k-center utility rows computed")

    monkeypatch.setattr(diversity, "_k_center_rows", refuse)
    coreset(Stub(embedding=CORESET_POINTS), ids(5), n_instances=3, X_labeled=ids(1, start=5))
    with pytest.raises(AssertionError, match="k-center utility rows computed"):  # only when asked
        coreset(Stub(embedding=CORESET_POINTS), ids(5), n_instances=3,
                X_labeled=ids(1, start=5), return_utilities=True)
