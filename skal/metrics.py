"""Evaluation metrics: MedMNIST's ACC and AUC, and the area under a budget curve.

ACC and AUC are computed by medmnist's own functions
(:func:`medmnist.evaluator.getACC`, :func:`medmnist.evaluator.getAUC`), so
skal's figures are the ones ``medmnist.Evaluator`` reports for the same
predictions; this module only resolves the task and handles the cases where
AUC is undefined.

The task decides the semantics, as in medmnist:

- ``'multi-class'`` and ``'ordinal-regression'``: ACC of the arg-max class;
  AUC is the mean over classes of one-vs-rest AUC.
- ``'binary-class'``: ACC thresholds the last column at 0.5; AUC of the last column.
- ``'multi-label, binary-class'`` (chestmnist): ACC and AUC are means over
  labels, ACC thresholding each label's score at 0.5.

Examples
--------
>>> import numpy as np
>>> from skal.metrics import evaluate
>>> y = np.array([0, 1, 1, 0])
>>> proba = np.array([[.9, .1], [.2, .8], [.6, .4], [.3, .7]])
>>> evaluate(y, proba, "binary-class")
Metrics(AUC=0.75, ACC=0.5)
"""

from __future__ import annotations

import warnings

import numpy as np
from medmnist.evaluator import Metrics, getACC, getAUC
from sklearn.metrics import balanced_accuracy_score, log_loss

from skal.validation import encode_labels

__all__ = [
    "TASKS",
    "Metrics",
    "accuracy",
    "auc",
    "balanced_accuracy",
    "CURVE_METRICS",
    "cross_entropy",
    "curve_metrics",
    "encode_targets",
    "evaluate",
    "predicted_classes",
    "infer_task",
    "resolve_task",
    "budget_curve_area",
    "budget_curve_scorer",
    "make_budget_curve_scorer",
]

#: medmnist's task strings, as ``medmnist.INFO[flag]['task']`` spells them.
TASKS = ("multi-class", "binary-class", "ordinal-regression", "multi-label, binary-class")


def resolve_task(task):
    """Turn a task, a dataset flag or a :class:`~skal.data.DatasetInfo` into a medmnist task string.

    Parameters
    ----------
    task : str or DatasetInfo
        One of :data:`TASKS`, a MedMNIST 2D flag such as ``'chestmnist'``, or
        an object with a ``task`` attribute.

    Returns
    -------
    task : str
        One of :data:`TASKS`.

    Raises
    ------
    ValueError
        Neither a task nor a known flag; the message lists the tasks.
    """
    if hasattr(task, "task"):
        task = task.task
    if task in TASKS:
        return task
    if isinstance(task, str):
        from skal.data import FLAGS_2D, dataset_info  # data knows flags; metrics only tasks

        if task.strip().lower() in FLAGS_2D:
            return dataset_info(task).task
    raise ValueError(
        f"Unknown task {task!r}; use one of {', '.join(map(repr, TASKS))} or a MedMNIST 2D flag."
    )


