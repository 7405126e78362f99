"""Input checks shared by the estimators, the query functions and the experiment.

Each check raises a ``ValueError`` that names the problem in the user's terms
(shape, dtype, NaN, labels), before any tensor reaches torch.
"""

from __future__ import annotations

import numpy as np
from sklearn.utils.multiclass import check_classification_targets, unique_labels

__all__ = ["check_images", "check_targets", "check_classes", "encode_labels"]


def check_images(X, n_channels=None, name="X", min_size=1):
    """Validate a batch of images in MedMNIST's layout.

    Parameters
    ----------
    X : array-like of shape (N, H, W) or (N, H, W, C)
        ``uint8`` images as MedMNIST stores them, or floating images already
        scaled to [0, 1]. C must be 1 or 3.
    n_channels : int or None
        Channels the model expects. Grayscale input is accepted for a 3-channel
        model (it is repeated); colour input for a 1-channel model is an error.
    name : str
        How to call the array in messages.
    min_size : int, default=1
        Smallest height and width the network can take.

    Returns
    -------
    X : ndarray
        The same data as an ndarray (no copy when it already was one).

    Raises
    ------
    ValueError
        Wrong number of dimensions, an unsupported channel count, an empty
        array, images smaller than ``min_size``, a dtype other than uint8 or
        floating, NaN or inf values, floating values outside [0, 1].
    """
    X = np.asarray(X)
    if X.ndim not in (3, 4):
        raise ValueError(
            f"{name} must have shape (N, H, W) or (N, H, W, C) with C in {{1, 3}}, "
            f"as MedMNIST stores images; got an array of shape {X.shape} "
            f"(ndim={X.ndim})."
        )
    if X.ndim == 4 and X.shape[-1] not in (1, 3):
        raise ValueError(
            f"{name} has shape {X.shape}: the last axis must be the channel axis "
            f"with 1 or 3 channels (channels-last, as MedMNIST stores images)."
        )
    if X.shape[0] == 0:
        raise ValueError(f"{name} is empty (shape {X.shape}); at least one image is needed.")
    if min(X.shape[1], X.shape[2]) < min_size:
        raise ValueError(
            f"{name} holds {X.shape[1]}x{X.shape[2]} images; the network needs at least "
            f"{min_size}x{min_size}."
        )
    if X.dtype != np.uint8 and not np.issubdtype(X.dtype, np.floating):
        raise ValueError(
            f"{name} has dtype {X.dtype}; expected uint8 (as MedMNIST stores images) "
            f"or floating point scaled to [0, 1]."
        )
    if np.issubdtype(X.dtype, np.floating):
        if not np.isfinite(X).all():
            raise ValueError(f"{name} contains NaN or infinite values.")
        low, high = float(X.min()), float(X.max())
        if low < 0 or high > 1:
            # Most likely uint8 images cast to float: they would be scaled twice wrong.
            raise ValueError(
                f"{name} is floating point with values in [{low:g}, {high:g}]; floating "
                f"images must be scaled to [0, 1]. Pass MedMNIST's uint8 arrays as they "
                f"are, or divide by 255."
            )
    channels = X.shape[-1] if X.ndim == 4 else 1
    if n_channels is not None and channels > n_channels:
        raise ValueError(
            f"{name} has {channels} channels but the model expects {n_channels}; "
            f"build the model with n_channels={channels}."
        )
    return X


