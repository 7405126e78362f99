"""A whole simulated active-learning experiment as one scikit-learn estimator.

:class:`ActiveLearningClassifier` wraps a classifier (an
:class:`~skal.estimator.ImageClassifier`, a ``Pipeline`` ending in one, or any
scikit-learn classifier) and, in ``fit(X, y)``, runs the study's loop around a
modAL ``ActiveLearner`` with ``y`` as the oracle::

    labeled = initial set (n_initial items: random, seeded, or initial_strategy's picks)
    for cycle in 1..n_cycles:
        train on labeled                     (ActiveLearner.fit / teach)
        evaluate on (X_eval, y_eval)         (when given)
        if not the last cycle:
            query query_size items from the rest of X; label them with y

The fitted object predicts and scores like its final model, so
``GridSearchCV`` and ``cross_val_score`` can tune active-learning settings
(``query_strategy``, ``query_size``, ...) together with the network's
(``estimator__lr``, ...).

With ``checkpoint_dir`` the state after every cycle is written atomically, and
a later ``fit`` with the same data and parameters resumes from the last
completed cycle and ends with the numbers an uninterrupted run gives (on CPU).
"""

from __future__ import annotations

import copy
import inspect
import os
import time
import warnings
from numbers import Integral

import numpy as np
from modAL.models import ActiveLearner
from sklearn.base import BaseEstimator, ClassifierMixin, MetaEstimatorMixin, _fit_context, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import HasMethods, Interval, InvalidParameterError, StrOptions
from sklearn.utils.multiclass import check_classification_targets, unique_labels
from sklearn.utils.validation import check_is_fitted, column_or_1d, validate_data

from skal._random import check_seed
from skal.callbacks import Checkpoint, KeepModels, PrintCycle
from skal.data import DatasetInfo
from skal.exceptions import BudgetWarning, CheckpointMismatchError, ExperimentConfigError
from skal.metrics import (CURVE_METRICS, budget_curve_area, curve_metrics, encode_targets,
                          infer_task, resolve_task)
from skal.query import (INITIAL_STRATEGIES, STRATEGIES, check_generator, check_requirements,
                        draw_subsample, final_step, get_initial_strategy, get_query_strategy)
from skal.settings import RULES
from skal.validation import check_classes, encode_labels

__all__ = ["ActiveLearningClassifier", "CheckpointMismatchError", "ExperimentConfigError",
           "ExperimentParameterError"]


class ExperimentParameterError(ExperimentConfigError, InvalidParameterError):
    """A parameter outside :attr:`ActiveLearningClassifier._parameter_constraints`.

    scikit-learn's ``InvalidParameterError`` (so its checks and users catching
    it see the usual type) and an :class:`ExperimentConfigError` (so the
    command line reports it as a bad setting).
    """

# ----------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------


def _cycle_seed(entropy, cycle, stream):
    """A 32-bit seed that depends only on (entropy, cycle, stream): a resumed run replays it."""
    return int(np.random.SeedSequence([entropy, cycle, stream]).generate_state(1)[0])


# Streams of _cycle_seed, so that the initial set, the queries and the
# estimator's seed never share random numbers.
_INITIAL, _QUERY, _ESTIMATOR = 0, 1, 2


# ----------------------------------------------------------------------------
# The meta-estimator
# ----------------------------------------------------------------------------


