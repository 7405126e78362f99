"""Hybrid queries: uncertainty and diversity together.

* :func:`badge` -- k-means++ seeding on gradient embeddings (Ash et al. 2020).
* :func:`scal` -- the study's selective clustering on predicted loss (Hwang et al. 2022).
* :func:`cluster_margin` -- Cluster-Margin (Citovsky et al. 2021).
"""

from __future__ import annotations

import numpy as np
from sklearn.cluster import AgglomerativeClustering

from skal.kernels import badge_kmeanspp
from skal.query._base import QueryPool, ranks_by, requires
from skal.query.scores import margin_scores
from skal.query.selection import first_per_cluster, round_robin, top_k, within_clusters
from skal.query.uncertainty import _TORN  # the one wording of "the model is torn"

__all__ = ["badge", "scal", "cluster_margin"]

@requires("embedding", "single_label")
@ranks_by("squared gradient distance", "squared distance of its last-layer gradient to that of "
          "the nearest earlier pick (to zero before the first pick, which takes the largest); "
          "BADGE draws each next pick in proportion to it", rule="drawn",
          plain="learning its answer would change the model a lot, and it is unlike the other "
                "images in this batch")
def badge(learner, X_pool, n_instances=1, *, random_state=None, subsample=None,
          return_utilities=False):
    """BADGE (Ash et al. 2020): k-means++ seeding on gradient embeddings.

    The gradient embedding of an item is ``(p - onehot(argmax p)) (x) h``,
    the last layer's loss gradient at the predicted label, with ``p`` from
    ``predict_proba`` and ``h`` from ``embed``. The first pick is the item
    with the largest gradient norm, each next one is drawn with probability
    proportional to its squared distance to the nearest pick
    (:func:`skal.kernels.badge_kmeanspp`, which never forms the
    C x D embeddings, run on the network's device).

    Parameters
    ----------
    learner : modAL learner or fitted estimator
        A modAL ``ActiveLearner`` or the estimator itself; a ``Pipeline``
        ending in the network is applied step by step. The network needs
        ``predict_proba`` and ``embed`` and single-label output.
    X_pool : array-like of shape (N, ...)
    n_instances : int, default=1
    random_state : None, int, RandomState or Generator
        Draws the subsample, the D^2 samples, and breaks ties.
    subsample : None, int or 'paper', default=None
        See :func:`skal.query.subsample_size`.
    return_utilities : bool, default=False
        Also return the utilities: the squared gradient norm before the
        first pick, then the D^2 weights each next pick was drawn from, as
        the kernel drew (its ``on_step``).

    Returns
    -------
    indices : ndarray of shape (n_instances,), int64
        Distinct indices into ``X_pool``, in pick order.
    utilities : ndarray of shape (n_instances, len(X_pool)), float64
        Only with ``return_utilities=True``; see :meth:`skal.query.QueryPool.result`.

    Raises
    ------
    ValueError
        Also for a multi-label estimator: there is no single predicted label
        whose gradient to take.
    """
    pool = QueryPool(learner, X_pool, n_instances, random_state, subsample, "badge",
                     return_utilities)
    pool.require_single_label()
    predict_proba = pool.require("predict_proba", "probabilities")
    embed = pool.require("embed", "embedding")
    both = getattr(pool.network, "predict_proba_and_embed", None)
    if callable(both):  # a skal network: one forward pass over the pool, not two
        proba, emb = both(pool.X)
    else:
        proba, emb = predict_proba(pool.X), embed(pool.X)
    proba = np.asarray(proba, dtype=np.float32)
    emb = np.asarray(emb, dtype=np.float32)
    # The kernel breaks ties by lowest index; a random order makes them random.
    order = pool.rng.permutation(len(proba))
    drawn_from = []  # the kernel's weights before each pick, in `order`
    record = None
    if pool.return_utilities:
        def record(weights):
            drawn_from.append(weights.double().cpu().numpy().copy())
    picks = badge_kmeanspp(proba[order], emb[order], pool.n_instances,
                           random_state=pool.rng, device=pool.device, on_step=record)

    def rows():
        out = np.empty((pool.n_instances, len(pool)))
        out[:, order] = np.stack(drawn_from)
        return out

    return pool.result(order[picks], rows)


