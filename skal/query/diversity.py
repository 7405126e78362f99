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

__all__ = ["coreset", "typiclust", "typicality", "typical_picks", "kmeans_clusters"]

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


def kmeans_clusters(features, n_clusters, seed, kmeans_max):
    """TypiClust's clustering: k-means labels of ``features``.

    Parameters
    ----------
    features : ndarray of shape (M, D), float
    n_clusters : int
        1 gives every row cluster 0 without fitting.
    seed : int
        k-means' ``random_state`` (unused with one cluster).
    kmeans_max : int or float
        Up to this many clusters ``KMeans``; above it ``MiniBatchKMeans``, as
        in the TypiClust authors' code (full k-means gets slow).

    Returns
    -------
    ndarray of shape (M,), int64
    """
    if n_clusters == 1:
        return np.zeros(len(features), dtype=np.int64)
    if n_clusters <= kmeans_max:
        model = KMeans(n_clusters=n_clusters, n_init="auto", random_state=seed)
    else:
        model = MiniBatchKMeans(n_clusters=n_clusters, n_init="auto", random_state=seed)
    return model.fit_predict(features).astype(np.int64)


def typical_picks(features, clusters, n_clusters, taken, n_instances, rng, *, n_neighbors=20,
                  min_cluster_size=1):
    """TypiClust's selection: one pick at a time from the least covered cluster.

    Among the clusters with an untaken member (and at least
    ``min_cluster_size`` members, while any such cluster has one), take the
    one with the fewest taken members, the largest on ties, then at random;
    pick its untaken member of highest :func:`typicality` (computed once per
    cluster, over all its members). The grid's :func:`typiclust` and the
    label-free :func:`skal.query.cold_start.typiclust_initial` both select
    with it.

    Parameters
    ----------
    features : ndarray of shape (M, D), float
    clusters : ndarray of shape (M,), int64
        Cluster of each row, in ``[0, n_clusters)``.
    n_clusters : int
    taken : ndarray of shape (M,), bool
        Rows already labeled: they cover their cluster and are never picked.
        Not modified.
    n_instances : int
        Picks; at most the number of untaken rows.
    rng : numpy.random.Generator
        Breaks ties: one draw of ``n_clusters`` numbers, then one
        :func:`~skal.query.selection.top_k` draw per pick.
    n_neighbors : int, default=20
    min_cluster_size : int, default=1
        Smaller clusters are skipped (the authors' code skips outliers).

    Returns
    -------
    picks : ndarray of shape (n_instances,), int64
        Rows of ``features``, in pick order.
    steps : list of (ndarray of int64, ndarray of float64)
        For each pick, the chosen cluster's untaken rows and their typicality.
    """
    taken = np.array(taken, dtype=bool)
    sizes = np.bincount(clusters, minlength=n_clusters)
    covered = np.bincount(clusters[taken], minlength=n_clusters)
    free = np.bincount(clusters[~taken], minlength=n_clusters)
    big = sizes >= int(min_cluster_size)
    tiebreak = rng.random(n_clusters)
    cache, picks, steps = {}, [], []
    for _ in range(n_instances):
        eligible = (free > 0) & (big if (big & (free > 0)).any() else True)
        order = np.lexsort((tiebreak, -sizes, covered))  # fewest covered, largest, random
        c = order[eligible[order]][0]
        members = np.flatnonzero(clusters == c)
        if c not in cache:
            cache[c] = typicality(features[members], n_neighbors)
        candidates = np.flatnonzero(~taken[members])
        best = members[candidates[top_k(cache[c][candidates], 1, rng)[0]]]
        steps.append((members[candidates], cache[c][candidates]))
        picks.append(best)
        taken[best] = True
        covered[c] += 1
        free[c] -= 1
    return np.asarray(picks, dtype=np.int64), steps


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
    labels = kmeans_clusters(features, n_clusters, pool.seed(), kmeans_max)
    taken = np.arange(len(features)) < n_lab
    picks, steps = typical_picks(features, labels, n_clusters, taken, pool.n_instances, pool.rng,
                                 n_neighbors=n_neighbors)

    def rows():
        out = np.full((pool.n_instances, len(pool)), np.nan)
        for j, (at, values) in enumerate(steps):
            out[j, at - n_lab] = values
        return out

    return pool.result(picks - n_lab, rows)
