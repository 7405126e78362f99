"""Selection rules: which items to take, given scores or clusters.

Every rule breaks ties at random with the generator it is given, so that a
query is reproducible under its ``random_state`` and unbiased among equals.
"""

from __future__ import annotations

import numpy as np

__all__ = ["top_k", "first_per_cluster", "round_robin", "within_clusters"]


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


def within_clusters(utility, labels, visited, at=None, size=None):
    """Utility rows of a rule that takes each pick from one cluster.

    Row ``j`` holds ``utility`` for the members of the cluster step ``j``
    took its pick from, and NaN elsewhere: the other items were not
    candidates at that step.

    Parameters
    ----------
    utility : array-like of shape (m,), float
        What the rule ranks a cluster's members by (higher first).
    labels : array-like of shape (m,), int
        Cluster of each item.
    visited : array-like of shape (k,), int
        The cluster of each step, in pick order.
    at : array-like of shape (m,), int, optional
        Positions of the m items among ``size`` items (default: the m items
        themselves, in order).
    size : int, optional
        Length of a row; required with ``at``.

    Returns
    -------
    ndarray of shape (k, size), float64
    """
    utility = np.asarray(utility, dtype=np.float64)
    labels = np.asarray(labels)
    visited = np.asarray(visited)
    inside = labels[None, :] == visited[:, None]  # (k, m)
    rows = np.where(inside, utility[None, :], np.nan)
    if at is None:
        return rows
    out = np.full((len(visited), int(size)), np.nan)
    out[:, np.asarray(at, dtype=np.int64)] = rows
    return out