def infer_task(y, n_classes=None):
    """Guess the medmnist task of labels ``y`` (when no dataset says it).

    Parameters
    ----------
    y : array-like of shape (N,), (N, 1) or (N, L)
        Class ids, or 0/1 indicators for multi-label.
    n_classes : int, optional
        Number of classes; by default ``max(y) + 1``.

    Returns
    -------
    task : str
        ``'multi-label, binary-class'`` for (N, L) labels with L > 1,
        ``'binary-class'`` for two classes, ``'multi-class'`` otherwise.
        Ordinal tasks score as multi-class in medmnist, so nothing is lost.
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return "multi-label, binary-class"
    if n_classes is None:
        n_classes = int(y.max()) + 1 if y.size else 0
    return "binary-class" if n_classes == 2 else "multi-class"


def encode_targets(y, classes, task, name="y"):
    """Labels as every metric here takes them: positions in the task's ``classes``.

    The metrics compare labels with the columns of ``y_score`` (medmnist's
    convention), so the user's labels -- strings, non-contiguous integers --
    are turned into column positions first. Everything that scores a fitted
    experiment on labels it was given (its evaluation set, the budget-curve
    scorers) encodes them with this function and the experiment's
    ``classes_``, and nothing else does.

    Parameters
    ----------
    y : array-like of shape (N,) or (N, 1), or (N, L) 0/1 for a multi-label task
        Labels in the user's terms, all among ``classes``.
    classes : ndarray of shape (C,)
        The task's classes, sorted (``ActiveLearningClassifier.classes_``): the
        order of ``y_score``'s columns. For a multi-label task ``arange(L)``.
    task : str or DatasetInfo
        See :func:`resolve_task`.
    name : str, default='y'
        How to call ``y`` in messages.

    Returns
    -------
    ndarray of shape (N,) int64 in ``[0, C)``, or (N, L) int64 0/1 for a multi-label task

    Raises
    ------
    ValueError
        Labels outside ``classes`` (named), or a shape that does not fit the task.

    Examples
    --------
    >>> encode_targets(["dog", "cat", "dog"], np.array(["cat", "dog"]), "binary-class")
    array([1, 0, 1])
    """
    y = np.asarray(y)
    classes = np.asarray(classes)
    if resolve_task(task).startswith("multi-label"):
        if y.ndim != 2 or y.shape[1] != len(classes) or not np.isin(y, (0, 1)).all():
            raise ValueError(
                f"{name} must be (N, {len(classes)}) 0/1 label columns for this multi-label "
                f"task; got shape {y.shape}.")
        return y.astype(np.int64)
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]  # medmnist's (N, 1) labels
    if y.ndim != 1:
        raise ValueError(f"{name} must hold one label per item, shape (N,); got shape {y.shape}.")
    return encode_labels(y, classes, name)


def _as_arrays(y_true, y_score):
    y_true = np.asarray(y_true)
    y_score = np.asarray(y_score, dtype=np.float64)
    if len(y_true) != len(y_score):
        raise ValueError(
            f"y_true and y_score have different lengths: {len(y_true)} and {len(y_score)}."
        )
    if len(y_true) < 2:
        # medmnist squeezes its inputs, which breaks the shapes of a single item.
        raise ValueError("At least two items are needed to evaluate ACC and AUC.")
    return y_true, y_score


def accuracy(y_true, y_score, task, threshold=0.5):
    """ACC as medmnist computes it (:func:`medmnist.evaluator.getACC`).

    Parameters
    ----------
    y_true : array-like of int, shape (N,), (N, 1) or (N, L)
        Class ids, or (N, L) 0/1 indicators for multi-label.
    y_score : array-like of float, shape (N, C) or (N, L)
        Predicted probabilities (softmax per class, or sigmoid per label).
    task : str or DatasetInfo
        See :func:`resolve_task`.
    threshold : float, default=0.5
        For binary and multi-label tasks.

    Returns
    -------
    acc : float
    """
    y_true, y_score = _as_arrays(y_true, y_score)
    return float(getACC(y_true, y_score, resolve_task(task), threshold=threshold))


def predicted_classes(y_score, task, threshold=0.5):
    """The predictions medmnist's ACC counts, as encoded labels.

    :func:`medmnist.evaluator.getACC` thresholds and takes the arg-max inside
    and returns only the rate; this is its rule, so figures computed from
    predictions (:func:`balanced_accuracy`) count the same predictions as ACC
    (a test holds the two to agreeing).

    Parameters
    ----------
    y_score : array-like of float, shape (N, C) or (N, L)
        Predicted probabilities.
    task : str or DatasetInfo
    threshold : float, default=0.5
        For binary and multi-label tasks.

    Returns
    -------
    ndarray of shape (N,) int64 in ``[0, C)``, or (N, L) int64 0/1 for multi-label
        Binary: 1 where the last column exceeds ``threshold``; multi-class and
        ordinal: the arg-max column; multi-label: each label's score above ``threshold``.
    """
    y_score = np.asarray(y_score, dtype=np.float64)
    task = resolve_task(task)
    if task.startswith("multi-label"):
        return (y_score > threshold).astype(np.int64)
    if task == "binary-class":
        positive = y_score[:, -1] if y_score.ndim == 2 else y_score
        return (positive > threshold).astype(np.int64)
    return y_score.argmax(axis=1).astype(np.int64)


def balanced_accuracy(y_true, y_score, task, threshold=0.5):
    """Mean per-class recall of the predictions ACC counts.

    ACC rewards a model that always guesses the majority class (73 % of
    breastmnist's test split); balanced accuracy gives it ``1 / C``. Computed
    by :func:`sklearn.metrics.balanced_accuracy_score` on
    :func:`predicted_classes`, so from the same predictions as
    :func:`accuracy`. For multi-label tasks, as medmnist's ACC averages
    per-label accuracy, the mean over labels of each label's balanced accuracy.

    Parameters
    ----------
    y_true : array-like of int, shape (N,), (N, 1) or (N, L)
        Encoded labels (see :func:`encode_targets`).
    y_score : array-like of float, shape (N, C) or (N, L)
    task : str or DatasetInfo
    threshold : float, default=0.5

    Returns
    -------
    balanced_acc : float
        The mean recall over the classes present in ``y_true``
        (scikit-learn's definition).

    Examples
    --------
    >>> y = [0, 0, 0, 1]  # a model that always says 0: ACC 0.75
    >>> balanced_accuracy(y, [[.9, .1]] * 4, "binary-class")
    0.5
    """
    y_true, y_score = _as_arrays(y_true, y_score)
    predicted = predicted_classes(y_score, task, threshold)
    if predicted.ndim == 2:  # multi-label
        return float(np.mean([balanced_accuracy_score(y_true[:, k], predicted[:, k])
                              for k in range(y_true.shape[1])]))
    return float(balanced_accuracy_score(y_true.reshape(len(y_true)), predicted))


def auc(y_true, y_score, task, undefined="nan"):
    """AUC as medmnist computes it (:func:`medmnist.evaluator.getAUC`).

    Parameters
    ----------
    y_true : array-like of int, shape (N,), (N, 1) or (N, L)
    y_score : array-like of float, shape (N, C) or (N, L)
    task : str or DatasetInfo
    undefined : {'nan', 'raise'}, default='nan'
        What to do when AUC is undefined, i.e. a class (or label) of
        ``y_true`` has only positives or only negatives, as happens on tiny
        evaluation sets: NaN with a ``RuntimeWarning`` (for multi-class, the
        mean over classes is then NaN too), or a ``ValueError``.

    Returns
    -------
    auc : float
    """
    if undefined not in ("nan", "raise"):
        raise ValueError(f"undefined must be 'nan' or 'raise', got {undefined!r}.")
    y_true, y_score = _as_arrays(y_true, y_score)
    task = resolve_task(task)
    with warnings.catch_warnings(record=True) as caught:
        # scikit-learn >= 1.6 warns and returns NaN where older versions raised.
        warnings.simplefilter("always")
        try:
            value, reason = float(getAUC(y_true, y_score, task)), None
        except ValueError as exc:
            value, reason = float("nan"), str(exc)
    if reason is None and np.isnan(value):
        reason = (str(caught[0].message) if caught else
                  "a class has only positives or only negatives")
    if reason is None:
        for w in caught:  # pass on anything unrelated
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
        return value
    if undefined == "raise":
        raise ValueError(f"AUC is undefined on these labels: {reason}")
    warnings.warn(f"AUC is undefined on these labels ({reason}); reporting NaN.",
                  RuntimeWarning, stacklevel=2)
    return value


def evaluate(y_true, y_score, task, undefined="nan"):
    """Both of medmnist's figures, as ``medmnist.Evaluator.evaluate`` returns them.

    Parameters
    ----------
    y_true : array-like of int, shape (N,), (N, 1) or (N, L)
    y_score : array-like of float, shape (N, C) or (N, L)
    task : str or DatasetInfo
    undefined : {'nan', 'raise'}, default='nan'
        See :func:`auc`.

    Returns
    -------
    metrics : Metrics
        medmnist's named tuple ``(AUC, ACC)`` of floats.
    """
    return Metrics(auc(y_true, y_score, task, undefined=undefined),
                   accuracy(y_true, y_score, task))


def cross_entropy(y_true, y_score, task):
    """Mean cross-entropy of predicted probabilities: the study's ``test_loss``.

    The study reports its training criterion on the evaluation split:
    ``CrossEntropyLoss`` (mean over items) for single-label tasks and
    ``BCEWithLogitsLoss`` (mean over items and labels) for multi-label ones.
    From probabilities these are scikit-learn's :func:`~sklearn.metrics.log_loss`
    over the task's classes, and log-loss over every (item, label) pair.

    Parameters
    ----------
    y_true : array-like of int, shape (N,), (N, 1) or (N, L)
        Class ids in ``[0, C)``, or (N, L) 0/1 indicators for multi-label.
    y_score : array-like of float, shape (N, C) or (N, L)
        Predicted probabilities (softmax per class, or sigmoid per label).
    task : str or DatasetInfo
        See :func:`resolve_task`.

    Returns
    -------
    loss : float
        In nats; probabilities of 0 or 1 are clipped by scikit-learn, so it is finite.

    Examples
    --------
    >>> round(cross_entropy([0, 1], [[.5, .5], [.25, .75]], "binary-class"), 4)
    0.4904
    """
    y_true, y_score = _as_arrays(y_true, y_score)
    if resolve_task(task).startswith("multi-label"):
        # A 1-D y_pred is the positive class's probability: mean BCE over all pairs.
        return float(log_loss(y_true.ravel(), y_score.ravel(), labels=[0, 1]))
    # float32 softmax rows sum to 1 only within float32 rounding, which log_loss
    # (checking in float64) warns about: renormalise, a no-op otherwise.
    y_score = y_score / y_score.sum(axis=1, keepdims=True)
    # The task's labels, not those present: a small split may miss a class.
    return float(log_loss(y_true.ravel(), y_score, labels=np.arange(y_score.shape[1])))


#: The figures of every evaluated cycle, as :func:`curve_metrics` names them (the keys
#: of ``ActiveLearningClassifier.learning_curve_`` records and result-file columns).
CURVE_METRICS = ("acc", "auc", "test_loss", "balanced_acc")


def curve_metrics(y_true, y_score, task):
    """Every figure of one evaluated cycle, from one set of probabilities.

    The one function that fills a learning-curve record: the experiment calls
    it after each training, and the result files copy its numbers.

    Parameters
    ----------
    y_true : array-like of int, shape (N,), (N, 1) or (N, L)
        Encoded labels (see :func:`encode_targets`).
    y_score : array-like of float, shape (N, C) or (N, L)
        The model's probabilities, one column per class of the task.
    task : str or DatasetInfo

    Returns
    -------
    dict of str to float
        The keys of :data:`CURVE_METRICS`: ``acc`` (:func:`accuracy`), ``auc``
        (:func:`auc`, NaN when undefined), ``test_loss``
        (:func:`cross_entropy`) and ``balanced_acc`` (:func:`balanced_accuracy`).
    """
    return {"acc": accuracy(y_true, y_score, task), "auc": auc(y_true, y_score, task),
            "test_loss": cross_entropy(y_true, y_score, task),
            "balanced_acc": balanced_accuracy(y_true, y_score, task)}


def budget_curve_area(n_labeled, values):
    """Normalised area under a budget curve (a metric vs the number of labels).

    The trapezoid area under ``values`` against ``n_labeled``, divided by the
    width of the budget range, so it is the curve's mean height: in [0, 1]
    for ACC and AUC, comparable across budgets, and higher for a method that
    is better all along the way rather than only at the end.

    Parameters
    ----------
    n_labeled : array-like of int, shape (n_cycles,)
        Labeled-set size of each cycle, strictly increasing.
    values : array-like of float, shape (n_cycles,)
        The metric at each cycle.

    Returns
    -------
    area : float
        The normalised area; for a single cycle, its value. NaN when any value is.

    Examples
    --------
    >>> budget_curve_area([10, 20, 30], [0.5, 0.7, 0.7])
    0.65
    """
    x = np.asarray(n_labeled, dtype=np.float64)
    v = np.asarray(values, dtype=np.float64)
    if x.ndim != 1 or x.shape != v.shape or len(x) == 0:
        raise ValueError(
            f"n_labeled and values must be 1-D of the same non-zero length; got "
            f"shapes {x.shape} and {v.shape}."
        )
    if len(x) == 1:
        return float(v[0])
    if np.any(np.diff(x) <= 0):
        raise ValueError(f"n_labeled must be strictly increasing; got {x.tolist()}.")
    # The trapezoid rule by hand: np.trapezoid needs numpy 2, np.trapz is gone there.
    area = np.sum((v[1:] + v[:-1]) / 2 * np.diff(x))
    return float(area / (x[-1] - x[0]))


def make_budget_curve_scorer(metric="acc"):
    """A scorer of whole active-learning curves, for ``GridSearchCV`` and ``cross_val_score``.

    ``scorer(al, X, y)`` replays every cycle's model of a fitted
    :class:`~skal.experiment.ActiveLearningClassifier` on ``(X, y)`` -- in a
    cross-validation, the held-out fold -- and returns the normalised area
    under that curve (:func:`budget_curve_area`) against the cycles' labeled
    counts. A method that is good early as well as late scores higher than
    one that only catches up at the end, which a score of the final model
    cannot tell apart. The classifier must be fitted with
    ``keep_models=True`` (each cycle's weights are kept for the replay).

    ``y`` is in the user's labels, like the ``y`` of ``fit``: it is encoded
    through the fitted ``classes_`` (:func:`encode_targets`) before it meets
    the probabilities' columns, so relabelling a task (``{0, 1}``, ``{3, 8}``,
    ``{'benign', 'malignant'}`` in the same order) gives the same score.

    Parameters
    ----------
    metric : {'acc', 'auc', 'balanced_acc'}, default='acc'
        medmnist's ACC or AUC, or :func:`balanced_accuracy`, with the
        classifier's task (``al.task_``).

    Returns
    -------
    scorer : callable
        ``scorer(estimator, X, y) -> float``, greater is better. It raises a
        ``ValueError`` when ``y`` holds a label outside the estimator's
        ``classes_`` (in a cross-validation: a class missing from the
        training fold).

    Examples
    --------
    >>> from sklearn.model_selection import GridSearchCV
    >>> search = GridSearchCV(
    ...     ActiveLearningClassifier(net, keep_models=True, query_size=20, n_cycles=3),
    ...     {"query_strategy": ["random", "entropy"], "estimator__lr": [0.01, 0.1]},
    ...     scoring=make_budget_curve_scorer("acc"), cv=3)  # doctest: +SKIP
    """
    if metric not in _CURVE_SCORES:
        raise ValueError(f"metric must be one of {sorted(_CURVE_SCORES)}, got {metric!r}.")
    score = _CURVE_SCORES[metric]

    def budget_curve_score(estimator, X, y):
        try:
            y = encode_targets(y, estimator.classes_, estimator.task_)
        except ValueError as exc:
            raise ValueError(
                f"{exc} The budget-curve scorer can only score the classes the experiment "
                f"was fitted with (classes_); in a cross-validation, split with "
                f"StratifiedKFold so that every training fold holds every class.") from None
        values = [score(y, proba, estimator.task_) for proba in estimator.staged_predict_proba(X)]
        return budget_curve_area([r["n_labeled"] for r in estimator.learning_curve_], values)

    budget_curve_score.__name__ = f"budget_curve_{metric}"
    return budget_curve_score


# The figures a budget-curve scorer can score (greater is better).
_CURVE_SCORES = {"acc": accuracy, "auc": auc, "balanced_acc": balanced_accuracy}

#: :func:`make_budget_curve_scorer` with ACC.
budget_curve_scorer = make_budget_curve_scorer("acc")