class ActiveLearningClassifier(ClassifierMixin, MetaEstimatorMixin, BaseEstimator):
    """Run a simulated pool-based active-learning experiment in ``fit``.

    ``fit(X, y)`` treats ``X`` as the pool and ``y`` as the oracle: it draws a
    random initial set, then for each of ``n_cycles`` cycles trains the
    estimator on the labeled set (through a modAL ``ActiveLearner``),
    evaluates it on ``(X_eval, y_eval)`` when given, and, except after the
    last training, queries ``query_size`` more items and labels them. The
    fitted object predicts and scores like its final model.

    Parameters
    ----------
    estimator : classifier
        The model trained each cycle: an :class:`~skal.estimator.ImageClassifier`
        (or ``LossPredictionClassifier``), a ``Pipeline`` ending in one, or any
        scikit-learn classifier that takes ``X``'s layout. It is cloned; the
        clone is ``estimator_``.
    query_strategy : str or callable, default='random'
        A name registered in :data:`skal.query.STRATEGIES`, or a modAL-style
        callable ``strategy(learner, X_pool, n_instances=1, **kw) -> indices``.
        The subsample (see ``subsample``) is drawn here, before any row is
        copied, and the strategy gets only those rows; a strategy whose
        signature names ``random_state`` gets the query's
        ``numpy.random.Generator``, from which that subsample was drawn (so
        a registered strategy picks exactly the items it would pick drawing
        the subsample itself).
    n_initial : int or None, default=None
        Size of the initial labeled set; None means ``query_size`` (the
        study's rule). The set depends only on ``random_state``, the pool and
        ``initial_strategy``, so every method gets the same one for the same seed.
    initial_strategy : str or callable, default='random'
        How the initial set is chosen, with no labels and no model: a name
        registered in :data:`skal.query.INITIAL_STRATEGIES` (``'random'``,
        the study's rule; ``'typiclust'`` or ``'probcover'`` on self-supervised
        features, see :mod:`skal.query.cold_start`), or a callable
        ``strategy(None, X, n_instances=n_initial, random_state=rng, **kw)``;
        ``n_classes`` is passed when its signature names it.
    query_size : int, default=100
        Items labeled per query (the per-cycle budget).
    n_cycles : int, default=10
        Number of trainings (and evaluations). Queries happen between
        trainings, so ``n_cycles - 1`` of them: the last model was trained on
        ``n_initial + (n_cycles - 1) * query_size`` items.
        When ``X`` holds fewer items than that, the run is clamped to the
        pool, with a :class:`skal.exceptions.BudgetWarning`: at most
        ``len(X)`` initial items, a last query of whatever is left, and as
        many cycles as the pool allows.
    subsample : None, int or 'paper', default=None
        How many unlabeled items each query scores: all, a random subset of
        that many, or the study's rule ``min(20000, max(pool // 2, 10 *
        query_size))``. The study's SCAL scores the whole pool: the presets
        give it None.
    warm_start : bool, default=True
        Set on an estimator that has this parameter and knows the task's
        classes up front (a ``classes`` parameter, as skal's networks have):
        True continues training from the previous cycle's weights, as the
        study does; False retrains from fresh weights each cycle. Other
        estimators keep their own ``warm_start`` (a scikit-learn classifier
        sized by the labels it was trained on cannot continue once a query
        brings a new class).
    random_state : int, RandomState or None, default=None
        Seeds the initial set and each query; cycle ``c``'s query seed is
        derived from ``(random_state, c)`` alone (``np.random.SeedSequence``),
        so a resumed run replays it. When the estimator has a
        ``random_state`` parameter left at None, it gets a seed derived from
        this one too. None draws fresh OS entropy at ``fit`` (the meaning of
        None everywhere in skal, see :mod:`skal._random`), kept in the
        checkpoint, so even such a run resumes exactly.
    query_params : dict or None, default=None
        Extra keyword arguments of the strategy (its own options).
    final_cycle_params : dict or None, default=None
        Set on the estimator with ``set_params`` before the last cycle's
        training. The study's SCAL trains its last cycle on the whole labeled
        set: ``{'trim_size': 0}``.
    task : str, DatasetInfo or None, default=None
        medmnist task (or flag) deciding how ACC and AUC are computed on the
        evaluation set; None infers it from ``y`` (see
        :func:`skal.metrics.infer_task`).
    keep_models : bool, default=False
        Keep a copy of each cycle's model (the network's weights, on the CPU)
        so that :meth:`staged_predict_proba` and the budget-curve scorers
        (:func:`skal.metrics.make_budget_curve_scorer`) can replay the whole
        curve on new data, e.g. a cross-validation test fold. Costs one
        model's weights per cycle (45 MB for ResNet-18).
    checkpoint_dir : str, path-like or None, default=None
        When set, a :class:`skal.callbacks.Checkpoint` writes the state after
        every cycle (the fitted estimator pickled, the labeled indices, the
        learning curve, the cycle number) atomically to
        ``checkpoint_dir/checkpoint.pkl``. A later ``fit`` with the same data
        and parameters resumes after the last completed cycle (a finished run
        is loaded, not recomputed); other data or parameters raise
        :class:`CheckpointMismatchError`. Parameters that only change
        reporting (``callbacks``, ``verbose``, the estimator's ``verbose`` and
        its callbacks marked ``affects_results = False``) may differ.
    callbacks : list of skal.callbacks.Callback or None, default=None
        Per-cycle side effects (result files, progress bars...), run in order
        after the ones this estimator's parameters ask for (``keep_models``,
        ``checkpoint_dir``, ``verbose``). ``on_cycle_end`` is called after
        every cycle computed by this ``fit`` (after its checkpoint is
        written); cycles loaded from a checkpoint are not reported again.
        See :mod:`skal.callbacks`.
    verbose : int, default=0
        1 prints one line per cycle (:class:`skal.callbacks.PrintCycle`).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        The task's classes in the user's labels, sorted: the ones the
        estimator declares (its ``classes``, or ``arange(n_classes)``), else
        every label of ``y`` (the oracle knows them all, even when the first
        labeled set misses one). ``predict_proba``'s columns follow it. For
        multi-label ``y`` (N, L): ``arange(L)``.
    n_features_in_ : int
        ``X.shape[1]`` seen in ``fit`` (scikit-learn's convention; the image
        height for image arrays).
    estimator_ : classifier
        The final model (trained in the last cycle).
    learner_ : modAL.models.ActiveLearner
        The learner around ``estimator_``; ``learner_.X_training`` is the
        labeled set in the order it was labeled.
    learning_curve_ : list of dict
        One record per cycle, in order, with keys ``cycle`` (1-based),
        ``n_labeled`` (items trained on), ``train_seconds``,
        ``query_seconds``, ``query_cpu_seconds`` (the process's CPU time,
        all threads) and ``queried`` (list of int: indices into ``X``
        queried after this cycle's training and labeled for the next; empty
        and 0.0 after the last training), plus ``acc``, ``auc``,
        ``test_loss`` (:func:`~skal.metrics.cross_entropy`) and
        ``balanced_acc`` (:func:`~skal.metrics.balanced_accuracy`, from the
        predictions ``acc`` counts) on the evaluation set when one was given
        (:func:`~skal.metrics.curve_metrics`, with the labels encoded as
        positions in ``classes_``, as medmnist's evaluator takes them).
    labeled_indices_ : ndarray of shape (n_labeled,), int64
        Indices into ``X`` of the final labeled set, in labeling order
        (the initial set first).
    initial_indices_ : ndarray of shape (n_initial,), int64
    n_resumed_cycles_ : int
        Cycles loaded from ``checkpoint_dir`` instead of computed (0 for a
        fresh run, ``n_cycles`` for a finished run loaded from disk).
    task_ : str
        The medmnist task the evaluation used.
    cycle_models_ : list
        With ``keep_models``: one snapshot per cycle (see :meth:`staged_predict_proba`).
    entropy_ : int
        The run's seed material: ``random_state`` itself, or the entropy
        drawn for it (kept in the checkpoint, so a resumed run replays it).

    Examples
    --------
    >>> from skal.estimator import ImageClassifier
    >>> from skal.experiment import ActiveLearningClassifier
    >>> net = ImageClassifier("small_cnn", n_classes=2, n_channels=1, max_epochs=1,
    ...                       random_state=0)
    >>> al = ActiveLearningClassifier(net, "random", query_size=20, n_cycles=3,
    ...                               random_state=0)
    >>> al.fit(X_train, y_train, X_eval=X_test, y_eval=y_test)  # doctest: +SKIP
    >>> [(r["n_labeled"], round(r["acc"], 3)) for r in al.learning_curve_]  # doctest: +SKIP
    [(20, 0.731), (40, 0.744), (60, 0.763)]
    """

    _parameter_constraints = {
        "estimator": [HasMethods(["fit", "predict"])],
        "query_strategy": [StrOptions(set(STRATEGIES)), callable],
        # The rules of the budget and the cycles: skal.settings.RULES.
        "n_initial": [*RULES["budget"].constraints, None],
        "initial_strategy": [StrOptions(set(INITIAL_STRATEGIES)), callable],
        "query_size": RULES["budget"].constraints,
        "n_cycles": RULES["cycles"].constraints,
        "subsample": [Interval(Integral, 1, None, closed="left"), StrOptions({"paper"}), None],
        "warm_start": ["boolean"],
        "random_state": ["random_state"],
        "query_params": [dict, None],
        "final_cycle_params": [dict, None],
        "task": [str, DatasetInfo, None],
        "keep_models": ["boolean"],
        "checkpoint_dir": [str, os.PathLike, None],
        "callbacks": [list, tuple, None],
        "verbose": ["verbose"],
    }

    def __init__(self, estimator, query_strategy="random", *, n_initial=None,
                 initial_strategy="random", query_size=100,
                 n_cycles=10, subsample=None, warm_start=True, random_state=None,
                 query_params=None, final_cycle_params=None, task=None, keep_models=False,
                 checkpoint_dir=None, callbacks=None, verbose=0):
        self.estimator = estimator
        self.query_strategy = query_strategy
        self.n_initial = n_initial
        self.initial_strategy = initial_strategy
        self.query_size = query_size
        self.n_cycles = n_cycles
        self.subsample = subsample
        self.warm_start = warm_start
        self.random_state = random_state
        self.query_params = query_params
        self.final_cycle_params = final_cycle_params
        self.task = task
        self.keep_models = keep_models
        self.checkpoint_dir = checkpoint_dir
        self.callbacks = callbacks
        self.verbose = verbose

    # -- validation ------------------------------------------------------------
    def _validate_params(self):
        # scikit-learn's declared constraints; the error is also an
        # ExperimentConfigError, so the command line reports it as a setting.
        try:
            super()._validate_params()
        except InvalidParameterError as exc:
            raise ExperimentParameterError(str(exc)) from None

    def _check_params(self, n_samples, y):
        """The checks no declaration can make (they involve X, y or the estimator);
        return (strategy, n_initial, n_cycles), the last two clamped to the pool."""
        n_initial = self.query_size if self.n_initial is None else self.n_initial
        n_cycles = self.n_cycles
        needed = n_initial + (n_cycles - 1) * self.query_size
        if needed > n_samples:
            # The documented clamp: label what the pool holds, in fewer cycles.
            n_initial = min(n_initial, n_samples)
            n_cycles = min(n_cycles, 1 + -(-(n_samples - n_initial) // self.query_size))
            warnings.warn(BudgetWarning(
                f"The budget exceeds the pool: n_initial + (n_cycles - 1) * query_size = "
                f"{self.n_initial or self.query_size} + ({self.n_cycles} - 1) * "
                f"{self.query_size} = {needed} items must be labeled, but X holds only "
                f"n_samples={n_samples}; running {n_cycles} cycle(s) from {n_initial} "
                f"initial items until the pool is used up."), stacklevel=4)
        if isinstance(self.subsample, Integral) and self.subsample < self.query_size:
            raise ExperimentConfigError(
                f"subsample={self.subsample} scores fewer items than a query selects "
                f"(query_size={self.query_size}).")
        if self.final_cycle_params:
            unknown = sorted(set(self.final_cycle_params) - set(self.estimator.get_params()))
            if unknown:
                raise ExperimentConfigError(
                    f"final_cycle_params names {unknown}, which "
                    f"{type(self.estimator).__name__} does not have.")
        try:
            strategy = get_query_strategy(self.query_strategy)
            check_requirements(self.query_strategy, self.estimator, y)
        except ValueError as exc:  # an unmet need: the message says which
            raise ExperimentConfigError(str(exc)) from None
        return strategy, int(n_initial), int(n_cycles)

    def _check_pool(self, X, y):
        """X and y as scikit-learn validates a classifier's input (sets ``n_features_in_``).

        Images stay as they are (uint8, any number of dimensions: ``allow_nd``);
        sparse, complex, object-string, NaN or infinite X, 1-D X, and
        continuous y are refused with scikit-learn's messages.
        """
        X, y = validate_data(self, X, y, accept_sparse=False, dtype="numeric", allow_nd=True,
                             multi_output=True)
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)  # medmnist's (N, 1) labels
        check_classification_targets(y)
        return X, y

    def _check_eval(self, X_eval, y_eval):
        """The evaluation set, validated like the pool; y_eval as positions in classes_."""
        if (X_eval is None) != (y_eval is None):
            raise ExperimentConfigError("X_eval and y_eval must be given together.")
        if X_eval is None:
            return None, None
        X_eval = validate_data(self, X_eval, reset=False, accept_sparse=False,
                               dtype="numeric", allow_nd=True)
        y_eval = np.asarray(y_eval)
        if len(y_eval) != len(X_eval):
            raise ExperimentConfigError(
                f"X_eval and y_eval have different lengths: {len(X_eval)} and {len(y_eval)}.")
        try:
            return X_eval, encode_targets(y_eval, self.classes_, self.task_, "y_eval")
        except ValueError as exc:
            raise ExperimentConfigError(str(exc)) from None

    def _task_classes(self, y):
        """The task's classes (see ``classes_``); labels outside declared classes raise."""
        if y.ndim == 2:
            return np.arange(y.shape[1])
        net = final_step(self.estimator)
        params = net.get_params(deep=False) if hasattr(net, "get_params") else {}
        declared = None
        if params.get("classes") is not None or params.get("n_classes") is not None:
            declared = check_classes(params.get("classes"), params.get("n_classes"))
        classes = unique_labels(y) if declared is None else declared
        if len(classes) < 2:
            raise ExperimentConfigError(
                f"y holds one class only ({classes.tolist()}); a classification experiment "
                f"needs at least 2 classes.")
        encode_labels(y, classes)  # raises for labels the estimator does not declare
        return classes

    # -- estimator set-up ------------------------------------------------------
    def _prepare_estimator(self, entropy, y):
        estimator = clone(self.estimator)
        params = estimator.get_params()
        net = final_step(estimator)
        prefix = f"{estimator.steps[-1][0]}__" if net is not estimator else ""
        updates = {}
        # Only an estimator that knows every class up front (skal's networks take
        # `classes`) can continue across cycles: a scikit-learn classifier sized
        # by its training labels (LogisticRegression...) fails to warm-start once
        # a query brings a class it has not seen, so it refits each cycle.
        if f"{prefix}warm_start" in params and f"{prefix}classes" in params:
            updates[f"{prefix}warm_start"] = bool(self.warm_start)
        if f"{prefix}random_state" in params and params[f"{prefix}random_state"] is None:
            updates[f"{prefix}random_state"] = _cycle_seed(entropy, 0, _ESTIMATOR)
        # The oracle knows every class; the initial set may miss one, and a
        # network sized from it could not learn a class queried later.
        if y.ndim == 2:
            if params.get(f"{prefix}n_classes", 0) is None:
                updates[f"{prefix}n_classes"] = int(y.shape[1])
        elif (params.get(f"{prefix}classes", 0) is None
              and params.get(f"{prefix}n_classes") is None):
            updates[f"{prefix}classes"] = self.classes_
        return estimator.set_params(**updates)

    # -- the loop --------------------------------------------------------------
    @_fit_context(prefer_skip_nested_validation=False)  # the estimator's own params too
    def fit(self, X, y, X_eval=None, y_eval=None):
        """Run the active-learning experiment with ``y`` as the oracle.

        Parameters
        ----------
        X : ndarray of shape (N, H, W) or (N, H, W, C), uint8
            The pool, as MedMNIST stores images (or any layout the estimator
            takes). Indices in ``learning_curve_`` and ``labeled_indices_``
            point into it.
        y : ndarray of shape (N,) or (N, 1) int, or (N, L) 0/1 for multi-label
            The oracle's labels; only labeled items' labels reach the estimator.
        X_eval, y_eval : arrays like X and y, optional
            Evaluated after every training (ACC and AUC in ``learning_curve_``).

        Returns
        -------
        self

        Raises
        ------
        ExperimentConfigError
            (a ``ValueError``) Bad parameters, a budget larger than the pool,
            an unknown strategy or one the estimator cannot serve; all before
            any training.
        CheckpointMismatchError
            (an ``ExperimentConfigError``) ``checkpoint_dir`` holds a run made
            with other data or parameters.
        """
        X, y = self._check_pool(X, y)
        self.classes_ = self._task_classes(y)
        try:
            self.task_ = (resolve_task(self.task) if self.task is not None else
                          infer_task(y, len(self.classes_)))
        except ValueError as exc:
            raise ExperimentConfigError(str(exc)) from None
        # The one encoding of labels for the metrics (y itself reaches the
        # estimator as given: it knows classes_ and decodes its predictions).
        X_eval, y_eval = self._check_eval(X_eval, y_eval)
        strategy, n_initial, n_cycles = self._check_params(len(X), y)

        callbacks = self._initialize_callbacks()
        state = None
        for callback in callbacks:  # a Checkpoint returns the run it restores
            restored = callback.on_fit_begin(self, X=X, y=y, X_eval=X_eval, y_eval=y_eval)
            if restored is not None:
                state = restored
        self.entropy_ = state["entropy"] if state else check_seed(self.random_state)

        if state:
            estimator = state["estimator"]
            labeled = np.asarray(state["labeled_indices"], dtype=np.int64)
            pending = np.asarray(state["pending"], dtype=np.int64)
            curve = list(state["learning_curve"])
            snapshots = list(state["cycle_models"])
        else:
            estimator = self._prepare_estimator(self.entropy_, y)
            labeled = self._initial(X, n_initial)  # in pick order, not sorted
            pending = np.empty(0, dtype=np.int64)
            curve, snapshots = [], []
        self.initial_indices_ = labeled[:n_initial].copy()  # labeling order: initial set first
        self.n_resumed_cycles_ = len(curve)
        self.estimator_ = estimator
        self.learner_ = ActiveLearner(estimator=estimator, query_strategy=strategy)
        if curve:
            # modAL's labeled set, rebuilt without training (the model is loaded).
            self.learner_.X_training, self.learner_.y_training = X[labeled], y[labeled]
        self.learning_curve_ = curve
        self.cycle_models_ = snapshots
        self.labeled_indices_ = labeled

        for cycle in range(len(curve), n_cycles):
            last = cycle == n_cycles - 1
            if last and self.final_cycle_params:
                estimator.set_params(**self.final_cycle_params)

            start = time.perf_counter()
            if cycle == 0:
                self.learner_.fit(X[labeled], y[labeled])
            else:
                self.learner_.teach(X[pending], y[pending])
                labeled = np.concatenate([labeled, pending])
            record = {"cycle": cycle + 1, "n_labeled": int(len(labeled)),
                      "train_seconds": time.perf_counter() - start}
            if X_eval is not None:
                record.update(curve_metrics(y_eval, self._proba(estimator, X_eval), self.task_))

            pending = np.empty(0, dtype=np.int64)
            start, cpu_start = time.perf_counter(), time.process_time()
            if not last:
                pending = self._query(strategy, X, labeled, cycle, self.entropy_)
            record["query_seconds"] = time.perf_counter() - start if not last else 0.0
            record["query_cpu_seconds"] = time.process_time() - cpu_start if not last else 0.0
            record["queried"] = pending.tolist()

            curve.append(record)
            self.labeled_indices_ = labeled
            for callback in callbacks:
                callback.on_cycle_end(self, dict(record))
        for callback in callbacks:
            callback.on_fit_end(self)
        return self

    def _initialize_callbacks(self):
        """The default callbacks this run's parameters ask for, then ``callbacks``, in order.

        Model snapshots come before the checkpoint, which saves them.
        """
        defaults = []
        if self.keep_models:
            defaults.append(KeepModels())
        if self.checkpoint_dir is not None:
            defaults.append(Checkpoint(self.checkpoint_dir))
        if self.verbose:
            defaults.append(PrintCycle())
        extra = self.callbacks if self.callbacks is not None else []  # a list: declared
        for callback in extra:
            if not all(callable(getattr(callback, hook, None))
                       for hook in ("on_fit_begin", "on_cycle_end", "on_fit_end")):
                raise ExperimentConfigError(
                    f"callbacks must hold skal.callbacks.Callback objects; {callback!r} lacks "
                    f"on_fit_begin, on_cycle_end or on_fit_end (subclass Callback).")
        return defaults + list(extra)

    def _initial(self, X, n_initial):
        """Indices into X of the initial set, from ``initial_strategy`` (no labels, no model).

        Its generator is the initial set's stream alone; ``'random'`` takes the
        first ``n_initial`` of its permutation of the pool, as every run has.
        """
        strategy = get_initial_strategy(self.initial_strategy)
        kwargs = {"random_state": np.random.default_rng(_cycle_seed(self.entropy_, 0, _INITIAL))}
        if "n_classes" in _named_parameters(strategy):  # ProbCover's purity needs it
            kwargs["n_classes"] = len(self.classes_)
        chosen = np.asarray(strategy(None, X, n_instances=n_initial, **kwargs)).reshape(-1)
        if (len(chosen) != n_initial or not np.issubdtype(chosen.dtype, np.integer)
                or len(np.unique(chosen)) != n_initial or chosen.min() < 0
                or chosen.max() >= len(X)):
            raise RuntimeError(
                f"The initial strategy returned {chosen!r}; it must return {n_initial} "
                f"distinct integer indices into the pool of {len(X)} items.")
        return chosen.astype(np.int64)

    def _query(self, strategy, X, labeled, cycle, entropy):
        """Indices into X of the next ``query_size`` items, from the unlabeled rest.

        The subsample is drawn here, first, so only the rows scored are
        copied out of ``X``. It comes from the query's generator, which the
        strategy then goes on drawing from: the indices are those the
        strategy gives when it draws the subsample itself.
        """
        mask = np.ones(len(X), dtype=bool)
        mask[labeled] = False
        unlabeled = np.flatnonzero(mask)  # indices into X of the pool
        kwargs = dict(self.query_params or {})
        accepted = _named_parameters(strategy)
        # The strategy's own options (query_params) win over the experiment's.
        subsample = kwargs.pop("subsample", self.subsample)
        rng = check_generator(kwargs.get("random_state", _cycle_seed(entropy, cycle, _QUERY)))
        if "random_state" in accepted:
            kwargs["random_state"] = rng
        n_instances = min(self.query_size, len(unlabeled))  # the clamp: what is left
        positions = draw_subsample(len(unlabeled), n_instances, subsample, rng)
        scored = unlabeled if positions is None else unlabeled[positions]  # indices into X
        chosen, _ = self.learner_.query(X[scored], n_instances=n_instances, **kwargs)
        chosen = np.asarray(chosen).reshape(-1)
        if (len(chosen) != n_instances or not np.issubdtype(chosen.dtype, np.integer)
                or len(np.unique(chosen)) != len(chosen) or chosen.min() < 0
                or chosen.max() >= len(scored)):
            raise RuntimeError(
                f"The query strategy returned {chosen!r}; it must return {n_instances} "
                f"distinct integer indices into the pool of {len(scored)} items.")
        return scored[chosen].astype(np.int64)

    # -- the fitted model ------------------------------------------------------
    def _check_X(self, X):
        """X validated as in ``fit``, against the pool's ``n_features_in_``."""
        check_is_fitted(self, "estimator_")
        return validate_data(self, X, reset=False, accept_sparse=False, dtype="numeric",
                             allow_nd=True)

    def _proba(self, model, X):
        """``model.predict_proba(X)`` with one column per class of ``classes_``.

        A scikit-learn classifier knows only the classes it was trained on,
        which can be fewer than the task's; their columns go to their place
        and the others are 0.
        """
        proba = model.predict_proba(X)
        model_classes = getattr(final_step(model), "classes_", None)
        if model_classes is None or proba.shape[1] == len(self.classes_):
            return proba
        full = np.zeros((len(proba), len(self.classes_)), dtype=proba.dtype)
        full[:, encode_labels(np.asarray(model_classes), self.classes_, "classes_")] = proba
        return full

    def predict(self, X):
        """The final model's predictions, in the labels of ``y``.

        Parameters
        ----------
        X : array-like of shape (N, ...), as the estimator takes it

        Returns
        -------
        ndarray of shape (N,) labels (of ``classes_``), or (N, L) 0/1 for a
        multi-label model
        """
        X = self._check_X(X)
        return self.estimator_.predict(X)

    def predict_proba(self, X):
        """The final model's probabilities, one column per class of ``classes_``.

        Parameters
        ----------
        X : array-like of shape (N, ...), as the estimator takes it

        Returns
        -------
        ndarray of shape (N, n_classes), float (float32 for skal's classifiers)
        """
        X = self._check_X(X)
        return self._proba(self.estimator_, X)

    def staged_predict_proba(self, X):
        """Probabilities of each cycle's model, in cycle order.

        Needs ``keep_models=True``.

        Parameters
        ----------
        X : array like the pool

        Yields
        ------
        proba : ndarray of shape (N, C), float
            One per cycle.
        """
        X = self._check_X(X)
        if not self.keep_models or len(self.cycle_models_) != len(self.learning_curve_):
            raise NotFittedError(
                "staged_predict_proba needs each cycle's model: fit with keep_models=True.")
        replay = None
        for snapshot in self.cycle_models_:
            if isinstance(snapshot, dict):  # a torch state_dict: load it into one copy
                if replay is None:
                    replay = copy.deepcopy(self.estimator_)
                final_step(replay).module_.load_state_dict(snapshot)
                yield self._proba(replay, X)
            else:
                yield self._proba(snapshot, X)

    def budget_curve_area(self, metric="acc"):
        """Normalised area under this run's evaluation curve.

        See :func:`skal.metrics.budget_curve_area`; the curve is the one
        measured on ``(X_eval, y_eval)`` during ``fit``.

        Parameters
        ----------
        metric : {'acc', 'auc', 'test_loss', 'balanced_acc'}
            A figure of :func:`skal.metrics.curve_metrics`.

        Returns
        -------
        float
        """
        check_is_fitted(self, "estimator_")
        if metric not in CURVE_METRICS:
            raise ValueError(f"metric must be one of {list(CURVE_METRICS)}, got {metric!r}.")
        if not self.learning_curve_ or metric not in self.learning_curve_[0]:
            raise ValueError("The curve has no evaluation: fit with X_eval and y_eval.")
        return budget_curve_area([r["n_labeled"] for r in self.learning_curve_],
                                 [r[metric] for r in self.learning_curve_])


def _named_parameters(func):
    try:
        return set(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return set()