def check_targets(y, n_samples, multi_label=False, n_labels=None, name="y"):
    """Validate the shape of the targets, before their labels are encoded.

    Parameters
    ----------
    y : array-like of shape (N,) or (N, 1) for single-label tasks, (N, L) for multi-label
        Class labels of any type scikit-learn classifiers take (integers,
        strings, ...), or 0/1 indicators for multi-label.
    n_samples : int
        Number of images, which ``y`` must match.
    multi_label : bool
        Whether the model is multi-label.
    n_labels : int or None
        Multi-label only: the number of label columns ``y`` must have; None
        skips the check.
    name : str
        How to call the array in messages.

    Returns
    -------
    y : ndarray
        (N,) labels as given (see :func:`encode_labels`) for single-label,
        (N, L) float32 for multi-label.

    Raises
    ------
    ValueError
        Length mismatch, NaN or inf, multi-label targets for a single-label
        model (or the reverse), continuous (non-class) values.
    """
    y = np.asarray(y)
    if y.ndim == 0 or y.shape[0] != n_samples:
        raise ValueError(
            f"X and {name} have different lengths: {n_samples} images but "
            f"{name} has shape {y.shape}."
        )
    if np.issubdtype(y.dtype, np.floating) and not np.isfinite(y).all():
        raise ValueError(f"{name} contains NaN or infinite values.")
    if y.ndim == 2 and y.shape[1] == 1 and not multi_label:
        y = y[:, 0]
    if multi_label:
        if y.ndim != 2:
            raise ValueError(
                f"A multi-label model needs {name} of shape (N, L) with 0/1 entries; "
                f"got shape {y.shape}."
            )
        if n_labels is not None and y.shape[1] != n_labels:
            raise ValueError(
                f"{name} has {y.shape[1]} label columns but the model has {n_labels} outputs."
            )
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"Multi-label {name} must contain only 0 and 1.")
        return y.astype(np.float32)
    if y.ndim != 1:
        raise ValueError(
            f"{name} has shape {y.shape}: multi-label targets given to a single-label "
            f"model; set multi_label=True, or give one class label per image."
        )
    # scikit-learn's rule for what a classifier's targets may be (its message
    # names the problem, e.g. continuous values given to a classifier).
    check_classification_targets(y)
    return y


def check_classes(classes, n_classes=None, multi_label=False):
    """The task's classes declared by an estimator's ``classes`` and ``n_classes``.

    Parameters
    ----------
    classes : array-like of shape (C,) or None
        Every class label of the task, of any type scikit-learn takes.
    n_classes : int or None
        The number of classes. Alone it declares the classes ``0..n_classes-1``
        (MedMNIST's integer ids); with ``classes`` it must equal their number.
    multi_label : bool
        Multi-label estimators take ``n_classes`` (the number of label
        columns) but no ``classes``.

    Returns
    -------
    ndarray of shape (C,) or None
        The classes sorted as ``numpy.unique`` sorts them (the order of
        ``predict_proba``'s columns), ``arange(n_classes)`` (int64) when only
        ``n_classes`` is given, or None when neither is (classes are then
        inferred from ``y`` at the first fit), and always None for
        multi-label.

    Raises
    ------
    ValueError
        ``classes`` empty, not 1-D, with repeated or mixed-type labels,
        given to a multi-label estimator, or inconsistent with ``n_classes``.
    """
    if classes is None:
        if multi_label or n_classes is None:
            return None
        return np.arange(int(n_classes))
    if multi_label:
        raise ValueError(
            "classes is for single-label tasks; a multi-label y is (N, L) 0/1 columns: "
            "leave classes=None and pass n_classes=L."
        )
    labels = np.asarray(classes)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError(
            f"classes must be a non-empty 1-D list of the task's labels; got shape {labels.shape}.")
    unique = unique_labels(labels)  # scikit-learn's message for mixed strings and numbers
    if len(unique) != len(labels):
        raise ValueError(f"classes has repeated labels: {labels.tolist()}.")
    if n_classes is not None and int(n_classes) != len(unique):
        raise ValueError(
            f"n_classes={n_classes} but classes lists {len(unique)} labels; give classes "
            f"alone (n_classes is then their number), or make the two agree."
        )
    return unique


def encode_labels(y, classes, name="y"):
    """Positions of the labels ``y`` in ``classes``: the network's targets 0..C-1.

    Parameters
    ----------
    y : ndarray of shape (N,)
        Labels, as returned by :func:`check_targets`.
    classes : ndarray of shape (C,)
        The task's classes, sorted (see :func:`check_classes`).
    name : str
        How to call the array in messages.

    Returns
    -------
    ndarray of shape (N,), int64
        ``classes[encode_labels(y, classes)] == y``.

    Raises
    ------
    ValueError
        Labels that are not among ``classes``, named.
    """
    # numpy's isin/searchsorted on the sorted classes; scikit-learn's
    # LabelEncoder does the same, but its error would not name the task's classes.
    known = np.isin(y, classes)
    if not known.all():
        ids = classes.dtype.kind in "iu" and np.array_equal(classes, np.arange(len(classes)))
        shown = f"0..{len(classes) - 1}" if ids else f"{classes[:10].tolist()}"
        raise ValueError(
            f"{name} has labels {np.unique(y[~known])[:10].tolist()} outside the task's "
            f"classes ({shown}). Pass every class of the task up front with classes= "
            f"(or n_classes= for integer ids 0..n_classes-1)."
        )
    return np.searchsorted(classes, y).astype(np.int64)
