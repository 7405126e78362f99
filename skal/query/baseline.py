"""The random baseline."""

from __future__ import annotations

from skal.query._base import QueryPool, requires

__all__ = ["random_sampling"]


@requires()
def random_sampling(learner, X_pool, n_instances=1, *, random_state=None, subsample=None):
    """Select items uniformly at random (registry name ``'random'``).

    Parameters
    ----------
    learner : modAL learner or estimator
        Not asked anything; accepted for modAL's query-strategy signature.
    X_pool : array-like of shape (N, ...)
    n_instances : int, default=1
    random_state : None, int, RandomState or Generator
    subsample : None, int or 'paper'
        Draw from a random subset first (same distribution; kept for a
        uniform signature).

    Returns
    -------
    ndarray of shape (n_instances,), int64
        Distinct indices into ``X_pool``.
    """
    pool = QueryPool(learner, X_pool, n_instances, random_state, subsample, "random")
    return pool.to_pool(pool.rng.choice(len(pool), pool.n_instances, replace=False))