def _agglomerative(features, n_clusters=None, linkage="complete", distance_threshold=None):
    """Cluster labels (M,) int64; a single point is its own cluster."""
    if len(features) == 1:
        return np.zeros(1, dtype=np.int64)
    model = AgglomerativeClustering(n_clusters=n_clusters, linkage=linkage,
                                    distance_threshold=distance_threshold)
    return model.fit_predict(features).astype(np.int64)


@requires("loss_head", "embedding")
@ranks_by("predicted loss", "the loss head's prediction of the model's error, among the "
          "high-loss candidates of one cluster; SCAL takes each cluster's highest", rule="greedy",
          plain="the model expects to get it wrong, and it is unlike the other images in this "
                "batch")
def scal(learner, X_pool, n_instances=1, *, random_state=None, subsample=None,
         candidate_multiple=10, return_utilities=False):
    """SCAL (Hwang et al. 2022), the study's query: cluster the highest predicted losses.

    Predicts the loss of every scored item (the whole pool by default, as
    the study does), keeps the ``candidate_multiple * n_instances`` highest,
    clusters their raw embeddings (Euclidean) with complete-linkage
    ``AgglomerativeClustering`` into ``n_instances`` clusters, and selects
    the highest-predicted-loss member of each cluster: exactly one item per
    cluster.

    Parameters
    ----------
    learner : modAL learner or fitted estimator
        A modAL ``ActiveLearner`` or the estimator itself; a ``Pipeline``
        ending in the network is applied step by step. The network needs
        ``predict_loss`` (a ``LossPredictionClassifier``) and ``embed``.
    X_pool : array-like of shape (N, ...)
    n_instances : int, default=1
    random_state : None, int, RandomState or Generator
        Draws the subsample and breaks predicted-loss ties.
    subsample : None, int or 'paper', default=None
        None (the study's SCAL) scores the whole pool.
    candidate_multiple : int, default=10
        Candidates per selected item (at most the scored items).
    return_utilities : bool, default=False
        Also return the utilities: at each step, the predicted loss of the
        candidates in the cluster the pick came from (NaN elsewhere); every
        scored item's predicted loss when there is one candidate per pick.

    Returns
    -------
    indices : ndarray of shape (n_instances,), int64
        Distinct indices into ``X_pool``, highest predicted loss first.
    utilities : ndarray of shape (n_instances, len(X_pool)), float64
        Only with ``return_utilities=True``; see :meth:`skal.query.QueryPool.result`.

    Notes
    -----
    Complete linkage holds the condensed distance matrix of the candidates,
    ``8 * m * (m - 1) / 2`` bytes for ``m`` candidates (2.5 GB for
    pathmnist's budget 2500, as in the study).
    """
    pool = QueryPool(learner, X_pool, n_instances, random_state, subsample, "scal",
                     return_utilities)
    predict_loss = pool.require("predict_loss", "loss_head")
    embed = pool.require("embed", "embedding")
    loss = np.asarray(predict_loss(pool.X)).reshape(-1)
    n_candidates = min(int(candidate_multiple) * pool.n_instances, len(pool))
    candidates = top_k(loss, n_candidates, pool.rng)  # highest loss first
    if n_candidates == pool.n_instances:
        return pool.result(candidates, loss)
    # Only the candidates are embedded: the pool's features are never needed.
    features = np.asarray(embed(pool.rows(candidates)), dtype=np.float32)
    labels = _agglomerative(features, n_clusters=pool.n_instances, linkage="complete")
    firsts = first_per_cluster(labels)
    return pool.result(candidates[firsts], lambda: within_clusters(
        loss[candidates], labels, labels[firsts], at=candidates, size=len(pool)))


