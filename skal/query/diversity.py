"""Diversity queries on the network's embeddings: core-set and TypiClust.

Both read ``embed(X) -> (N, D)`` (the penultimate features, network in eval
mode) of the scored pool items and of the labeled set. The labeled set is
the learner's ``X_training``; an ``X_labeled=`` argument replaces it (in the
pool's raw space, before any Pipeline step). A fitted estimator given
directly, with no ``X_labeled``, has no labeled set: the query then starts
without labeled centers / covered clusters.
"""

from __future__ import annotations

import numpy as np
import torch
from sklearn.cluster import KMeans, MiniBatchKMeans
from sklearn.neighbors import NearestNeighbors

from skal.kernels import k_center_greedy, pairwise_sqdist_min
from skal.query._base import QueryPool, ranks_by, requires
from skal.query.selection import top_k

__all__ = ["coreset", "typiclust", "typicality"]

def _embeddings(pool, X_labeled):
    """(pool embeddings (M, D), labeled embeddings (L, D) or None), float32."""
    embed = pool.require("embed", "embedding")
    emb = np.asarray(embed(pool.X), dtype=np.float32)
    labeled = pool.labeled(X_labeled)
    lab = None if labeled is None else np.asarray(embed(labeled), dtype=np.float32)
    return emb, lab


def _k_center_rows(emb, lab, picks):
    """Each scored item's distance to its nearest center before each pick, (n, M) float64.

    The lazy k-center kernel never holds this whole vector (that is its
    speed), so when utilities are asked for they are computed here, once,
    for the picks it made: the labeled set, then one distance row per pick.
    With no labeled set there is no center before the first pick: +inf.
    """
    emb = torch.from_numpy(np.asarray(emb, dtype=np.float64))
    if lab is None or len(lab) == 0:
        nearest = torch.full((len(emb),), np.inf, dtype=torch.float64)
    else:
        nearest = pairwise_sqdist_min(emb, torch.from_numpy(np.asarray(lab, dtype=np.float64)))
    rows = np.empty((len(picks), len(emb)))
    for j, p in enumerate(picks):
        rows[j] = nearest.numpy()
        nearest = torch.minimum(nearest, (emb - emb[p]).square().sum(dim=1))
    return np.sqrt(rows)


@requires("embedding")
@ranks_by("distance to labeled", "distance, in the model's features, to the nearest image "
          "labeled or picked before it; core-set takes the farthest each time", rule="greedy",
          plain="unlike anything labeled so far")
def coreset(learner, X_pool, n_instances=1, *, random_state=None, subsample=None,
            X_labeled=None, return_utilities=False):
    """Core-set (Sener & Savarese 2018): greedy k-center selection on embeddings.

    Repeatedly takes the scored item farthest (Euclidean) from its nearest
    center; the centers are every labeled item plus the items taken so far
    (:func:`skal.kernels.k_center_greedy`, run on the network's device).
    Without a labeled set the first center is drawn at random. The study
    runs it on a random subset (``subsample='paper'``) of 512-d ResNet-18
    features.

    Parameters
    ----------
    learner : modAL learner or fitted estimator
        A modAL ``ActiveLearner`` (its ``X_training`` is the labeled set) or
        the estimator itself; a ``Pipeline`` ending in the network is applied
        step by step. The network needs ``embed(X) -> (N, D)``.
    X_pool : array-like of shape (N, ...)
    n_instances : int, default=1
    random_state : None, int, RandomState or Generator
        Draws the subsample, breaks distance ties, and draws the first
        center when there is no labeled set.
    subsample : None, int or 'paper', default=None
        See :func:`skal.query.subsample_size`.
    X_labeled : array-like of shape (L, ...), optional
        The labeled set, replacing the learner's ``X_training``.
    return_utilities : bool, default=False
        Also return the utilities: at each step, every candidate's Euclidean
        distance to its nearest center (+inf before the first center).

    Returns
    -------
    indices : ndarray of shape (n_instances,), int64
        Distinct indices into ``X_pool``, in pick order.
    utilities : ndarray of shape (n_instances, len(X_pool)), float64
        Only with ``return_utilities=True``; see :meth:`skal.query.QueryPool.result`.
    """
    pool = QueryPool(learner, X_pool, n_instances, random_state, subsample, "coreset",
                     return_utilities)
    emb, lab = _embeddings(pool, X_labeled)
    # The kernel breaks ties by lowest index; a random order makes them random.
    order = pool.rng.permutation(len(emb))
    picks = order[k_center_greedy(emb[order], lab, pool.n_instances,
                                  random_state=pool.rng, device=pool.device)]
    return pool.result(picks, lambda: _k_center_rows(emb, lab, picks))


def typicality(features, n_neighbors=20):
    """TypiClust's typicality: inverse mean distance to the nearest neighbours.

    Parameters
    ----------
    features : array-like of shape (M, D)
        Members of one cluster.
    n_neighbors : int, default=20
        At most this many neighbours (itself excluded); fewer, ``M - 1``,
        in a small cluster.

    Returns
    -------
    ndarray of shape (M,), float64
        ``1 / mean distance``; all ones for a single-member cluster, +inf
        for a point with that many exact duplicates.
    """
    features = np.asarray(features)
    k = min(int(n_neighbors), len(features) - 1)
    if k < 1:
        return np.ones(len(features))
    distances, _ = NearestNeighbors(n_neighbors=k + 1).fit(features).kneighbors(features)
    # Column 0 is the point itself (distance 0).
    with np.errstate(divide="ignore"):
        return 1.0 / distances[:, 1:].mean(axis=1)


