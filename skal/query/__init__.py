"""Query functions for active learning, one per method, and a registry by name.

Every function follows modAL's query-strategy convention::

    indices = strategy(learner, X_pool, n_instances=1, *, random_state=None,
                       subsample=None, **method_options)

and returns an ``ndarray`` of ``int64`` indices into ``X_pool`` (distinct, in
selection order). With ``return_utilities=True`` it returns ``(indices,
utilities)`` as scikit-activeml does: ``utilities`` float64 of shape
(n_instances, len(X_pool)), row ``j`` the value each pool item had for the
rule when pick ``j`` was made (higher = preferred), NaN for items that were
not candidates at that step (outside the subsample, already picked, outside
the cluster the step took from). The picks are the same either way.

``learner`` is a modAL ``ActiveLearner`` (its ``X_training`` is the labeled set) or a fitted estimator; the estimator may
be a ``Pipeline`` ending in the network, whose earlier steps are applied to
the pool and the labeled set before the network is asked. The same
``random_state`` gives the same indices; ties are broken at random under it.

Modules
-------
scores
    Informativeness scores from probabilities (no selection).
selection
    Selection rules (top-k with random ties, one per cluster, round-robin).
baseline, uncertainty, diversity, hybrid
    The query functions.
cold_start
    The first batch without labels (TypiClust, ProbCover on label-free features).

Registry
--------
``STRATEGIES`` maps each name to its function; :func:`get_query_strategy`
resolves a name (or passes a callable through). Each function declares what
it needs from the estimator once, with :func:`requires`
(:func:`strategy_requirements` reads it), and :func:`check_requirements` is
the one check of an estimator against it, run before any training. Each
also declares what its utilities are called and mean, with :func:`ranks_by`
(:func:`strategy_utility` reads it).
"""

from __future__ import annotations

import skal._modal_compat  # noqa: F401  (lets modAL 0.4.1 run on scikit-learn >= 1.8)
from skal.query._base import (REQUIREMENTS, RULES, QueryPool, Utility, check_generator,
                              draw_subsample, final_step, lacks, ranks_by, requirement_error,
                              requires, subsample_size, unwrap_learner)
from skal.query.baseline import random_sampling
from skal.query.cold_start import probcover, random_initial, typiclust_initial
from skal.query.diversity import coreset, typiclust
from skal.query.hybrid import badge, cluster_margin, scal
from skal.query.uncertainty import bald, entropy, least_confidence, ll4al, margin
from skal.registry import lookup

__all__ = [
    "STRATEGIES",
    "INITIAL_STRATEGIES",
    "get_initial_strategy",
    "REQUIREMENTS",
    "get_query_strategy",
    "strategy_requirements",
    "missing_requirements",
    "check_requirements",
    "requires",
    "ranks_by",
    "Utility",
    "RULES",
    "strategy_utility",
    "draw_subsample",
    "final_step",
    "random_sampling",
    "least_confidence",
    "margin",
    "entropy",
    "bald",
    "ll4al",
    "coreset",
    "typiclust",
    "badge",
    "scal",
    "cluster_margin",
    "subsample_size",
    "unwrap_learner",
    "check_generator",
    "QueryPool",
]

#: Query functions by registry name.
STRATEGIES = {
    "random": random_sampling,
    "least_confidence": least_confidence,
    "margin": margin,
    "entropy": entropy,
    "bald": bald,
    "ll4al": ll4al,
    "coreset": coreset,
    "typiclust": typiclust,
    "badge": badge,
    "scal": scal,
    "cluster_margin": cluster_margin,
}

#: Strategies of the first batch, chosen with no labels and no model, by registry name
#: (:mod:`skal.query.cold_start`); the experiment's ``initial_strategy``.
INITIAL_STRATEGIES = {
    "random": random_initial,
    "typiclust": typiclust_initial,
    "probcover": probcover,
}


