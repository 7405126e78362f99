"""Informativeness scores from predicted probabilities, kept apart from selection.

Each function maps probabilities to one float64 score per item. Higher means
more informative, except :func:`margin_scores`, which returns the margin
itself (lower is more uncertain) because Cluster-Margin ranks by it.

Multi-label output (``multi_label=True``, probabilities of shape (N, L), one
independent sigmoid per label) is scored label by label as L binary
problems, ``(1 - p, p)``, and the L per-label scores are averaged.
"""

from __future__ import annotations

import numpy as np
from scipy.special import entr

__all__ = ["least_confidence_scores", "margin_scores", "entropy_scores", "mutual_information"]


def _binary(proba):
    """(N, L) per-label probabilities as (N, L, 2) binary distributions."""
    return np.stack([1.0 - proba, proba], axis=-1)


def _as_float(proba, ndim, name):
    proba = np.asarray(proba, dtype=np.float64)
    if proba.ndim != ndim:
        raise ValueError(f"{name} must have {ndim} dimensions, got shape {proba.shape}.")
    return proba


def least_confidence_scores(proba, multi_label=False):
    """``1 - max_c p_c`` per item.

    Parameters
    ----------
    proba : array-like of shape (N, C)
        Class probabilities, or per-label probabilities (N, L) when ``multi_label``.
    multi_label : bool, default=False
        Score each label as a binary problem, ``1 - max(p, 1 - p)``, and average over labels.

    Returns
    -------
    ndarray of shape (N,), float64
        Higher is more uncertain.
    """
    proba = _as_float(proba, 2, "proba")
    if multi_label:
        return np.minimum(proba, 1.0 - proba).mean(axis=1)
    return 1.0 - proba.max(axis=1)


def margin_scores(proba, multi_label=False):
    """Difference between the two largest probabilities per item.

    Parameters
    ----------
    proba : array-like of shape (N, C)
        Class probabilities, or per-label probabilities (N, L) when ``multi_label``.
    multi_label : bool, default=False
        Per-label binary margin ``|2p - 1|``, averaged over labels.

    Returns
    -------
    ndarray of shape (N,), float64
        The margin; **lower** is more uncertain. 0 for a single column.
    """
    proba = _as_float(proba, 2, "proba")
    if multi_label:
        return np.abs(2.0 * proba - 1.0).mean(axis=1)
    if proba.shape[1] < 2:
        return np.zeros(len(proba))
    top2 = -np.partition(-proba, 1, axis=1)[:, :2]
    return top2[:, 0] - top2[:, 1]


def entropy_scores(proba, multi_label=False):
    """Shannon entropy (nats) of the predicted distribution per item.

    Parameters
    ----------
    proba : array-like of shape (N, C)
        Class probabilities, or per-label probabilities (N, L) when ``multi_label``.
    multi_label : bool, default=False
        Binary entropy of each label, averaged over labels.

    Returns
    -------
    ndarray of shape (N,), float64
        Higher is more uncertain.
    """
    proba = _as_float(proba, 2, "proba")
    if multi_label:
        return entr(_binary(proba)).sum(axis=-1).mean(axis=1)
    return entr(proba).sum(axis=1)


def mutual_information(mc_proba, multi_label=False):
    """BALD's mutual information between prediction and weights: ``H(mean p) - mean H(p)``.

    Parameters
    ----------
    mc_proba : array-like of shape (S, N, C)
        Probabilities of S stochastic (MC-dropout) passes; (S, N, L)
        per-label probabilities when ``multi_label``.
    multi_label : bool, default=False
        Mutual information of each label as a binary problem, averaged over labels.

    Returns
    -------
    ndarray of shape (N,), float64
        Non-negative up to rounding; higher is more informative.
    """
    mc_proba = _as_float(mc_proba, 3, "mc_proba")
    if multi_label:
        mc_proba = _binary(mc_proba)  # (S, N, L, 2)
        entropy_of_mean = entr(mc_proba.mean(axis=0)).sum(axis=-1)
        mean_entropy = entr(mc_proba).sum(axis=-1).mean(axis=0)
        return (entropy_of_mean - mean_entropy).mean(axis=1)
    entropy_of_mean = entr(mc_proba.mean(axis=0)).sum(axis=-1)
    mean_entropy = entr(mc_proba).sum(axis=-1).mean(axis=0)
    return entropy_of_mean - mean_entropy
