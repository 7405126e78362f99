"""Why was an image picked: each strategy's own score for it, and its rank in the pool.

skal's query functions return indices only. To show a person why an image
is in the batch, this module recomputes, for the same network and pool, the
score the strategy ranks or samples by, with the public score functions of
:mod:`skal.query` (one hook per strategy, nothing copied from the query
functions), and ranks the pool by it: rank 1 is the item the score calls
most informative.

For selection rules that are not a plain top-k (BADGE's k-means++ sampling,
core-set's greedy k-center, TypiClust's and Cluster-Margin's clusters), the
score is the quantity the rule starts from: BADGE's gradient-embedding norm
(its first pick is the largest), core-set's distance to the labeled set
(its first pick is the farthest), TypiClust's typicality, Cluster-Margin's
margin. The description says so on the page.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy.stats import rankdata

from skal.kernels import pairwise_sqdist_min
from skal.query.diversity import typicality
from skal.query.scores import (entropy_scores, least_confidence_scores, margin_scores,
                               mutual_information)

__all__ = ["Score", "SCORES", "explain"]


@dataclass(frozen=True)
class Score:
    """How one strategy's score is computed and read.

    Attributes
    ----------
    name : str
        Shown on each tile, e.g. ``'entropy'``.
    description : str
        One sentence for the page: what the score is and which way is informative.
    higher_first : bool
        True when a higher score is more informative (rank 1 = highest).
    compute : callable
        ``compute(network, X_pool, X_labeled, proba, emb, seed) -> ndarray (N,)``;
        ``proba`` (N, C) and ``emb`` (N, D) are the pool's, from one pass.
    """

    name: str
    description: str
    higher_first: bool
    compute: object


def _gradient_norm(network, X_pool, X_labeled, proba, emb, seed):
    # BADGE's gradient embedding (p - onehot(argmax p)) (x) h has norm |p - onehot| * |h|.
    residual = proba.copy()
    residual[np.arange(len(proba)), proba.argmax(axis=1)] -= 1.0
    return np.linalg.norm(residual, axis=1) * np.linalg.norm(emb, axis=1)


def _distance_to_labeled(network, X_pool, X_labeled, proba, emb, seed):
    if X_labeled is None or len(X_labeled) == 0:
        return np.zeros(len(emb))
    labeled = np.asarray(network.embed(X_labeled), dtype=np.float32)
    sqdist = pairwise_sqdist_min(torch.from_numpy(np.ascontiguousarray(emb)),
                                 torch.from_numpy(labeled))
    return np.sqrt(sqdist.double().clamp_min(0).numpy())


SCORES = {
    "least_confidence": Score("least confidence", "1 - the top probability; higher is more "
                              "uncertain", True,
                              lambda net, X, L, p, e, s: least_confidence_scores(p)),
    "margin": Score("margin", "gap between the two most probable classes; smaller is more "
                    "uncertain", False, lambda net, X, L, p, e, s: margin_scores(p)),
    "cluster_margin": Score("margin", "gap between the two most probable classes (Cluster-Margin "
                            "then spreads its picks over clusters); smaller is more uncertain",
                            False, lambda net, X, L, p, e, s: margin_scores(p)),
    "entropy": Score("entropy", "entropy of the predicted classes (nats); higher is more "
                     "uncertain", True, lambda net, X, L, p, e, s: entropy_scores(p)),
    "bald": Score("mutual information", "BALD: disagreement between MC-dropout passes; higher "
                  "is more informative", True,
                  lambda net, X, L, p, e, s: mutual_information(
                      net.predict_proba_mc(X, n_samples=20, random_state=s))),
    "ll4al": Score("predicted loss", "the loss head's prediction of the model's error; higher "
                   "is more informative", True,
                   lambda net, X, L, p, e, s: np.asarray(net.predict_loss(X)).reshape(-1)),
    "scal": Score("predicted loss", "the loss head's prediction (SCAL then clusters the top "
                  "candidates); higher is more informative", True,
                  lambda net, X, L, p, e, s: np.asarray(net.predict_loss(X)).reshape(-1)),
    "coreset": Score("distance to labeled", "distance to the nearest labeled image in the "
                     "model's feature space (core-set picks far ones first); higher is more "
                     "informative", True, _distance_to_labeled),
    "badge": Score("gradient norm", "size of the last layer's gradient at the predicted class "
                   "(BADGE samples large and diverse ones); higher is more informative", True,
                   _gradient_norm),
    "typiclust": Score("typicality", "1 / mean distance to the 20 nearest pool images (TypiClust "
                       "takes the most typical of each cluster); higher is more typical", True,
                       lambda net, X, L, p, e, s: typicality(e, n_neighbors=20)),
}


def explain(method, network, X_pool, picked, X_labeled=None, seed=0):
    """The score and pool rank of each picked item, and the model's guess for it.

    Parameters
    ----------
    method : str
        The strategy's registry name; ``'random'`` (or a network of None,
        before any training) gives no score and ranks by draw order.
    network : fitted skal ImageClassifier or None
    X_pool : ndarray of shape (N, H, W[, 3]), uint8
        The pool the strategy chose from.
    picked : ndarray of shape (B,), int
        Positions in ``X_pool`` of the picked items.
    X_labeled : ndarray or None
        The training set (core-set's distance needs it).
    seed : int
        Seeds BALD's dropout masks.

    Returns
    -------
    dict
        ``score_name``, ``description``, ``scores`` (B floats, None for a
        non-finite score; or None for a random draw),
        ``ranks`` (B ints, 1 = most informative), ``pool_size``, ``guesses``
        (B class indices or None) and ``confidences`` (B floats or None).
    """
    picked = np.asarray(picked, dtype=np.int64)
    result = {"pool_size": int(len(X_pool)), "scores": None, "guesses": None,
              "confidences": None, "ranks": [int(k) + 1 for k in range(len(picked))]}
    if network is None or method not in SCORES:
        result.update(score_name="random draw",
                      description="drawn at random (no trained model yet)" if network is None
                      else "drawn at random; the rank is the draw order")
        if network is not None:
            proba = np.asarray(network.predict_proba(X_pool[picked]), dtype=np.float64)
            result.update(guesses=proba.argmax(axis=1).tolist(),
                          confidences=proba.max(axis=1).round(4).tolist())
        return result
    score = SCORES[method]
    proba, emb = network.predict_proba_and_embed(X_pool)
    proba = np.asarray(proba, dtype=np.float64)
    values = np.asarray(score.compute(network, X_pool, X_labeled, proba,
                                      np.asarray(emb, dtype=np.float32), seed), dtype=np.float64)
    ranks = rankdata(-values if score.higher_first else values, method="min")
    result.update(score_name=score.name, description=score.description,
                  # JSON has no infinity (TypiClust gives +inf to exact duplicates): None.
                  scores=[float(round(v, 6)) if np.isfinite(v) else None
                          for v in values[picked]],
                  ranks=[int(r) for r in ranks[picked]],
                  guesses=proba[picked].argmax(axis=1).tolist(),
                  confidences=proba[picked].max(axis=1).round(4).tolist())
    return result