def get_initial_strategy(name_or_callable):
    """The first-batch strategy registered under a name; a callable passes through.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid names.
    """
    if callable(name_or_callable):
        return name_or_callable
    return lookup(INITIAL_STRATEGIES, name_or_callable, "initial strategy")


def get_query_strategy(name_or_callable):
    """The query function registered under a name; a callable passes through.

    Parameters
    ----------
    name_or_callable : str or callable
        A key of :data:`STRATEGIES`, or a modAL-style query function.

    Returns
    -------
    callable
        ``strategy(learner, X_pool, n_instances=1, **kwargs) -> ndarray of int64``.

    Raises
    ------
    ValueError
        For an unknown name; the message lists the valid names.
    """
    if callable(name_or_callable):
        return name_or_callable
    return lookup(STRATEGIES, name_or_callable, "query strategy")


def strategy_requirements(name_or_callable):
    """What a strategy needs from the estimator, as it declared with :func:`requires`.

    Parameters
    ----------
    name_or_callable : str or callable
        A registry name or a query function; a function that declares
        nothing (no ``requirements`` attribute) needs nothing known.

    Returns
    -------
    set of str
        A subset of ``'embedding'``, ``'dropout'``, ``'loss_head'``,
        ``'single_label'`` (see :data:`REQUIREMENTS`).

    Raises
    ------
    ValueError
        For an unknown name.
    """
    return set(getattr(get_query_strategy(name_or_callable), "requirements", ()))


def strategy_utility(name_or_callable):
    """What a strategy's utilities are, as it declared with :func:`ranks_by`.

    Parameters
    ----------
    name_or_callable : str or callable
        A registry name or a query function.

    Returns
    -------
    Utility
        Its name, description, selection rule and plain-words reason.

    Raises
    ------
    ValueError
        For an unknown name, or a function that declares no utility.
    """
    strategy = get_query_strategy(name_or_callable)
    declared = getattr(strategy, "utility", None)
    if declared is None:
        raise ValueError(f"{_strategy_name(name_or_callable)} declares no utility; decorate it "
                         f"with skal.query.ranks_by(...) to explain its picks.")
    return declared


def _strategy_name(name_or_callable):
    if isinstance(name_or_callable, str):
        return name_or_callable
    return getattr(name_or_callable, "__name__", "the query strategy")


def missing_requirements(name_or_callable, estimator):
    """The requirements of a strategy that an estimator does not meet.

    Works on an unfitted estimator, so a command line can refuse a run
    before training anything.

    Parameters
    ----------
    name_or_callable : str or callable
    estimator : estimator, Pipeline or modAL learner
        Checked through its network (a Pipeline's last step).

    Returns
    -------
    dict of str to str
        Each unmet requirement (a key of :data:`REQUIREMENTS`) and what it is
        (its description there), in the order of :data:`REQUIREMENTS`;
        empty when the strategy can run. The one function of this name.
    """
    needs = strategy_requirements(name_or_callable)
    return {need: what for need, (what, _) in REQUIREMENTS.items()
            if need in needs and lacks(estimator, need)}


def check_requirements(name_or_callable, estimator, y=None):
    """Refuse a strategy the estimator (or the targets) cannot serve: the one checker.

    Parameters
    ----------
    name_or_callable : str or callable
    estimator : estimator, Pipeline or modAL learner
    y : ndarray, optional
        The oracle's labels; multi-label ``y`` (shape (N, L), L > 1) fails a
        ``'single_label'`` strategy.

    Raises
    ------
    ValueError
        ``'<strategy> needs <what>, which <who> lacks; <fix>.'`` for the
        first unmet requirement (in the order of :data:`REQUIREMENTS`).
    """
    name = _strategy_name(name_or_callable)
    missing = missing_requirements(name_or_callable, estimator)
    if missing:  # the first, in the order of REQUIREMENTS
        raise requirement_error(name, next(iter(missing)), estimator)
    needs = strategy_requirements(name_or_callable)
    if "single_label" in needs and y is not None and y.ndim == 2 and y.shape[1] > 1:
        raise requirement_error(name, "single_label", y=y)
