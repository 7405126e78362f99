"""Uncertainty queries: score every scored pool item, take the top ``n_instances``.

``least_confidence``, ``margin`` and ``entropy`` read ``predict_proba``;
``bald`` reads MC-dropout probabilities (``predict_proba_mc``); ``ll4al``
reads the learned loss predictor (``predict_loss``). Each is a score from
:mod:`skal.query.scores` followed by :func:`skal.query.selection.top_k`, so
ties are broken at random under ``random_state``.

All take the same common parameters:

learner : modAL learner or fitted estimator
    A modAL ``ActiveLearner``, or the estimator itself; a ``Pipeline``
    ending in the network is applied step by step.
X_pool : array-like of shape (N, ...)
    The unlabeled pool, as the estimator takes it.
n_instances : int, default=1
    Items to select.
random_state : None, int, RandomState or Generator
    Draws the subsample and breaks ties; the same state gives the same indices.
subsample : None, int or 'paper', default=None
    Score the whole pool (None), a random subset of that many items, or the
    study's ``min(20000, max(N // 2, 10 * n_instances))`` (``'paper'``).
return_utilities : bool, default=False
    Also return the utilities, the score each one ranks by (the same row at
    every step; see :meth:`skal.query.QueryPool.result`).

and return an ``ndarray`` of shape (n_instances,), int64: distinct indices
into ``X_pool``, most informative first (with ``return_utilities=True``,
``(indices, utilities)``, the utilities float64 of shape
(n_instances, len(X_pool))). They raise ``ValueError`` for an
empty pool, ``n_instances`` < 1 or larger than the pool or the subsample,
and an estimator without the method they need.
"""

from __future__ import annotations

import numpy as np

from skal.query._base import QueryPool, ranks_by, requires
from skal.query.scores import (entropy_scores, least_confidence_scores, margin_scores,
                               mutual_information)
from skal.query.selection import top_k

__all__ = ["least_confidence", "margin", "entropy", "bald", "ll4al"]


# The plain-words reason of the probability-based scores.
_TORN = "the model is torn: {torn}"


def _proba_query(score, method, learner, X_pool, n_instances, random_state, subsample,
                 return_utilities):
    """Top ``n_instances`` by ``score(predict_proba(X), multi_label)``."""
    pool = QueryPool(learner, X_pool, n_instances, random_state, subsample, method,
                     return_utilities)
    predict_proba = pool.require("predict_proba", "probabilities")
    scores = score(predict_proba(pool.X), multi_label=pool.multi_label)
    return pool.result(top_k(scores, pool.n_instances, pool.rng), scores)


@requires()
@ranks_by("least confidence", "1 - the top probability; higher is more uncertain",
          rule="top_k", plain=_TORN)
def least_confidence(learner, X_pool, n_instances=1, *, random_state=None, subsample=None,
                     return_utilities=False):
    """Select the items whose most likely class has the lowest probability.

    Score ``1 - max_c p_c`` (:func:`~skal.query.scores.least_confidence_scores`).
    For a multi-label estimator (``multi_label=True``) each label is a binary
    problem scored ``min(p, 1 - p)``, and the per-label scores are averaged.

    Parameters
    ----------
    learner, X_pool, n_instances, random_state, subsample
        See :mod:`skal.query.uncertainty`.

    Returns
    -------
    indices : ndarray of shape (n_instances,), int64
        Indices into ``X_pool``, most uncertain first.
    utilities : ndarray of shape (n_instances, len(X_pool)), float64
        Only with ``return_utilities=True``: the score, one row per pick.
    """
    return _proba_query(least_confidence_scores, "least_confidence",
                        learner, X_pool, n_instances, random_state, subsample, return_utilities)


@requires()
@ranks_by("negative margin", "minus the gap between the two most probable classes; closer to 0 "
          "is more uncertain", rule="top_k", plain=_TORN)
def margin(learner, X_pool, n_instances=1, *, random_state=None, subsample=None,
           return_utilities=False):
    """Select the items with the smallest gap between the two most likely classes.

    Margin ``p_(1) - p_(2)``, smallest first (:func:`~skal.query.scores.margin_scores`).
    For a multi-label estimator (``multi_label=True``) each label's binary
    margin ``|2p - 1|``, averaged over labels.

    Parameters
    ----------
    learner, X_pool, n_instances, random_state, subsample
        See :mod:`skal.query.uncertainty`.

    Returns
    -------
    indices : ndarray of shape (n_instances,), int64
        Indices into ``X_pool``, smallest margin first.
    utilities : ndarray of shape (n_instances, len(X_pool)), float64
        Only with ``return_utilities=True``: the score, one row per pick.
    """
    # The smallest margin is the most uncertain, hence the minus.
    return _proba_query(lambda p, multi_label: -margin_scores(p, multi_label), "margin",
                        learner, X_pool, n_instances, random_state, subsample, return_utilities)


