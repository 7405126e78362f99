"""Cold-start strategies: a first batch chosen with no labels and no model.

Both read label-free features of the pool (:func:`skal.features.pool_features`:
self-supervised by default) and follow modAL's signature, so they are also
the experiment's ``initial_strategy`` (:data:`skal.query.INITIAL_STRATEGIES`)::

    indices = strategy(learner, X_pool, n_instances=1, *, random_state=None, **options)

``learner`` is accepted for that signature and not asked anything (no model
exists before the first labels; the experiment passes None). ``labeled``
(indices into ``X_pool``) names items already labeled, which count as
covered, as both papers define their strategies for a non-empty labeled set.

- :func:`typiclust_initial`: TypiClust (Hacohen, Dekel & Weinshall 2022,
  "Active learning on a budget"): the most typical point of each of the
  largest uncovered k-means clusters.
- :func:`probcover`: ProbCover (Yehuda, Dekel, Hacohen & Weinshall 2022,
  "Active learning through a covering lens"): greedy maximum coverage of
  δ-balls, δ chosen by the purity of k-means pseudo-labels.
- :func:`random_initial`: the seeded random first batch the experiment has
  always drawn.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.neighbors import NearestNeighbors, radius_neighbors_graph

from skal._random import check_generator
from skal.query._base import ranks_by, requires
from skal.query.diversity import kmeans_clusters, typical_picks
from skal.query.selection import top_k

__all__ = ["random_initial", "typiclust_initial", "probcover", "purity_delta", "coverage",
           "pool_embedding"]


def _n_pool(X_pool):
    return int(getattr(X_pool, "shape", [len(X_pool)])[0])


def _check(X_pool, n_instances, labeled, method):
    n_pool = _n_pool(X_pool)
    if not isinstance(n_instances, (int, np.integer)) or isinstance(n_instances, bool) \
            or not 1 <= n_instances:
        raise ValueError(f"{method}: n_instances must be a positive integer, got {n_instances!r}.")
    labeled = np.zeros(0, dtype=np.int64) if labeled is None else np.unique(
        np.asarray(labeled, dtype=np.int64))
    if len(labeled) and (labeled.min() < 0 or labeled.max() >= n_pool):
        raise ValueError(f"{method}: labeled holds indices outside the pool of {n_pool} items.")
    if n_instances > n_pool - len(labeled):
        raise ValueError(f"{method}: n_instances={n_instances} is larger than the unlabeled "
                         f"pool ({n_pool - len(labeled)} items).")
    return int(n_instances), labeled


def pool_embedding(X_pool, features="simclr", feature_params=None, cache_dir=None):
    """The features a cold-start strategy works on: (N, D) float array.

    Parameters
    ----------
    X_pool : ndarray of shape (N, H, W) or (N, H, W, C), uint8
    features : str, ndarray of shape (N, D) or callable, default='simclr'
        A method of :func:`skal.features.pool_features`; an array of features
        already computed for ``X_pool`` (row i describes item i); or a
        callable ``features(X_pool) -> (N, D)``.
    feature_params : dict, optional
        Settings of the method (e.g. ``{'epochs': 10}``).
    cache_dir : path-like, False or None
        See :func:`skal.features.pool_features`.
    """
    if isinstance(features, str):
        from skal.features import pool_features  # torch-heavy, only when needed

        emb = pool_features(X_pool, features, cache_dir=cache_dir, **(feature_params or {}))
    elif callable(features):
        emb = features(X_pool)
    else:
        emb = features
    emb = np.asarray(emb, dtype=np.float64)
    if emb.ndim != 2 or len(emb) != _n_pool(X_pool) or not np.isfinite(emb).all():
        raise ValueError(f"features must give one finite row per pool item, shape "
                         f"({_n_pool(X_pool)}, D); got shape {emb.shape}.")
    return emb


@ranks_by("chance of being drawn", "each remaining image's chance of being drawn at this step "
          "(all equal: a uniform draw)", rule="drawn",
          plain="picked at random: there is no model yet")
def random_initial(learner, X_pool, n_instances=1, *, random_state=None,
                   return_utilities=False):
    """The first ``n_instances`` of a random permutation of the pool (registry name ``'random'``).

    The experiment's initial set has always been drawn this way
    (``Generator.permutation``), so its numbers are unchanged.

    Parameters
    ----------
    learner : ignored
    X_pool : array-like of shape (N, ...)
    n_instances : int, default=1
    random_state : None, int, RandomState or Generator
    return_utilities : bool, default=False
        Also return the utilities (scikit-activeml's convention, as every
        query function of :mod:`skal.query`).

    Returns
    -------
    indices : ndarray of shape (n_instances,), int64
    utilities : ndarray of shape (n_instances, N), float64
        Only with ``return_utilities``: row ``j`` is each remaining item's
        chance ``1 / (N - j)`` of being pick ``j``, NaN at earlier picks.
    """
    n_instances, _ = _check(X_pool, n_instances, None, "random")
    n_pool = _n_pool(X_pool)
    picks = check_generator(random_state).permutation(n_pool)[:n_instances]
    picks = picks.astype(np.int64)
    if not return_utilities:
        return picks
    rows = _utility_rows(n_instances, n_pool)
    for j in range(n_instances):
        rows[j] = 1.0 / (n_pool - j)
        rows[j, picks[:j]] = np.nan
    return picks, rows


def _utility_rows(n_instances, n_pool):
    """An all-NaN (n_instances, n_pool) float64 array: no item is a candidate until set."""
    return np.full((n_instances, n_pool), np.nan)


def _kmeans(features, n_clusters, rng, kmeans_max):
    """:func:`~skal.query.diversity.kmeans_clusters` seeded by one draw of ``rng``."""
    return kmeans_clusters(features, n_clusters, int(rng.integers(np.iinfo(np.int32).max)),
                           kmeans_max)


@requires()
@ranks_by("typicality", "1 / mean distance to the nearest images of its cluster, on label-free "
          "features; TypiClust takes the most typical unlabeled image of the least covered "
          "cluster", rule="greedy",
          plain="typical of a group of similar images (chosen before any label)")
def typiclust_initial(learner, X_pool, n_instances=1, *, random_state=None, labeled=None,
                      features="simclr", feature_params=None, cache_dir=None,
                      max_clusters=500, n_neighbors=20, min_cluster_size=5, kmeans_max=50,
                      return_utilities=False):
    """TypiClust on label-free features (registry name ``'typiclust'`` of the first batch).

    As the paper defines it: k-means on the features into
    ``min(|L| + n_instances, max_clusters)`` clusters; then, one pick at a
    time, among clusters of at least ``min_cluster_size`` members take the
    one with the fewest labeled-or-picked members, the largest on ties, and
    pick its most typical unpicked member, typicality being the inverse mean
    distance to its ``min(n_neighbors, size - 1)`` nearest neighbours
    (:func:`skal.query.diversity.typicality`) within the cluster. When no
    cluster is large enough (a tiny pool), every cluster is eligible.

    Parameters
    ----------
    learner : ignored
        Accepted for modAL's signature (None at the first batch).
    X_pool : ndarray of shape (N, H, W) or (N, H, W, C), uint8
    n_instances : int, default=1
    random_state : None, int, RandomState or Generator
        Seeds k-means and breaks ties.
    labeled : array-like of int, optional
        Indices into ``X_pool`` already labeled (never picked; they cover
        their clusters).
    features, feature_params, cache_dir
        See :func:`pool_embedding`.
    max_clusters : int, default=500
        The authors' cap.
    n_neighbors : int, default=20
        The authors' typicality neighbourhood.
    min_cluster_size : int, default=5
        The authors' code skips smaller clusters (outliers).
    kmeans_max : int, default=50
        Up to this many clusters ``KMeans``, above it ``MiniBatchKMeans``.
    return_utilities : bool, default=False
        Also return the utilities the picks were made by.

    Returns
    -------
    indices : ndarray of shape (n_instances,), int64
        Distinct indices into ``X_pool``, in pick order.
    utilities : ndarray of shape (n_instances, N), float64
        Only with ``return_utilities``: row ``j`` is the typicality of the
        unpicked members of the cluster step ``j`` took from, NaN elsewhere.
    """
    n_instances, labeled = _check(X_pool, n_instances, labeled, "typiclust")
    rng = check_generator(random_state)
    emb = pool_embedding(X_pool, features, feature_params, cache_dir)
    n_clusters = min(len(emb), len(labeled) + n_instances, int(max_clusters))
    n_clusters = max(n_clusters, 1)
    # One cluster needs no k-means and draws no seed from rng (the picks' draws stay as they were).
    clusters = (_kmeans(emb, n_clusters, rng, kmeans_max) if n_clusters > 1
                else kmeans_clusters(emb, 1, None, kmeans_max))
    taken = np.zeros(len(emb), dtype=bool)
    taken[labeled] = True
    picks, steps = typical_picks(emb, clusters, n_clusters, taken, n_instances, rng,
                                 n_neighbors=n_neighbors, min_cluster_size=min_cluster_size)
    if not return_utilities:
        return picks
    utilities = _utility_rows(n_instances, len(emb))
    for j, (at, values) in enumerate(steps):
        utilities[j, at] = values
    return picks, utilities


def purity_delta(features, pseudo_labels, alpha=0.95):
    """ProbCover's δ: the largest ball radius at which a fraction ``alpha`` of balls are pure.

    A ball ``B(x, δ) = {x' : ||x - x'|| < δ}`` is pure when every point in
    it has ``x``'s pseudo-label. It is pure exactly when δ is at most
    ``d_other(x)``, the distance from ``x`` to the nearest point of another
    pseudo-label, so the purity at δ is the fraction of points with
    ``d_other >= δ``, and the largest δ with purity ``>= alpha`` is a
    quantile of ``d_other``: exact, where the paper searches a grid of δ.
    (Hand-written: no library computes it.)

    Parameters
    ----------
    features : ndarray of shape (N, D)
    pseudo_labels : ndarray of shape (N,), int
        The paper's: k-means with as many clusters as classes.
    alpha : float, default=0.95
        The paper's purity threshold.

    Returns
    -------
    float
        δ; +inf when there is one pseudo-label only.
    """
    features = np.asarray(features, dtype=np.float64)
    pseudo_labels = np.asarray(pseudo_labels)
    d_other = np.full(len(features), np.inf)
    for label in np.unique(pseudo_labels):
        inside = pseudo_labels == label
        if inside.all():
            return float("inf")
        nn = NearestNeighbors(n_neighbors=1).fit(features[~inside])
        d_other[inside] = nn.kneighbors(features[inside])[0][:, 0]
    need = int(np.ceil(float(alpha) * len(features)))  # pure balls needed
    return float(np.sort(d_other)[::-1][max(need, 1) - 1])


def coverage(features, chosen, delta):
    """The fraction of points within distance < ``delta`` of a chosen point.

    Parameters
    ----------
    features : ndarray of shape (N, D)
    chosen : array-like of int
        Indices into ``features``.
    delta : float

    Returns
    -------
    float in [0, 1]
    """
    features = np.asarray(features, dtype=np.float64)
    chosen = np.asarray(chosen, dtype=np.int64)
    if len(chosen) == 0:
        return 0.0
    distance = NearestNeighbors(n_neighbors=1).fit(features[chosen]).kneighbors(features)[0]
    return float(np.mean(distance[:, 0] < delta))


def _ball_graph(features, delta):
    """Sparse (N, N) 0/1 matrix: A[i, j] = 1 when ||x_i - x_j|| < δ (each point in its own ball)."""
    # radius_neighbors_graph takes distance <= radius; nudge it down to the open ball.
    graph = radius_neighbors_graph(features, np.nextafter(delta, 0), mode="distance",
                                   include_self=True)
    graph.data[:] = 1.0
    return sparse.csr_matrix(graph + sparse.identity(len(features), format="csr") > 0,
                             dtype=np.float64)


@requires()
@ranks_by("points newly covered", "how many not yet covered images lie within distance delta of "
          "it, on label-free features; ProbCover takes the largest each time", rule="greedy",
          plain="stands for many similar images that nothing picked so far covers "
                "(chosen before any label)")
def probcover(learner, X_pool, n_instances=1, *, random_state=None, labeled=None,
              features="simclr", feature_params=None, cache_dir=None, delta=None,
              n_classes=None, alpha=0.95, return_utilities=False):
    """ProbCover on label-free features (registry name ``'probcover'`` of the first batch).

    As the paper defines it: the graph with an edge ``x -> x'`` whenever
    ``||x - x'|| < δ``; the labeled points' balls count as covered; then, one
    pick at a time, the point whose ball holds the most uncovered points
    (ties at random), whose ball's points become covered. Once everything is
    covered, the rest are drawn at random (the paper's fallback). δ is
    :func:`purity_delta` of k-means pseudo-labels with ``n_classes``
    clusters unless given.

    Parameters
    ----------
    learner : ignored
        Accepted for modAL's signature (None at the first batch).
    X_pool : ndarray of shape (N, H, W) or (N, H, W, C), uint8
    n_instances : int, default=1
    random_state : None, int, RandomState or Generator
        Seeds the pseudo-label k-means and breaks ties.
    labeled : array-like of int, optional
        Indices into ``X_pool`` already labeled.
    features, feature_params, cache_dir
        See :func:`pool_embedding`. The paper works on unit-norm
        self-supervised features, as ``'simclr'`` gives them.
    delta : float, optional
        The ball radius; by default chosen by purity.
    n_classes : int, optional
        Clusters of the pseudo-labels that choose δ (the paper: the number
        of classes; the experiment passes it). Needed when ``delta`` is None.
    alpha : float, default=0.95
        Purity threshold of δ.
    return_utilities : bool, default=False
        Also return the utilities the picks were made by.

    Returns
    -------
    indices : ndarray of shape (n_instances,), int64
        Distinct indices into ``X_pool``, in pick order.
    utilities : ndarray of shape (n_instances, N), float64
        Only with ``return_utilities``: row ``j`` is how many uncovered
        points each selectable item's ball held at step ``j`` (NaN at
        labeled and earlier picks).

    Raises
    ------
    ValueError
        Neither ``delta`` nor ``n_classes`` (at least 2) given.
    """
    n_instances, labeled = _check(X_pool, n_instances, labeled, "probcover")
    rng = check_generator(random_state)
    emb = pool_embedding(X_pool, features, feature_params, cache_dir)
    if delta is None:
        if n_classes is None or int(n_classes) < 2:
            raise ValueError("probcover needs delta= (the ball radius) or n_classes= (at least "
                             "2, to choose delta by purity as the paper does).")
        delta = purity_delta(emb, _kmeans(emb, int(n_classes), rng, np.inf), alpha)
    elif not delta > 0:
        raise ValueError(f"probcover: delta must be positive, got {delta!r}.")
    graph = _ball_graph(emb, float(delta))
    uncovered = np.ones(len(emb))
    if len(labeled):
        uncovered[graph[labeled].indices] = 0.0
    selectable = np.ones(len(emb), dtype=bool)
    selectable[labeled] = False
    picks = []
    utilities = _utility_rows(n_instances, len(emb)) if return_utilities else None
    for j in range(n_instances):
        degree = graph @ uncovered  # uncovered points in each ball
        if return_utilities:
            utilities[j, selectable] = degree[selectable]
        degree[~selectable] = -1.0
        best = int(top_k(degree, 1, rng)[0])
        if degree[best] <= 0:  # all covered: the rest at random
            best = int(rng.choice(np.flatnonzero(selectable)))
        picks.append(best)
        selectable[best] = False
        uncovered[graph[best].indices] = 0.0
    picks = np.asarray(picks, dtype=np.int64)
    return (picks, utilities) if return_utilities else picks