@requires("embedding", "single_label")
@ranks_by("negative margin", "minus the gap between the two most probable classes, among the "
          "uncertain candidates of one cluster; Cluster-Margin takes each cluster's closest to 0 "
          "in turn", rule="greedy",
          plain=_TORN + "; picked from one group of similar uncertain images")
def cluster_margin(learner, X_pool, n_instances=1, *, random_state=None, subsample=None,
                   margin_multiple=10, n_clusters=None, distance_threshold=None,
                   return_utilities=False):
    """Cluster-Margin (Citovsky et al. 2021): round-robin over clusters of low-margin items.

    Takes the ``margin_multiple * n_instances`` scored items of smallest
    margin ``p_(1) - p_(2)``, clusters their embeddings with average-linkage
    ``AgglomerativeClustering`` (Euclidean), then visits the clusters in
    ascending order of size, round after round, taking the lowest-margin
    remaining member of each, until ``n_instances`` are taken.

    The paper clusters a large pool once with a distance threshold and
    reuses the clusters. Here the candidates are clustered at every query,
    by default into ``n_instances`` clusters, which needs no scale-dependent
    threshold: then every cluster gives its lowest-margin member, smallest
    cluster first. Pass ``n_clusters`` (fewer clusters, several rounds) or
    ``distance_threshold`` (the paper's rule) to change that.

    Parameters
    ----------
    learner : modAL learner or fitted estimator
        A modAL ``ActiveLearner`` or the estimator itself; a ``Pipeline``
        ending in the network is applied step by step. The network needs
        ``predict_proba`` and ``embed`` and single-label output.
    X_pool : array-like of shape (N, ...)
    n_instances : int, default=1
    random_state : None, int, RandomState or Generator
        Draws the subsample and breaks ties (equal margins, equal cluster sizes).
    subsample : None, int or 'paper', default=None
    margin_multiple : int, default=10
        Candidates per selected item (at most the scored items).
    n_clusters : int or None, default=None
        Number of clusters; None means ``n_instances`` unless
        ``distance_threshold`` is given. At most the number of candidates.
    distance_threshold : float or None, default=None
        Average-linkage distance above which clusters are not merged; used
        instead of ``n_clusters``.
    return_utilities : bool, default=False
        Also return the utilities: at each step, minus the margin of the
        candidates left in the cluster visited (NaN elsewhere).

    Returns
    -------
    indices : ndarray of shape (n_instances,), int64
        Distinct indices into ``X_pool``, in the order taken.
    utilities : ndarray of shape (n_instances, len(X_pool)), float64
        Only with ``return_utilities=True``; see :meth:`skal.query.QueryPool.result`.

    Raises
    ------
    ValueError
        Also for a multi-label estimator (no single margin per item), and
        when both ``n_clusters`` and ``distance_threshold`` are given.
    """
    pool = QueryPool(learner, X_pool, n_instances, random_state, subsample, "cluster_margin",
                     return_utilities)
    pool.require_single_label()
    if n_clusters is not None and distance_threshold is not None:
        raise ValueError("cluster_margin: give n_clusters or distance_threshold, not both.")
    predict_proba = pool.require("predict_proba", "probabilities")
    embed = pool.require("embed", "embedding")
    margins = margin_scores(predict_proba(pool.X))
    n_candidates = min(int(margin_multiple) * pool.n_instances, len(pool))
    candidates = top_k(-margins, n_candidates, pool.rng)  # smallest margin first
    features = np.asarray(embed(pool.rows(candidates)), dtype=np.float32)
    if distance_threshold is None:
        n_clusters = min(pool.n_instances if n_clusters is None else int(n_clusters),
                         n_candidates)
    labels = _agglomerative(features, n_clusters=n_clusters, linkage="average",
                            distance_threshold=distance_threshold)
    taken = round_robin(labels, pool.n_instances, pool.rng)
    return pool.result(candidates[taken], lambda: within_clusters(
        -margins[candidates], labels, labels[taken], at=candidates, size=len(pool)))