@requires()
@ranks_by("entropy", "entropy of the predicted classes (nats); higher is more uncertain",
          rule="top_k", plain=_TORN)
def entropy(learner, X_pool, n_instances=1, *, random_state=None, subsample=None,
            return_utilities=False):
    """Select the items whose predicted distribution has the highest entropy.

    Score ``-sum_c p_c log p_c`` (:func:`~skal.query.scores.entropy_scores`).
    For a multi-label estimator (``multi_label=True``) each label's binary
    entropy, averaged over labels.

    Parameters
    ----------
    learner, X_pool, n_instances, random_state, subsample
        See :mod:`skal.query.uncertainty`.

    Returns
    -------
    indices : ndarray of shape (n_instances,), int64
        Indices into ``X_pool``, highest entropy first.
    utilities : ndarray of shape (n_instances, len(X_pool)), float64
        Only with ``return_utilities=True``: the score, one row per pick.
    """
    return _proba_query(entropy_scores, "entropy",
                        learner, X_pool, n_instances, random_state, subsample, return_utilities)


@requires("dropout")
@ranks_by("mutual information", "BALD: disagreement between the MC-dropout passes of this "
          "query (nats); higher is more informative", rule="top_k",
          plain="the model contradicts itself on it when parts of it are switched off "
                "(it is unsure in a way more labels can fix)")
def bald(learner, X_pool, n_instances=1, *, n_samples=20, random_state=None, subsample=None,
         return_utilities=False):
    """BALD: select the items whose prediction the weights disagree on most.

    Score: the mutual information ``H(mean_s p_s) - mean_s H(p_s)`` over
    ``n_samples`` MC-dropout passes (Gal et al. 2017;
    :func:`~skal.query.scores.mutual_information`). For a multi-label
    estimator, each label's binary mutual information, averaged. The
    dropout masks are seeded from ``random_state``.

    Parameters
    ----------
    learner, X_pool, n_instances, random_state, subsample
        See :mod:`skal.query.uncertainty`. The network needs
        ``predict_proba_mc(X, n_samples, random_state)`` returning
        (n_samples, N, C) probabilities: an ``ImageClassifier`` with ``dropout > 0``.
    n_samples : int, default=20
        Stochastic forward passes.

    Returns
    -------
    indices : ndarray of shape (n_instances,), int64
        Indices into ``X_pool``, highest mutual information first.
    utilities : ndarray of shape (n_instances, len(X_pool)), float64
        Only with ``return_utilities=True``: the score, one row per pick.

    Raises
    ------
    ValueError
        Also the estimator's own error when its dropout rate is 0.
    """
    pool = QueryPool(learner, X_pool, n_instances, random_state, subsample, "bald",
                     return_utilities)
    predict_proba_mc = pool.require("predict_proba_mc", "dropout")
    mc = predict_proba_mc(pool.X, n_samples=n_samples, random_state=pool.seed())
    scores = mutual_information(mc, multi_label=pool.multi_label)
    return pool.result(top_k(scores, pool.n_instances, pool.rng), scores)


@requires("loss_head")
@ranks_by("predicted loss", "the loss head's prediction of the model's error; higher is more "
          "informative", rule="top_k",
          plain="the model expects to get it wrong (its predicted error is among the highest)")
def ll4al(learner, X_pool, n_instances=1, *, random_state=None, subsample=None,
          return_utilities=False):
    """Learning loss (Yoo & Kweon 2019): select the items with the highest predicted loss.

    The study scores a random subset (``subsample='paper'``).

    Parameters
    ----------
    learner, X_pool, n_instances, random_state, subsample
        See :mod:`skal.query.uncertainty`. The network needs
        ``predict_loss(X) -> (N,)``: a ``LossPredictionClassifier``.

    Returns
    -------
    indices : ndarray of shape (n_instances,), int64
        Indices into ``X_pool``, highest predicted loss first.
    utilities : ndarray of shape (n_instances, len(X_pool)), float64
        Only with ``return_utilities=True``: the score, one row per pick.
    """
    pool = QueryPool(learner, X_pool, n_instances, random_state, subsample, "ll4al",
                     return_utilities)
    predict_loss = pool.require("predict_loss", "loss_head")
    scores = np.asarray(predict_loss(pool.X)).reshape(-1)
    return pool.result(top_k(scores, pool.n_instances, pool.rng), scores)
