"""The random baseline."""

from __future__ import annotations

import numpy as np

from skal.query._base import QueryPool, ranks_by, requires

__all__ = ["random_sampling"]


@requires()
@ranks_by("chance of being drawn", "each remaining image's chance of being drawn at this step "
          "(all equal: a uniform draw)", rule="drawn", plain="picked at random, as a baseline")
def random_sampling(learner, X_pool, n_instances=1, *, random_state=None, subsample=None,
                    return_utilities=False):
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
    return_utilities : bool, default=False
        Also return the utilities: at step ``j`` each of the ``M - j``
        remaining scored items had chance ``1 / (M - j)`` of being drawn.

    Returns
    -------
    indices : ndarray of shape (n_instances,), int64
        Distinct indices into ``X_pool``.
    utilities : ndarray of shape (n_instances, len(X_pool)), float64
        Only with ``return_utilities=True``; see :meth:`QueryPool.result`.
    """
    pool = QueryPool(learner, X_pool, n_instances, random_state, subsample, "random",
                     return_utilities)
    picks = pool.rng.choice(len(pool), pool.n_instances, replace=False)
    remaining = len(pool) - np.arange(pool.n_instances)
    return pool.result(picks, lambda: np.repeat(1.0 / remaining[:, None], len(pool), axis=1))
