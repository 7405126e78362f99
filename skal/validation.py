"""Input checks shared by the estimators, the query functions and the experiment.

Each check raises a ``ValueError`` that names the problem in the user's terms
(shape, dtype, NaN, labels), before any tensor reaches torch.
"""

from __future__ import annotations

import numpy as np

__all__ = ["check_images", "check_targets"]


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


def check_targets(y, n_samples, n_classes=None, multi_label=False, name="y"):
    """Validate class labels against the task.

    Parameters
    ----------
    y : array-like of shape (N,) or (N, 1) for single-label tasks, (N, L) for multi-label
        Integer class ids in [0, n_classes), or 0/1 indicators for multi-label.
    n_samples : int
        Number of images, which ``y`` must match.
    n_classes : int or None
        Number of classes (labels for multi-label); None skips the range check.
    multi_label : bool
        Whether the model is multi-label.
    name : str
        How to call the array in messages.

    Returns
    -------
    y : ndarray
        (N,) int64 for single-label, (N, L) float32 for multi-label.

    Raises
    ------
    ValueError
        Length mismatch, multi-label targets for a single-label model (or the
        reverse), non-integer labels, labels outside the task's classes.
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
        if n_classes is not None and y.shape[1] != n_classes:
            raise ValueError(
                f"{name} has {y.shape[1]} label columns but the model has {n_classes} outputs."
            )
        if not np.isin(y, (0, 1)).all():
            raise ValueError(f"Multi-label {name} must contain only 0 and 1.")
        return y.astype(np.float32)
    if y.ndim != 1:
        raise ValueError(
            f"{name} has shape {y.shape}: multi-label targets given to a single-label "
            f"model; set multi_label=True, or give one class id per image."
        )
    if not (np.issubdtype(y.dtype, np.integer) or
            (np.issubdtype(y.dtype, np.floating) and np.all(y == np.round(y)))):
        raise ValueError(f"{name} must hold integer class ids; got dtype {y.dtype}.")
    y = y.astype(np.int64)
    out_of_range = y < 0
    if n_classes is not None:
        out_of_range |= y >= n_classes
    if out_of_range.any():
        valid = f"0..{n_classes - 1}" if n_classes is not None else "non-negative ids"
        raise ValueError(
            f"{name} has labels {np.unique(y[out_of_range])[:10].tolist()} outside "
            f"the task's classes ({valid})."
        )
    return y
