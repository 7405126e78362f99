"""Selection rules: which items to take, given scores or clusters.

Every rule breaks ties at random with the generator it is given, so that a
query is reproducible under its ``random_state`` and unbiased among equals.
"""

from __future__ import annotations

import numpy as np

__all__ = ["top_k", "first_per_cluster", "round_robin"]


def top_k(scores, k, rng):
    """Positions of the ``k`` highest scores, highest first, ties at random.

    Parameters
    ----------
    scores : array-like of shape (N,)
        No NaN; +-inf rank as expected.
    k : int
        ``0 <= k <= N``.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (k,), int64
    """
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    if np.isnan(scores).any():
        raise ValueError("Query scores contain NaN.")
    # A stable sort of a random permutation: equal scores keep the random order.
    order = rng.permutation(len(scores))
    return order[np.argsort(-scores[order], kind="stable")[:k]].astype(np.int64)


def first_per_cluster(labels):
    """Positions of the first member of each cluster, in order of appearance.

    With items listed best first, this is the best member of every cluster.

    Parameters
    ----------
    labels : array-like of shape (N,), int
        Cluster of each item.

    Returns
    -------
    ndarray of shape (n_clusters,), int64
    """
    _, first = np.unique(np.asarray(labels), return_index=True)
    return np.sort(first).astype(np.int64)


def round_robin(labels, k, rng):
    """Take ``k`` items one cluster at a time, smallest cluster first.

    Items are listed best first. Clusters are visited in ascending order of
    size (equal sizes in random order); each visit takes the cluster's best
    remaining item; a cluster with no items left is skipped.

    Parameters
    ----------
    labels : array-like of shape (N,), int
        Cluster of each item, items in priority order.
    k : int
        ``0 <= k <= N``.
    rng : numpy.random.Generator

    Returns
    -------
    ndarray of shape (k,), int64
        Positions into ``labels``, in the order taken.
    """
    labels = np.asarray(labels)
    clusters, sizes = np.unique(labels, return_counts=True)
    order = np.lexsort((rng.random(len(clusters)), sizes))
    members = [np.flatnonzero(labels == clusters[c]) for c in order]
    picks = []
    for depth in range(int(sizes.max()) if len(sizes) else 0):
        for m in members:
            if depth < len(m):
                picks.append(m[depth])
                if len(picks) == k:
                    return np.asarray(picks, dtype=np.int64)
    return np.asarray(picks, dtype=np.int64)
