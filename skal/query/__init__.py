"""Query functions for active learning, one per method, and a registry by name.

Every function follows modAL's query-strategy convention::

    indices = strategy(learner, X_pool, n_instances=1, *, random_state=None,
                       subsample=None, **method_options)

and returns an ``ndarray`` of ``int64`` indices into ``X_pool`` (distinct, in
selection order). ``learner`` is a modAL ``ActiveLearner`` (its
``X_training`` is the labeled set) or a fitted estimator; the estimator may
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

Registry
--------
``STRATEGIES`` maps each name to its function; :func:`get_query_strategy`
resolves a name (or passes a callable through); :func:`strategy_requirements`
says what a method needs from the estimator, and
:func:`missing_requirements` checks an estimator against it before a run.
"""

from __future__ import annotations

import skal._modal_compat  # noqa: F401  (lets modAL 0.4.1 run on scikit-learn >= 1.8)
from skal.query._base import QueryPool, check_generator, subsample_size, unwrap_learner
from skal.query.baseline import random_sampling
from skal.query.diversity import coreset, typiclust
from skal.query.hybrid import badge, cluster_margin, scal
from skal.query.uncertainty import bald, entropy, least_confidence, ll4al, margin

__all__ = [
    "STRATEGIES",
    "REQUIREMENTS",
    "get_query_strategy",
    "strategy_requirements",
    "missing_requirements",
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

#: What each requirement means, i.e. every string :func:`strategy_requirements` can return.
REQUIREMENTS = {
    "embedding": "penultimate features, embed(X) (every skal ImageClassifier has it)",
    "dropout": "MC dropout, predict_proba_mc(X, n_samples, random_state): an ImageClassifier "
               "with dropout > 0",
    "loss_head": "a loss-prediction head, predict_loss(X): a LossPredictionClassifier",
    "single_label": "single-label output (multi_label=False)",
}

_REQUIREMENTS = {
    "random": frozenset(),
    "least_confidence": frozenset(),
    "margin": frozenset(),
    "entropy": frozenset(),
    "bald": frozenset({"dropout"}),
    "ll4al": frozenset({"loss_head"}),
    "coreset": frozenset({"embedding"}),
    "typiclust": frozenset({"embedding"}),
    "badge": frozenset({"embedding", "single_label"}),
    "scal": frozenset({"loss_head", "embedding"}),
    "cluster_margin": frozenset({"embedding", "single_label"}),
}


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
    try:
        return STRATEGIES[name_or_callable]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown query strategy {name_or_callable!r}; valid names are: "
            f"{', '.join(STRATEGIES)}."
        ) from None


def strategy_requirements(name_or_callable):
    """What a strategy needs from the estimator.

    Parameters
    ----------
    name_or_callable : str or callable
        A registry name or a query function. A callable outside the registry
        may declare its needs in a ``requirements`` attribute; otherwise it
        needs nothing known.

    Returns
    -------
    set of str
        A subset of the keys of :data:`REQUIREMENTS`: ``'embedding'``,
        ``'dropout'``, ``'loss_head'``, ``'single_label'``.

    Raises
    ------
    ValueError
        For an unknown name.
    """
    func = get_query_strategy(name_or_callable)
    for name, registered in STRATEGIES.items():
        if registered is func:
            return set(_REQUIREMENTS[name])
    return set(getattr(func, "requirements", ()))


def _dropout_rate(network):
    module = getattr(network, "module_", None)
    rate = getattr(module, "dropout_rate", None)  # fitted: the network's own rate
    if rate is None:
        rate = getattr(network, "dropout", 0.0)  # unfitted: the parameter
    try:
        return float(rate)
    except (TypeError, ValueError):
        return 0.0


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
        Each unmet requirement and what it means (see :data:`REQUIREMENTS`);
        empty when the strategy can run.
    """
    _, network, _ = unwrap_learner(estimator)
    missing = set()
    for need in strategy_requirements(name_or_callable):
        if need == "embedding" and not callable(getattr(network, "embed", None)):
            missing.add(need)
        elif need == "loss_head" and not callable(getattr(network, "predict_loss", None)):
            missing.add(need)
        elif need == "single_label" and getattr(network, "multi_label", False):
            missing.add(need)
        elif need == "dropout" and (not callable(getattr(network, "predict_proba_mc", None))
                                    or _dropout_rate(network) <= 0):
            missing.add(need)
    return {need: REQUIREMENTS.get(need, need) for need in sorted(missing)}
