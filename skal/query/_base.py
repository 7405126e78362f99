"""What every query function does before it scores anything.

A query function receives a modAL learner (or a fitted estimator), a pool and
a few options. :class:`QueryPool` turns these into the things the method
works with: the network to ask (the last step of a ``Pipeline``), the pool
rows to score (after optional subsampling, transformed by the steps before
the network), the labeled set, and one ``numpy.random.Generator`` that every
random decision of the query draws from, so that the same ``random_state``
gives the same indices.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass
from functools import cached_property

import numpy as np
from modAL.utils.data import retrieve_rows
from sklearn.pipeline import Pipeline

from skal._random import check_generator  # the one random-state rule; re-exported here

__all__ = ["QueryPool", "check_generator", "subsample_size", "draw_subsample", "unwrap_learner",
           "final_step", "requires", "REQUIREMENTS", "lacks",
           "requirement_error", "PAPER_SUBSAMPLE_MAX", "Utility", "ranks_by", "RULES"]

# The study scores at most this many unlabeled items per query.
PAPER_SUBSAMPLE_MAX = 20000


#: Everything a strategy can need from the estimator: name -> (what it is, the fix).
#: A strategy declares its needs with :func:`requires`; ``'probabilities'`` is
#: never declared (every classifier has ``predict_proba``) but shares the wording.
REQUIREMENTS = {
    "loss_head": ("a loss-prediction head (predict_loss)",
                  "use skal.estimator.LossPredictionClassifier"),
    "embedding": ("penultimate-layer embeddings (embed)",
                  "use skal.estimator.ImageClassifier"),
    "dropout": ("MC-dropout probabilities (predict_proba_mc with dropout > 0)",
                "build the estimator with dropout > 0 (e.g. 0.3)"),
    "single_label": ("single-label output (one class per item)",
                     "use an uncertainty method (least_confidence, margin, entropy, bald) or a "
                     "diversity method"),
    "probabilities": ("predicted probabilities (predict_proba)",
                      "use a classifier with predict_proba"),
}


def requires(*needs):
    """Declare what a query function needs from the estimator, as a decorator.

    The one declaration of a strategy's needs (as baal's heuristics declare
    theirs): it sets the function's ``requirements`` attribute, which
    :func:`skal.query.strategy_requirements` and the one checker,
    :func:`skal.query.check_requirements`, read.

    Parameters
    ----------
    *needs : str
        Keys of :data:`REQUIREMENTS`.

    Examples
    --------
    >>> @requires("embedding")
    ... def farthest(learner, X_pool, n_instances=1, **kwargs): ...
    >>> sorted(farthest.requirements)
    ['embedding']
    """
    unknown = sorted(set(needs) - set(REQUIREMENTS) - {"probabilities"})
    if unknown:
        raise ValueError(f"Unknown requirement(s) {unknown}; valid ones are: "
                         f"{', '.join(REQUIREMENTS)}.")

    def declare(func):
        func.requirements = frozenset(needs)
        return func

    return declare


#: How a strategy's rule turns a row of utilities into its pick (see :class:`Utility`).
RULES = {
    "top_k": "the same utility at every step; the picks are its n highest (ranks 1..n)",
    "greedy": "each pick is the highest utility of its step's row; the rows change as picks "
              "are made",
    "drawn": "each pick is drawn at random with probability proportional to its step's row",
}


@dataclass(frozen=True)
class Utility:
    """What a strategy's utilities are: the one declaration explanations read.

    Attributes
    ----------
    name : str
        Short name of the value, shown next to a pick, e.g. ``'entropy'``.
    description : str
        One sentence: what the value is and which way the rule prefers.
    rule : str
        A key of :data:`RULES`: how the pick at each step follows from that
        step's row of utilities.
    plain : str
        Why an item was picked, in plain words for a clinician. ``{torn}`` is
        replaced by the model's two most probable classes with their
        percentages (e.g. ``'52 % malignant, 48 % benign'``).
    """

    name: str
    description: str
    rule: str
    plain: str

    def __post_init__(self):
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {', '.join(RULES)}, got {self.rule!r}.")


def ranks_by(name, description, *, rule, plain):
    """Declare what a query function's utilities are, as a decorator.

    The one declaration of a strategy's utility (next to :func:`requires`):
    it sets the function's ``utility`` attribute, a :class:`Utility`, which
    :func:`skal.query.strategy_utility` and :func:`skal.label.why.explain`
    read. The values themselves come from the query, with
    ``return_utilities=True``.

    Parameters
    ----------
    name, description, rule, plain : str
        See :class:`Utility`.

    Examples
    --------
    >>> @ranks_by("predicted loss", "higher is preferred", rule="top_k", plain="likely wrong")
    ... def loss_query(learner, X_pool, n_instances=1, **kwargs): ...
    >>> loss_query.utility.rule
    'top_k'
    """
    declared = Utility(name, description, rule, plain)

    def declare(func):
        func.utility = declared
        return func

    return declare


def _dropout_rate(network):
    module = getattr(network, "module_", None)
    rate = getattr(module, "dropout_rate", None)  # fitted: the network's own rate
    if rate is None:
        rate = getattr(network, "dropout", 0.0)  # unfitted: the parameter
    try:
        return float(rate)
    except (TypeError, ValueError):
        return 0.0


def _lacks(network, need):
    """Whether the network (fitted or not) lacks the requirement ``need``."""
    if need == "embedding":
        return not callable(getattr(network, "embed", None))
    if need == "loss_head":
        return not callable(getattr(network, "predict_loss", None))
    if need == "single_label":
        return bool(getattr(network, "multi_label", False))
    if need == "dropout":
        return (not callable(getattr(network, "predict_proba_mc", None))
                or _dropout_rate(network) <= 0)
    if need == "probabilities":
        return not callable(getattr(network, "predict_proba", None))
    return False


def lacks(estimator, need):
    """Whether an estimator (fitted or not) lacks the requirement ``need``.

    The one test of a requirement; :func:`skal.query.missing_requirements`
    applies it to a strategy's needs.

    Parameters
    ----------
    estimator : estimator, Pipeline or modAL learner
        Checked through its network (a Pipeline's last step).
    need : str
        A key of :data:`REQUIREMENTS`.

    Returns
    -------
    bool
    """
    return _lacks(unwrap_learner(estimator)[1], need)


def requirement_error(name, need, estimator=None, y=None):
    """The one wording of an unmet requirement, as a ValueError.

    Parameters
    ----------
    name : str
        The strategy's name.
    need : str
        A key of :data:`REQUIREMENTS`.
    estimator : estimator, optional
        The one that lacks it (named in the message).
    y : ndarray, optional
        Multi-label targets, when they are what lacks single-label output.

    Returns
    -------
    ValueError
        ``'<name> needs <what>, which <who> lacks; <fix>.'``
    """
    what, fix = REQUIREMENTS[need]
    if y is not None:
        who = f"y (multi-label, {y.shape[1]} labels)"
    else:
        network = unwrap_learner(estimator)[1]
        who = type(network).__name__
        if need == "dropout" and callable(getattr(network, "predict_proba_mc", None)):
            who += f" with dropout={_dropout_rate(network)!r}"
        elif need == "single_label":
            who += " (multi_label=True)"
    return ValueError(f"{name} needs {what}, which {who} lacks; {fix}.")


def _check_n_instances(n_instances):
    if (not isinstance(n_instances, (numbers.Integral, np.integer))
            or isinstance(n_instances, bool) or n_instances < 1):
        raise ValueError(f"n_instances must be a positive integer, got {n_instances!r}.")
    return int(n_instances)


def subsample_size(n_pool, n_instances, subsample):
    """How many pool items a query scores.

    Parameters
    ----------
    n_pool : int
        Size of the unlabeled pool.
    n_instances : int
        Items the query selects.
    subsample : None, int or 'paper'
        None scores the whole pool. An int scores a random subset of that
        many (the whole pool when it is larger). ``'paper'`` is the study's
        rule, ``min(20000, max(n_pool // 2, 10 * n_instances))``, again at
        most the whole pool.

    Returns
    -------
    int
        Number of items to score, in ``[1, n_pool]``.

    Raises
    ------
    ValueError
        For an unknown ``subsample`` or a non-positive integer.
    """
    if subsample is None:
        return int(n_pool)
    if isinstance(subsample, str):
        if subsample != "paper":
            raise ValueError(f"subsample must be None, a positive int or 'paper', got {subsample!r}.")
        size = min(PAPER_SUBSAMPLE_MAX, max(n_pool // 2, 10 * n_instances))
    elif isinstance(subsample, (numbers.Integral, np.integer)) and not isinstance(subsample, bool):
        if subsample < 1:
            raise ValueError(f"subsample must be a positive integer, got {subsample!r}.")
        size = int(subsample)
    else:
        raise ValueError(f"subsample must be None, a positive int or 'paper', got {subsample!r}.")
    return int(min(size, n_pool))


def draw_subsample(n_pool, n_instances, subsample, rng):
    """Positions of the pool items one query scores: the one place a subsample is drawn.

    Parameters
    ----------
    n_pool : int
        Size of the unlabeled pool.
    n_instances : int
        Items the query selects (for the ``'paper'`` rule).
    subsample : None, int or 'paper'
        See :func:`subsample_size`.
    rng : numpy.random.Generator
        Drawn from only when the subsample is smaller than the pool, so a
        query that scores the whole pool leaves it untouched.

    Returns
    -------
    ndarray of shape (M,), int64, sorted; None when the whole pool is scored.
    """
    size = subsample_size(n_pool, n_instances, subsample)
    if size >= n_pool:
        return None
    return np.sort(rng.choice(n_pool, size, replace=False)).astype(np.int64)


def final_step(estimator):
    """The network of a ``Pipeline`` (its last step), or the estimator itself."""
    return estimator.steps[-1][1] if isinstance(estimator, Pipeline) else estimator


def _is_learner(obj):
    # modAL learners hold the model in `.estimator` and the labeled set in
    # `.X_training`; checking both keeps sklearn meta-estimators (which also
    # have `.estimator`) out.
    return hasattr(obj, "estimator") and hasattr(obj, "X_training")


def unwrap_learner(learner):
    """Split a learner into (estimator, network, transform).

    Parameters
    ----------
    learner : modAL learner, fitted estimator or Pipeline
        A modAL ``ActiveLearner`` (its ``.estimator`` is used) or the estimator
        itself. The estimator may be a ``Pipeline`` whose last step is the
        network.

    Returns
    -------
    estimator : object
        The learner's estimator (the Pipeline itself for a Pipeline).
    network : object
        The object asked for ``predict_proba``, ``embed``, ... (a Pipeline's last step).
    transform : callable or None
        The Pipeline's steps before the network (``pipe[:-1].transform``), or None.
    """
    estimator = learner.estimator if _is_learner(learner) else learner
    if isinstance(estimator, Pipeline):
        transform = estimator[:-1].transform if len(estimator.steps) > 1 else None
        return estimator, estimator[-1], transform
    return estimator, estimator, None


def _n_rows(X):
    shape = getattr(X, "shape", None)
    return int(shape[0]) if shape is not None and len(shape) else len(X)


class QueryPool:
    """The part of a pool one query scores, and the network that scores it.

    Validates the common arguments, draws the subsample, and gives each
    query function lazily transformed pool rows, the labeled set and a
    random generator.

    Parameters
    ----------
    learner : modAL learner or fitted estimator (or Pipeline)
    X_pool : array-like of shape (N, ...)
        The unlabeled pool, as the learner's estimator takes it.
    n_instances : int
        Items to select, ``1 <= n_instances <= size of the scored subset``.
    random_state : None, int, RandomState or Generator
    subsample : None, int or 'paper'
        See :func:`subsample_size`.
    method : str
        The query's name, for error messages.
    return_utilities : bool, default=False
        Whether :meth:`result` returns the utilities with the indices.

    Attributes
    ----------
    index : ndarray of shape (M,), int64
        Sorted positions in ``X_pool`` of the scored items.
    rng : numpy.random.Generator
        The one source of randomness of the query. The subsample is drawn
        from it first, then whatever the method needs.
    n_instances : int
    network, estimator, learner
        See :func:`unwrap_learner`.

    Raises
    ------
    ValueError
        Empty pool; ``n_instances`` not a positive integer or larger than the
        pool or the subsample; a bad ``subsample``.
    """

    def __init__(self, learner, X_pool, n_instances, random_state, subsample, method,
                 return_utilities=False):
        self.method = method
        self.return_utilities = bool(return_utilities)
        self.learner = learner
        self.estimator, self.network, self._transform = unwrap_learner(learner)
        n_instances = _check_n_instances(n_instances)
        n_pool = _n_rows(X_pool)
        if n_pool == 0:
            raise ValueError(f"{method}: X_pool is empty; there is nothing to query.")
        if n_instances > n_pool:
            raise ValueError(
                f"{method}: n_instances={n_instances} is larger than the pool ({n_pool} items).")
        size = subsample_size(n_pool, n_instances, subsample)
        if n_instances > size:
            raise ValueError(
                f"{method}: n_instances={n_instances} is larger than the subsample "
                f"({size} of {n_pool} pool items, subsample={subsample!r}).")
        self.rng = check_generator(random_state)
        self.n_instances = n_instances
        self.n_pool = n_pool
        index = draw_subsample(n_pool, n_instances, subsample, self.rng)
        if index is not None:
            self.index = index
            self._raw = retrieve_rows(X_pool, self.index)
        else:
            self.index = np.arange(n_pool, dtype=np.int64)
            self._raw = X_pool  # no copy of a whole pool

    def __len__(self):
        return len(self.index)

    # -- data ------------------------------------------------------------------
    def _apply(self, X):
        return X if self._transform is None else self._transform(X)

    @cached_property
    def X(self):
        """The scored items, transformed by the Pipeline steps before the network."""
        return self._apply(self._raw)

    def rows(self, positions):
        """Transformed rows ``positions`` (into ``index``) of the scored items."""
        return retrieve_rows(self.X, np.asarray(positions, dtype=np.int64))

    def labeled(self, X_labeled=None):
        """The labeled set, transformed, or None when there is none.

        ``X_labeled`` when given (in the pool's raw space), else the
        learner's ``X_training``; a bare estimator has no labeled set.
        """
        if X_labeled is None:
            X_labeled = getattr(self.learner, "X_training", None) if _is_learner(self.learner) else None
        if X_labeled is None or _n_rows(X_labeled) == 0:
            return None
        return self._apply(X_labeled)

    def to_pool(self, positions):
        """Pool indices (int64) of positions into the scored items."""
        return self.index[np.asarray(positions, dtype=np.int64)]

    def result(self, positions, utilities):
        """What the query returns: pool indices, and the utilities when asked for.

        The one place utilities are laid out (scikit-activeml's
        ``return_utilities`` convention), so that a query function only
        supplies the values its rule ranked or drew by.

        Parameters
        ----------
        positions : array-like of shape (n_instances,), int
            The picks, as positions into the scored items, in pick order.
        utilities : array-like of shape (M,) or (n_instances, M), or callable
            The value each scored item had when each pick was made (higher =
            preferred by the rule; NaN for an item that was not a candidate
            at that step). One row serves every step of a top-k rule. A
            callable returning it is called only when utilities are asked
            for, so computing them costs nothing otherwise; it must not
            draw from :attr:`rng`.

        Returns
        -------
        indices : ndarray of shape (n_instances,), int64
            Indices into ``X_pool``.
        utilities : ndarray of shape (n_instances, len(X_pool)), float64
            Only with ``return_utilities=True``. Row ``j`` holds the
            utilities of pick ``j``'s step; NaN for pool items outside the
            subsample and for the items picked before step ``j``.
        """
        indices = self.to_pool(positions)
        if not self.return_utilities:
            return indices
        rows = np.asarray(utilities() if callable(utilities) else utilities, dtype=np.float64)
        rows = np.broadcast_to(rows, (self.n_instances, len(self)))
        out = np.full((self.n_instances, self.n_pool), np.nan)
        out[:, self.index] = rows
        for j in range(1, self.n_instances):
            out[j, indices[:j]] = np.nan  # already picked: no longer a candidate
        return indices, out

    # -- network ---------------------------------------------------------------
    def require(self, attribute, need):
        """The network's method ``attribute``, or the requirement ``need``'s ValueError.

        Parameters
        ----------
        attribute : str
            E.g. ``'embed'``.
        need : str
            The key of :data:`REQUIREMENTS` it serves, e.g. ``'embedding'``.
        """
        value = getattr(self.network, attribute, None)
        if value is None:
            raise requirement_error(self.method, need, self.network)
        return value

    @property
    def multi_label(self):
        return bool(getattr(self.network, "multi_label", False))

    def require_single_label(self):
        """Raise the ``'single_label'`` requirement's ValueError for a multi-label network."""
        if self.multi_label:
            raise requirement_error(self.method, "single_label", self.network)

    @property
    def device(self):
        """Where the kernels run: the network's device, else the CPU."""
        return getattr(self.network, "device", None) or "cpu"

    def seed(self):
        """An int drawn from ``rng`` for libraries that take int seeds."""
        return int(self.rng.integers(np.iinfo(np.int32).max))