def _cluster(features, n_clusters, seed, kmeans_max):
    if n_clusters == 1:
        return np.zeros(len(features), dtype=np.int64)
    if n_clusters <= kmeans_max:
        model = KMeans(n_clusters=n_clusters, n_init="auto", random_state=seed)
    else:
        # Many clusters: full k-means gets slow; mini-batches as in TypiClust's code base.
        model = MiniBatchKMeans(n_clusters=n_clusters, n_init="auto", random_state=seed)
    return model.fit_predict(features).astype(np.int64)


@requires("embedding")
@ranks_by("typicality", "1 / mean distance to the nearest images of its cluster; TypiClust "
          "takes the most typical unlabeled image of the least covered cluster", rule="greedy",
          plain="typical of a group of similar images not yet labeled")
def typiclust(learner, X_pool, n_instances=1, *, random_state=None, subsample=None,
              X_labeled=None, max_clusters=500, n_neighbors=20, kmeans_max=50,
              return_utilities=False):
    """TypiClust (Hacohen et al. 2022): the most typical item of the largest uncovered clusters.

    The labeled and scored pool embeddings are clustered together by
    k-means into ``min(L + n_instances, max_clusters)`` clusters (at least
    ``n_instances``, at most the number of points; ``KMeans`` up to
    ``kmeans_max`` clusters, ``MiniBatchKMeans`` above). Then, one item at a
    time: among the clusters that still have an unselected pool item, take
    the one with the fewest labeled-or-selected members (an uncovered one
    while any is left), the largest on ties, and select its pool item of
    highest :func:`typicality` (computed over all the cluster's members,
    labeled included, with ``min(n_neighbors, size - 1)`` neighbours).

    The paper clusters self-supervised features; here they are the
    network's own embeddings.

    Parameters
    ----------
    learner : modAL learner or fitted estimator
        As for :func:`coreset`; the network needs ``embed``.
    X_pool : array-like of shape (N, ...)
    n_instances : int, default=1
    random_state : None, int, RandomState or Generator
        Draws the subsample, seeds k-means and breaks ties (equal cluster
        sizes, equal typicality).
    subsample : None, int or 'paper', default=None
    X_labeled : array-like of shape (L, ...), optional
        The labeled set, replacing the learner's ``X_training``.
    max_clusters : int, default=500
        Cap on the number of clusters (the TypiClust authors' cap).
    n_neighbors : int, default=20
        Neighbours of the typicality estimate.
    kmeans_max : int, default=50
        Largest number of clusters run with full ``KMeans``.
    return_utilities : bool, default=False
        Also return the utilities: at each step, the typicality of the
        chosen cluster's unselected pool items (NaN outside that cluster).

    Returns
    -------
    indices : ndarray of shape (n_instances,), int64
        Distinct indices into ``X_pool``, in pick order.
    utilities : ndarray of shape (n_instances, len(X_pool)), float64
        Only with ``return_utilities=True``; see :meth:`skal.query.QueryPool.result`.
    """
    pool = QueryPool(learner, X_pool, n_instances, random_state, subsample, "typiclust",
                     return_utilities)
    emb, lab = _embeddings(pool, X_labeled)
    n_lab = 0 if lab is None else len(lab)
    features = emb if lab is None else np.concatenate([lab, emb])
    n_clusters = min(len(features),
                     max(pool.n_instances, min(n_lab + pool.n_instances, int(max_clusters))))
    labels = _cluster(features, n_clusters, pool.seed(), kmeans_max)

    sizes = np.bincount(labels, minlength=n_clusters)
    covered = np.bincount(labels[:n_lab], minlength=n_clusters)
    free = np.bincount(labels[n_lab:], minlength=n_clusters)  # unselected pool members
    tiebreak = pool.rng.random(n_clusters)
    taken = np.zeros(len(features), dtype=bool)
    taken[:n_lab] = True
    cache = {}
    picks = []
    steps = []  # (candidate positions, their typicality) of each step
    for _ in range(pool.n_instances):
        # Fewest covered first, then largest, then at random.
        order = np.lexsort((tiebreak, -sizes, covered))
        c = order[free[order] > 0][0]
        members = np.flatnonzero(labels == c)
        if c not in cache:
            cache[c] = typicality(features[members], n_neighbors)
        candidates = np.flatnonzero(~taken[members])
        best = members[candidates[top_k(cache[c][candidates], 1, pool.rng)[0]]]
        steps.append((members[candidates] - n_lab, cache[c][candidates]))
        picks.append(best - n_lab)
        taken[best] = True
        covered[c] += 1
        free[c] -= 1

    def rows():
        out = np.full((pool.n_instances, len(pool)), np.nan)
        for j, (at, values) in enumerate(steps):
            out[j, at] = values
        return out

    return pool.result(picks, rows)
