"""Why was an image picked: read from the utilities the query itself ranked or drew by.

Nothing here is computed again. The labeling loop asks the query function
for its utilities once (``return_utilities=True``, see :mod:`skal.query`);
:func:`explain` turns them, with the strategy's own declaration
(:func:`skal.query.strategy_utility`: the value's name, what it means, and
why in plain words) and the probabilities the query's pass already gave,
into what the page shows for each picked image: the value, its rank among
the candidates of the step that picked it, and a sentence.
"""

from __future__ import annotations

import numpy as np

from skal.query import strategy_utility

__all__ = ["explain", "torn"]


def torn(proba, classes=None):
    """The model's two most probable classes with their percentages, most probable first.

    Parameters
    ----------
    proba : array-like of shape (C,), float
        One item's class probabilities.
    classes : sequence of str, optional
        Class names, in the columns' order (default ``'class 0'``, ...).

    Returns
    -------
    str
        E.g. ``'52 % malignant, 48 % benign'``.

    Examples
    --------
    >>> torn([0.48, 0.52], ["benign", "malignant"])
    '52 % malignant, 48 % benign'
    """
    proba = np.asarray(proba, dtype=np.float64).reshape(-1)
    names = list(classes) if classes is not None else [f"class {c}" for c in range(len(proba))]
    top = np.argsort(-proba, kind="stable")[:2]
    return ", ".join(f"{100 * proba[c]:.0f} % {names[c]}" for c in top)


def _sentence(template, proba, classes):
    if "{torn}" not in template:
        return template
    if proba is None or np.ndim(proba) != 1 or len(proba) < 2:
        return template.format(torn="its two most likely answers are close")
    return template.format(torn=torn(proba, classes))


def explain(strategy, picked, utilities, proba=None, classes=None, plain=None):
    """Score, rank and plain-words reason of each picked item, from the query's utilities.

    Parameters
    ----------
    strategy : str or callable
        The strategy's registry name or query function; its declaration
        (:func:`skal.query.strategy_utility`) names and words the value.
    picked : array-like of shape (B,), int
        The query's indices into the pool, in pick order.
    utilities : array-like of shape (B, N), float
        The query's utilities (``return_utilities=True``): row ``j`` is the
        step of pick ``j``, NaN for items that were not candidates then.
    proba : array-like of shape (B, C), float, optional
        The picked items' class probabilities from the pass the query made
        (for the wording, e.g. "52 % malignant, 48 % benign", and the
        model's guess); None before there is a model.
    classes : sequence of str, optional
        Class names, in ``proba``'s column order.
    plain : str, optional
        A reason that replaces the strategy's own for every item (e.g. a
        random first batch: there is no model yet).

    Returns
    -------
    dict
        ``score_name`` and ``description`` (the declaration's), and per
        item, in pick order: ``scores`` (B floats: ``utilities[j,
        picked[j]]``; None where not finite, which JSON cannot hold),
        ``ranks`` (B ints: 1 + the items the rule preferred at that step:
        its candidates with a strictly higher utility, and for a ``'top_k'``
        rule, whose one score serves every step, the items picked before),
        ``of`` (B ints: the step's candidates, and for ``'top_k'`` the items
        picked before: every scored item),
        ``sentences`` (B str); ``pool_size`` (N); ``guesses`` (B class
        indices, the most probable) and ``confidences`` (their probability,
        4 decimals), both None without ``proba``.

    Raises
    ------
    ValueError
        When ``utilities`` does not have one row per pick, or a pick was not
        a candidate of its step (NaN): then the utilities are not this
        query's.
    """
    declared = strategy_utility(strategy)
    picked = np.asarray(picked, dtype=np.int64).reshape(-1)
    utilities = np.asarray(utilities, dtype=np.float64)
    if utilities.ndim != 2 or len(utilities) != len(picked):
        raise ValueError(f"utilities must have one row per pick, shape ({len(picked)}, N); got "
                         f"{utilities.shape}. Pass what the query returned with "
                         f"return_utilities=True.")
    values = utilities[np.arange(len(picked)), picked]
    if np.isnan(values).any():
        raise ValueError("A picked item has no utility at its step (NaN): these utilities are "
                         "not the ones the query that picked it returned.")
    # NaN compares False, so only the step's candidates count as preferred.
    ranks = 1 + (utilities > values[:, None]).sum(axis=1)
    of = (~np.isnan(utilities)).sum(axis=1)
    if declared.rule == "top_k":
        # One score serves every step: the items picked before were preferred
        # too, so the picks are ranks 1..n of everything scored.
        ranks, of = ranks + np.arange(len(picked)), of + np.arange(len(picked))
    if proba is not None:
        proba = np.asarray(proba, dtype=np.float64)
    rows = [None] * len(picked) if proba is None else list(proba)
    return {
        "score_name": declared.name,
        "description": declared.description,
        "scores": [float(v) if np.isfinite(v) else None for v in values],
        "ranks": [int(r) for r in ranks],
        "of": [int(c) for c in of],
        "sentences": [plain if plain is not None else _sentence(declared.plain, p, classes)
                      for p in rows],
        "pool_size": int(utilities.shape[1]),
        "guesses": None if proba is None else proba.argmax(axis=1).tolist(),
        "confidences": None if proba is None else proba.max(axis=1).round(4).tolist(),
    }
