"""skorch classifiers for MedMNIST images.

:class:`ImageClassifier` is a skorch ``NeuralNetClassifier`` that takes MedMNIST's
uint8 arrays directly and adds what the query functions need: ``embed``,
``predict_proba_and_embed`` (both from one forward pass) and
``predict_proba_mc``. :class:`LossPredictionClassifier` adds the learning-loss
head of LL4AL and ``predict_loss``, plus SCAL's training trick.

Both change skorch's behaviour by overriding its small methods (``infer``,
``get_loss``, ``get_iterator``, ``initialize_module``, the ``on_*`` hooks),
never by copying its training loop.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import math
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.exceptions import NotFittedError
from sklearn.metrics import accuracy_score
from sklearn.utils import ClassifierTags, InputTags, Tags, TargetTags
from sklearn.utils._param_validation import (Interval, Options, StrOptions,
                                             validate_parameter_constraints)
from sklearn.utils.multiclass import unique_labels
from skorch import NeuralNetClassifier
from skorch.callbacks import Callback
from skorch.dataset import Dataset as SkorchDataset
from skorch.utils import to_tensor

import skal._modal_compat  # noqa: F401  (lets modAL 0.4.1 run on scikit-learn >= 1.8)
from skal._random import check_seed
from skal.models import LOSS_HEADS, LossPredictionNetwork, get_model_class
from skal.settings import RULES
from skal.validation import check_classes, check_images, check_targets, encode_labels

__all__ = [
    "ChannelsLast",
    "ImageClassifier",
    "TrainingInterrupted",
    "LossPredictionClassifier",
    "resolve_device",
    "images_to_float",
    "margin_ranking_loss",
    "row_digests",
    "torch_seeded",
]


def resolve_device(device):
    """``'auto'`` becomes ``'cuda'`` when a GPU is visible, else ``'cpu'``; others pass through."""
    if isinstance(device, str) and device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


@contextlib.contextmanager
def torch_seeded(random_state, device="cpu", *extra):
    """Run a block with torch's generators seeded from ``random_state`` and ``extra``.

    The global generators are restored afterwards (``torch.random.fork_rng``),
    so skal never changes a caller's random stream. ``random_state`` means
    what it means everywhere in skal (:mod:`skal._random`): None seeds the
    block from fresh OS entropy, never from torch's global generator.

    Parameters
    ----------
    random_state : None, int, numpy RandomState or Generator
    device : str
        The device whose generator is forked too when it is CUDA.
    *extra : int
        Mixed into the seed (for example the number of epochs trained so far).
    """
    entropy = check_seed(random_state)
    seed = int(np.random.SeedSequence([entropy, *map(int, extra)]).generate_state(1)[0])
    devices = [torch.device(device).index or 0] if str(device).startswith("cuda") else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def images_to_float(x: torch.Tensor, n_channels: int) -> torch.Tensor:
    """Turn a batch of MedMNIST images into the network's normalised float input.

    Parameters
    ----------
    x : torch.Tensor of shape (B, H, W) or (B, H, W, C)
        uint8 in [0, 255], or floating in [0, 1]; on the target device, so the
        conversion runs there (the pool is never held in float32 all at once).
    n_channels : int
        Channels the network expects; grayscale is repeated to match.

    Returns
    -------
    torch.Tensor of shape (B, n_channels, H, W), float32
        ``(x / 255 - 0.5) / 0.5`` for uint8 (ToTensor then Normalize(0.5, 0.5),
        as the study does), ``(x - 0.5) / 0.5`` for floating input.
    """
    if x.dtype == torch.uint8:
        x = x.float().div_(255.0).sub_(0.5).div_(0.5)  # a fresh tensor: in place is safe
    else:
        x = (x.float() - 0.5) / 0.5  # may share memory with the caller's array
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
    if x.shape[1] != n_channels:
        x = x.expand(-1, n_channels, -1, -1)
    return x.contiguous()


def margin_ranking_loss(predicted, target, margin=1.0):
    """LL4AL's pairwise ranking loss between predicted and true per-sample losses.

    Item i of the batch is paired with item B-1-i (as the reference code does);
    with an odd batch the middle item has no partner and is left out.

    Parameters
    ----------
    predicted : torch.Tensor of shape (B,)
        Predicted losses.
    target : torch.Tensor of shape (B,)
        True per-sample losses (detached here: the ranking loss must not train
        the classifier through its own targets).
    margin : float
        Hinge margin.

    Returns
    -------
    torch.Tensor, scalar
        Mean hinge loss over the B // 2 pairs; 0 when B < 2.
    """
    half = predicted.shape[0] // 2
    if half == 0:
        return predicted.sum() * 0.0
    pred_diff = (predicted - predicted.flip(0))[:half]
    target_diff = (target - target.flip(0))[:half].detach()
    # +1 where the first item of the pair has the larger true loss, -1 otherwise
    # (ties count as -1, as in the reference implementation).
    sign = 2 * torch.sign(torch.clamp(target_diff, min=0)) - 1
    return torch.clamp(margin - sign * pred_diff, min=0).sum() / half


def row_digests(X):
    """A 16-byte digest of each row's content: which images a fit was given, in any order.

    Hand-written because no library call names a row by its content; a
    digest keeps 16 bytes per row instead of a copy of the images.

    Parameters
    ----------
    X : ndarray of shape (N, ...)

    Returns
    -------
    ndarray of shape (N,), dtype ``S16``
        Equal for rows of equal bytes (same dtype and shape).
    """
    rows = np.ascontiguousarray(X).reshape(len(X), -1)
    return np.array([hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows],
                    dtype="S16")


def _seen_before(digests, earlier):
    """Mask of the rows counted as seen in ``earlier``, as multisets.

    A digest that occurs k times in ``earlier`` marks its first k occurrences
    in ``digests`` as seen, so a duplicated image newly labeled is new once.
    Identical rows are interchangeable, so which copy is marked does not matter.
    """
    left = collections.Counter(earlier.tolist())
    seen = np.zeros(len(digests), dtype=bool)
    for i, digest in enumerate(digests.tolist()):
        if left[digest] > 0:
            left[digest] -= 1
            seen[i] = True
    return seen


class _ArrayBatches:
    """Mini-batches of in-memory arrays by fancy indexing.

    One indexing copy per batch replaces DataLoader's per-item fetch and
    collate, which costs more than the small CNN's forward pass on CPU.
    Shuffling draws from torch's global generator, which the estimator seeds.

    With ``min_items`` an epoch passes over the arrays ``ceil(min_items / N)``
    times, each pass in its own order, so a small labeled set gets as many
    optimiser steps per epoch as a set of ``min_items`` items would.
    """

    def __init__(self, X, y, batch_size, shuffle, min_items=0):
        self.X, self.y = X, y
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.passes = max(1, math.ceil(int(min_items) / max(len(X), 1)))

    def __len__(self):
        return math.ceil(self.passes * len(self.X) / self.batch_size)

    def __iter__(self):
        n = len(self.X)
        if self.shuffle:
            order = torch.cat([torch.randperm(n) for _ in range(self.passes)]).numpy()
        elif self.passes > 1:
            order = np.tile(np.arange(n), self.passes)
        else:
            order = None
        for start in range(0, n * self.passes, self.batch_size):
            if order is None:
                idx = slice(start, start + self.batch_size)
            else:
                idx = order[start:start + self.batch_size]
            xb = torch.from_numpy(np.ascontiguousarray(self.X[idx]))
            yb = None if self.y is None else torch.from_numpy(np.ascontiguousarray(self.y[idx]))
            yield xb, yb


class TrainingInterrupted(BaseException):
    """Training was interrupted (Ctrl-C) inside skorch's loop.

    skorch's ``partial_fit`` swallows ``KeyboardInterrupt`` and returns a
    half-trained network as if training had finished; an active-learning loop
    would then evaluate and checkpoint it. skal's estimators raise this
    instead (it is not a ``KeyboardInterrupt``, so skorch lets it through),
    and ``fit`` turns it back into ``KeyboardInterrupt``.
    """


def memory_format_of(module):
    """The memory order of ``module``'s first 4-d weight: channels-last or contiguous.

    An input laid out as the weights are spares the convolution a reorder of
    every batch (measured: 1.33x for training with both in channels-last order,
    1.23x with the weights only; benchmarks/README.md).
    """
    for weight in module.parameters():
        if weight.dim() == 4:
            if not weight.is_contiguous() and weight.is_contiguous(
                    memory_format=torch.channels_last):
                return torch.channels_last
            break
    return torch.contiguous_format


class ChannelsLast(Callback):
    """Keep the network's weights in channels-last memory order while it trains.

    A skorch callback (added by a preset with ``channels_last=True``):
    convolutions on the CPU then run oneDNN's channels-last kernels, faster
    for the small CNN at batch 32 (benchmarks/README.md gives the measured
    ratio). The math is the same but the float sums are ordered differently,
    so a trained network's numbers differ from a contiguous-layout run of the
    same seed (SGD carries the last-digit differences forward): a grid must
    not mix the two.
    """

    def on_train_begin(self, net, **kwargs):
        net.module_.to(memory_format=torch.channels_last)


class ImageClassifier(NeuralNetClassifier):
    """A skorch classifier for MedMNIST images: a scikit-learn estimator around a CNN.

    It takes images as MedMNIST stores them (uint8, (N, H, W) or (N, H, W, 3))
    and converts each batch on the target device to normalised float NCHW
    (``x / 255``, then mean 0.5, std 0.5; grayscale repeated to ``n_channels``).
    Defaults are the study's optimiser: SGD, lr 0.001, momentum 0.9, weight
    decay 5e-4, batch 32, no validation split.

    Parameters
    ----------
    module : str, torch.nn.Module class or instance, default='resnet18'
        ``'resnet18'`` (the study's CIFAR-style ResNet-18) or ``'small_cnn'``
        (fast on CPU), or a module following the protocol of
        :mod:`skal.models`. Names are built with ``n_classes``, ``n_channels``
        and ``dropout``; a class or instance gets only ``module__*`` params.
    classes : array-like of shape (C,) or None, default=None
        Every class label of the task, of any type a scikit-learn classifier
        takes (strings, non-contiguous integers, ...). Labels are encoded to
        0..C-1 for the network, in sorted order (``numpy.unique``'s), which is
        the order of ``classes_`` and of ``predict_proba``'s columns;
        ``predict`` returns these labels. In active learning the first labeled
        set may miss a class: give the task's classes here (or ``n_classes``).
        Single-label only.
    n_classes : int or None, default=None
        Number of classes (of label columns, for multi-label). Alone it
        declares the classes ``0..n_classes-1`` (MedMNIST's integer ids);
        with ``classes`` it must equal their number (else a ValueError).
        With neither, the classes are those found in ``y`` at the first
        ``fit`` (and at every fit that starts from fresh weights).
    n_channels : int, default=3
        Input channels of the network. The study uses 3 (``as_rgb``).
    dropout : float, default=0.0
        Dropout rate before the linear head. 0 is the study's network;
        :meth:`predict_proba_mc` needs a rate above 0.
    multi_label : bool, default=False
        Multi-label mode (chestmnist): BCE with logits, sigmoid probabilities,
        ``predict`` thresholds at 0.5 and returns (N, L) 0/1.
    random_state : int, RandomState, Generator or None, default=None
        Seeds weight initialisation, shuffling and dropout of each ``fit``
        (without touching torch's global generator): two fits with the same
        seed give identical weights on CPU. None draws fresh OS entropy at
        each fit (``torch.manual_seed`` does not reach it; see :mod:`skal._random`). With ``warm_start=True`` each
        continued fit draws a seed from ``random_state`` and the number of
        epochs already trained, so a resumed run replays exactly.
    min_epoch_size : int, default=0
        Items a training epoch presents at least: a labeled set smaller than
        this is passed over ``ceil(min_epoch_size / N)`` times per epoch, each
        pass shuffled anew. It gives a small labeled set (active learning's
        first cycles) enough optimiser steps to learn more than the class
        prior, while epoch-based schedules (LR milestones, LL4AL's
        ``epoch_loss``) keep their meaning. 0 (default) is one pass per epoch.
    warm_start : bool, default=False
        False retrains from fresh weights at every ``fit``. True continues
        from the current weights; the optimiser, the history and so any LR
        schedule restart at every ``fit`` (as the study restarts them every
        cycle). ``epochs_trained_`` counts the epochs of all fits.
    device : str, default='auto'
        ``'auto'`` picks CUDA when available, else CPU, each time the
        estimator runs (``get_params`` keeps ``'auto'``).
    lr, max_epochs, batch_size, optimizer, train_split, verbose, **kwargs
        As in :class:`skorch.NeuralNetClassifier`; ``optimizer__momentum``
        and ``optimizer__weight_decay`` default to 0.9 and 5e-4.

    Attributes
    ----------
    n_classes_ : int
        Number of outputs of the fitted network.
    classes_ : ndarray of shape (n_classes_,)
        The task's classes in the user's labels, sorted: from ``classes``,
        ``arange(n_classes)``, or the labels of ``y`` at the first fit.
        Multi-label: ``arange(n_classes_)``, the label columns.
    module_ : torch.nn.Module
        The fitted network.
    epochs_trained_ : int
        Epochs trained since the weights were last initialised.
    """

    _parameter_constraints = {
        "module": [str, type, torch.nn.Module],
        "classes": ["array-like", None],
        "n_classes": [Interval(Integral, 1, None, closed="left"), None],
        "n_channels": [Options(Integral, {1, 3})],
        "dropout": RULES["dropout"].constraints,  # skal.settings: the one rule
        "multi_label": ["boolean"],
        "random_state": [Interval(Integral, 0, None, closed="left"), np.random.RandomState,
                         np.random.Generator, None],
        "lr": RULES["lr"].constraints,
        "max_epochs": [Interval(Integral, 0, None, closed="left")],
        "batch_size": RULES["batch_size"].constraints,
        "min_epoch_size": [Interval(Integral, 0, None, closed="left")],
        "warm_start": ["boolean"],
        "device": [str, torch.device, None],
    }

    def __init__(
        self,
        module="resnet18",
        *args,
        classes=None,
        n_classes=None,
        n_channels=3,
        dropout=0.0,
        multi_label=False,
        random_state=None,
        min_epoch_size=0,
        criterion=None,
        optimizer=torch.optim.SGD,
        lr=0.001,
        max_epochs=10,
        batch_size=32,
        train_split=None,
        device="auto",
        verbose=0,
        **kwargs,
    ):
        kwargs.setdefault("optimizer__momentum", 0.9)
        kwargs.setdefault("optimizer__weight_decay", 5e-4)
        super().__init__(
            module,
            *args,
            criterion=criterion,
            optimizer=optimizer,
            lr=lr,
            max_epochs=max_epochs,
            batch_size=batch_size,
            train_split=train_split,
            classes=classes,
            device=device,
            verbose=verbose,
            **kwargs,
        )
        self.n_classes = n_classes
        self.n_channels = n_channels
        self.dropout = dropout
        self.multi_label = multi_label
        self.random_state = random_state
        self.min_epoch_size = min_epoch_size

    # -- device ----------------------------------------------------------------
    # The parameter keeps what the user gave ('auto' included), as scikit-learn
    # expects of parameters, so a clone or a pickle made on a CPU machine still
    # picks the GPU of the machine it runs on. skorch reads ``self.device`` in
    # many places and cannot handle 'auto': the property answers those reads
    # with the resolved device.
    @property
    def device(self):
        return resolve_device(self.__dict__.get("device", "auto"))

    @device.setter
    def device(self, value):
        self.__dict__["device"] = value

    def get_params(self, deep=True, **kwargs):
        params = super().get_params(deep=deep, **kwargs)
        if "device" in params:
            params["device"] = self.__dict__.get("device", params["device"])
        return params

    def __setstate__(self, state):
        # skorch maps saved CUDA tensors with torch.device(state['device']).
        requested = state.get("device", "auto")
        state["device"] = resolve_device(requested)
        super().__setstate__(state)
        if requested == "auto":
            self.__dict__["device"] = "auto"

    def _seeded(self, *extra):
        return torch_seeded(self.random_state, self.device, *extra)

    # -- components ------------------------------------------------------------
    def _n_outputs(self):
        if self.multi_label:
            n = self.n_classes if self.n_classes is not None else getattr(self, "n_classes_", None)
        else:
            n = len(self.classes_) if self._has_classes() else None
        if n is None:
            raise ValueError(
                "The number of classes is unknown before fit: pass classes= or n_classes= "
                "(or call fit first, which infers them from y)."
            )
        return int(n)

    def initialize_module(self):
        """Build the network: a name from :data:`skal.models.MODELS`, a class or an instance."""
        kwargs = self.get_params_for("module")
        if isinstance(self.module, str):
            params = {"n_classes": self._n_outputs(), "in_channels": self.n_channels,
                      "dropout": self.dropout}
            params.update(kwargs)
            self.module_ = get_model_class(self.module)(**params)
        else:
            self.module_ = self.initialized_instance(self.module, kwargs)
        self.n_classes_ = int(getattr(self.module_, "n_classes", self._n_outputs()))
        return self

    def initialize_criterion(self):
        """Cross-entropy, or BCE with logits in multi-label mode, unless ``criterion`` is given."""
        criterion = self.criterion
        if criterion is None:
            criterion = torch.nn.BCEWithLogitsLoss if self.multi_label else torch.nn.CrossEntropyLoss
        self.criterion_ = self.initialized_instance(criterion, self.get_params_for("criterion"))
        return self

    def _get_predict_nonlinearity(self):
        # skorch's 'auto' turns BCE-with-logits output into 2 binary columns,
        # which is wrong for multi-label; choose softmax or sigmoid here.
        if self.predict_nonlinearity != "auto":
            return super()._get_predict_nonlinearity()
        self.check_is_fitted()
        if self.multi_label:
            return torch.sigmoid
        return lambda logits: torch.softmax(logits, dim=-1)

    # -- classes ---------------------------------------------------------------
    # One rule (skal.validation.check_classes) turns ``classes``/``n_classes``
    # into the task's classes; without them, fit records the labels of y in
    # ``classes_inferred_`` (skorch's name for it).
    @property
    def classes_(self):
        if self.multi_label:
            return np.arange(getattr(self, "n_classes_", None) or self._n_outputs())
        declared = check_classes(self.classes, self.n_classes)
        if declared is not None:
            return declared
        inferred = self.__dict__.get("classes_inferred_")
        if inferred is None:
            raise AttributeError(
                f"{type(self).__name__} has no classes_ before fit when neither classes= "
                f"nor n_classes= is given.")
        return inferred

    def __sklearn_tags__(self):
        # skorch's NeuralNet is not a scikit-learn BaseEstimator, so it has no
        # tags; declare what scikit-learn should know: a classifier taking
        # image arrays (N, H, W[, C]), not 2-D tables.
        return Tags(
            estimator_type="classifier",
            target_tags=TargetTags(required=True, multi_output=bool(self.multi_label)),
            classifier_tags=ClassifierTags(multi_label=bool(self.multi_label)),
            input_tags=InputTags(two_d_array=False, three_d_array=True),
        )

    def _has_classes(self):
        try:
            self.classes_
        except AttributeError:
            return False
        return True

    def check_data(self, X, y):
        # skorch's classifier records np.unique(y) as classes_inferred_ here;
        # the y reaching skorch is already encoded to 0..C-1, and fit has
        # recorded the user's labels, so keep those.
        inferred = self.__dict__.get("classes_inferred_")
        super().check_data(X, y)
        if inferred is not None:
            self.classes_inferred_ = inferred

    # -- data ------------------------------------------------------------------
    def _min_input_size(self):
        """Smallest image side the network takes (``min_input_size``, else 1)."""
        if getattr(self, "initialized_", False) and hasattr(self, "module_"):
            return int(getattr(self.module_, "min_input_size", 1))
        if isinstance(self.module, str):
            try:
                return int(get_model_class(self.module).min_input_size)
            except ValueError:
                return 1  # an unknown name: initialize_module says so
        return int(getattr(self.module, "min_input_size", 1))

    def _check_X(self, X):
        if isinstance(X, torch.utils.data.Dataset):
            return X  # a user's own Dataset: its layout is its business
        return check_images(X, n_channels=self.n_channels, min_size=self._min_input_size())

    def _check_X_y(self, X, y, fitted_classes=True):
        """Validate X and y; return X and the network's targets.

        Single-label ``y`` is encoded to positions 0..C-1 in ``classes_``.
        With ``fitted_classes=False`` (a fit from fresh weights) and neither
        ``classes`` nor ``n_classes`` given, the classes are first taken from
        ``y`` and recorded, so a fresh fit may bring new classes; otherwise
        every label must be one of ``classes_``. Multi-label ``y`` stays 0/1
        (N, L) float32 and must have ``n_classes`` (or the fitted network's)
        columns.
        """
        X = self._check_X(X)
        if isinstance(X, torch.utils.data.Dataset):
            return X, y
        if self.multi_label:
            check_classes(self.classes, self.n_classes, multi_label=True)  # refuses classes=
            n_labels = self.n_classes
            if n_labels is None and fitted_classes:
                n_labels = getattr(self, "n_classes_", None)
            return X, check_targets(y, len(X), multi_label=True, n_labels=n_labels)
        y = check_targets(y, len(X))
        if (not fitted_classes and self.classes is None and self.n_classes is None):
            self.classes_inferred_ = unique_labels(y)
        if not self._has_classes():  # a score or true_loss before any fit
            raise NotFittedError(
                f"This {type(self).__name__} has no classes yet: call fit first, or pass "
                f"classes= or n_classes=.")
        return X, encode_labels(y, self.classes_)

    def get_iterator(self, dataset, training=False):
        """Fast batches for in-memory arrays; skorch's DataLoader for anything else."""
        if isinstance(dataset, SkorchDataset) and isinstance(dataset.X, np.ndarray):
            prefix = "iterator_train" if training else "iterator_valid"
            params = self.get_params_for(prefix)
            return _ArrayBatches(
                dataset.X,
                dataset.y if isinstance(dataset.y, np.ndarray) else None,
                params.get("batch_size", self.batch_size),
                shuffle=params.get("shuffle", training),
                min_items=self.min_epoch_size if training else 0,
            )
        return super().get_iterator(dataset, training=training)

    def _prepare(self, x):
        """A batch on the device as the network's normalised float NCHW input,
        laid out in memory as the network's weights are (see :class:`ChannelsLast`)."""
        x = to_tensor(x, device=self.device)
        return images_to_float(x, self.n_channels).contiguous(
            memory_format=memory_format_of(self.module_))

    def infer(self, x, **fit_params):
        return self.module_(self._prepare(x), **fit_params)

    def per_sample_loss(self, logits, y_true):
        """Loss of each item, (B,): cross-entropy, or mean BCE over labels."""
        y_true = to_tensor(y_true, device=self.device)
        if self.multi_label:
            return F.binary_cross_entropy_with_logits(
                logits, y_true.float(), reduction="none").mean(dim=1)
        return F.cross_entropy(logits, y_true.long(), reduction="none")

    def get_loss(self, y_pred, y_true, X=None, training=False):
        if self.multi_label:
            y_true = to_tensor(y_true, device=self.device).float()
        return super().get_loss(y_pred, y_true, X=X, training=training)

    # -- fitting ---------------------------------------------------------------
    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt as exc:
            raise TrainingInterrupted("training interrupted") from exc

    def _validate_constraints(self):
        """skal's check: the parameters against ``_parameter_constraints``, as
        scikit-learn's estimators do: InvalidParameterError (a ValueError and a
        TypeError) naming the parameter, before torch or skorch trip over it."""
        validate_parameter_constraints(
            self._parameter_constraints, self.get_params(deep=False),
            caller_name=type(self).__name__)

    def _validate_params(self):
        """Both checks: skal's declared constraints, then skorch's own.

        skorch's check (``NeuralNet._validate_params``) refuses argument names
        it does not know, e.g. ``optimizer_momentum`` ("did you mean
        optimizer__momentum?"); skorch calls this method from ``initialize``
        and from ``set_params`` on an initialized net.
        """
        self._validate_constraints()
        super()._validate_params()

    def fit(self, X, y, **fit_params):
        """Train the network; with ``warm_start`` continue from the current weights.

        With ``warm_start=False`` (default) the network restarts from fresh
        weights; with ``warm_start=True`` it continues from its current weights
        with a fresh optimiser and LR schedule.

        Parameters
        ----------
        X : ndarray of shape (N, H, W) or (N, H, W, C), uint8 (or float in [0, 1])
            Images as MedMNIST stores them.
        y : array-like of shape (N,) class labels, or (N, L) 0/1 in multi-label mode
            Labels of any type; they must be among ``classes`` / ``n_classes``
            when given, or, in a continued (``warm_start``) fit, among the
            fitted ``classes_``.
        **fit_params
            Passed to skorch's ``partial_fit``.

        Returns
        -------
        self

        Raises
        ------
        InvalidParameterError
            A parameter outside ``_parameter_constraints`` (``n_classes``,
            ``batch_size``, ``max_epochs``, ``lr``, ``dropout``,
            ``n_channels``, ...), named in the message; a ValueError and a TypeError.
        ValueError
            Bad images, labels that do not fit the task, ``classes`` and
            ``n_classes`` that disagree; an argument skorch does not know
            (skorch's check: ``optimizer_momentum`` "did you mean
            optimizer__momentum?").
        """
        if self.initialized_:
            self._validate_params()
        else:
            # skorch's check needs the prefixes (module, criterion, optimizer)
            # that initialize registers, and initialize runs it: skal's alone here.
            self._validate_constraints()
        continuing = self.warm_start and self.initialized_
        X, y = self._check_X_y(X, y, fitted_classes=continuing)
        if (self.multi_label and self.n_classes is None and not continuing
                and not isinstance(X, torch.utils.data.Dataset)):
            self.n_classes_ = int(y.shape[1])
        return self._train(X, y, continuing, **fit_params)

    def _train(self, X, y, continuing, **fit_params):
        """Train on validated, encoded ``X, y`` (see :meth:`fit`); return self."""
        epochs_before = self.epochs_trained_ if continuing else 0
        with self._seeded(epochs_before):
            if continuing:
                # A fresh optimiser and history: skorch's LRScheduler (and any
                # callback keyed on the epoch count) restart with each fit.
                self.initialize_optimizer()
                self.initialize_history()
            else:
                self.initialize()
            try:
                self.partial_fit(X, y, **fit_params)
            except TrainingInterrupted:
                raise KeyboardInterrupt from None
        self.epochs_trained_ = epochs_before + len(self.history)
        return self

    # -- prediction ------------------------------------------------------------
    def predict_proba(self, X):
        """Class probabilities (N, C) float32: softmax, or per-label sigmoid in multi-label mode.

        Columns follow ``classes_``. Raises NotFittedError before fit, whatever ``X``.
        """
        self.check_is_fitted()
        return super().predict_proba(self._check_X(X)).astype(np.float32, copy=False)

    def predict(self, X):
        """Labels (N,) from ``classes_``, or (N, L) 0/1 int64 in multi-label mode."""
        proba = self.predict_proba(X)
        if self.multi_label:
            return (proba > 0.5).astype(np.int64)
        return self.classes_[proba.argmax(axis=1)]

    def score(self, X, y, sample_weight=None):
        """Accuracy of ``predict(X)`` (subset accuracy in multi-label mode).

        Parameters
        ----------
        X : ndarray of shape (N, H, W) or (N, H, W, C)
        y : array-like of shape (N,) labels, or (N, L) 0/1 in multi-label mode
        sample_weight : ndarray of shape (N,), optional

        Returns
        -------
        float
        """
        X, y = self._check_X_y(X, y)
        proba = self.predict_proba(X)
        predicted = (proba > 0.5) if self.multi_label else proba.argmax(axis=1)
        return accuracy_score(y.astype(np.int64), predicted.astype(np.int64),
                              sample_weight=sample_weight)

    def _map_batches(self, X, fn, axis=0):
        """Apply ``fn`` to each normalised batch of ``X`` in eval mode; concatenate on the CPU along ``axis``."""
        self.check_is_fitted()
        X = self._check_X(X)
        self._set_training(False)
        outputs = []
        with torch.no_grad():
            for xb, _ in self.get_iterator(self.get_dataset(X), training=False):
                outputs.append(fn(self._prepare(xb)).float().cpu())
        return torch.cat(outputs, dim=axis).numpy()

    def embed(self, X):
        """Penultimate features (N, embedding_dim) float32; 512 for the ResNet-18."""
        return self._map_batches(X, lambda x: self.module_.forward_features(x)[0])

    def predict_proba_and_embed(self, X):
        """Probabilities and penultimate features from one pass of the network.

        The same numbers as ``(predict_proba(X), embed(X))`` at the cost of
        one forward pass instead of two (BADGE needs both for the whole pool).

        Parameters
        ----------
        X : array of shape (N, H, W) or (N, H, W, C)

        Returns
        -------
        proba : ndarray of shape (N, C), float32
        embedding : ndarray of shape (N, embedding_dim), float32
        """
        nonlin = self._get_predict_nonlinearity()
        module = self.module_

        def both(x):
            embedding = module.forward_features(x)[0]
            return torch.cat([nonlin(module.classify(embedding)).float(), embedding.float()], dim=1)

        joined = self._map_batches(X, both)
        n = self.n_classes_  # the head's width, set when the module was built
        return joined[:, :n].copy(), joined[:, n:].copy()

    def predict_proba_mc(self, X, n_samples=20, random_state=None):
        """Monte Carlo dropout probabilities (n_samples, N, C) float32.

        The network runs in eval mode except its dropout before the head, so
        each pass is one dropout mask. Since dropout sits only before the
        head, the backbone runs once per batch and only the head is repeated.

        Parameters
        ----------
        X : array of shape (N, H, W) or (N, H, W, C)
        n_samples : int, default=20
            Number of stochastic passes.
        random_state : int or None
            Seeds the dropout masks (torch's global generator is restored).

        Raises
        ------
        ValueError
            If the network has no dropout (rate 0): every pass would be equal.
        """
        self.check_is_fitted()
        rate = float(getattr(self.module_, "dropout_rate", 0.0))
        if rate <= 0:
            raise ValueError(
                "MC-dropout probabilities need a network with dropout > 0; this one "
                "has dropout=0 (the study's network). Build it with e.g. dropout=0.3."
            )
        if int(n_samples) < 1:
            raise ValueError(f"n_samples must be a positive integer, got {n_samples!r}.")
        nonlin = self._get_predict_nonlinearity()
        module = self.module_

        def mc_batch(x):
            embedding = module.forward_features(x)[0]
            return torch.stack([nonlin(module.classify(F.dropout(embedding, rate, training=True)))
                                for _ in range(int(n_samples))])

        with torch_seeded(random_state, self.device):
            return self._map_batches(X, mc_batch, axis=1)


class LossPredictionClassifier(ImageClassifier):
    """An :class:`ImageClassifier` trained jointly with LL4AL's loss-prediction head.

    The network returns (logits, predicted loss). The training loss is the
    mean classification loss plus ``loss_weight`` times the pairwise
    :func:`margin_ranking_loss` between predicted and true per-sample losses.
    The stage features reaching the loss head are detached from the backbone
    after epoch ``epoch_loss`` of each ``fit`` (0-based, as the reference's
    ``epoch > epoch_loss`` test), so late in training the ranking loss no
    longer shapes the classifier. One optimiser covers both parts: with the
    same SGD settings and schedule this equals the reference's two optimisers.

    SCAL's training trick (Hwang et al. 2022, as the MedMNIST study runs it)
    is off by default and turned on with ``trim_size`` and ``finetune_epochs``.

    Parameters
    ----------
    module : str, class or instance, default='resnet18'
        The backbone, as for :class:`ImageClassifier`.
    margin : float, default=1.0
        Margin of the ranking loss.
    loss_weight : float, default=1.0
        Weight of the ranking loss.
    epoch_loss : int, default=30
        Last 0-based epoch of each fit in which the ranking loss reaches the backbone.
    loss_hidden : int, default=128
        Units per stage in the loss head.
    loss_head : {'standard', 'study'}, default='standard'
        The loss head, by its name in :data:`skal.models.LOSS_HEADS`:
        ``'standard'`` is the learning-loss paper's (pooling, then a linear
        layer per stage); ``'study'`` is the MedMNIST study's, with a 3x3
        stride-2 convolution on every stage but the last before the pooling
        (the ``paper`` preset's). An unknown name is a ValueError at fit.
    trim_size : int, default=0
        SCAL: items of the labeled set left out of the joint training of each
        fit. On the first fit, the last ``trim_size`` items (the initial set is
        random, so this is a random drop). On later (warm) fits, ranked by the
        current model's true loss: ``trim_size // 2`` lowest-loss items among
        the ones seen in the previous fit and as many lowest-loss items among
        the new rows. The rows seen before are recognised by their content,
        in any order and position (an image given k times before counts as
        seen k times), so the same rows are left out whatever the order of
        ``X``; a warm fit on fresh data has only new rows.
    finetune_epochs : int, default=0
        SCAL: after the joint training, epochs of ranking-loss-only training of
        the loss head on the whole labeled set, backbone frozen in eval mode,
        with its own SGD (same lr, momentum, weight decay; no schedule).
    **kwargs
        As for :class:`ImageClassifier`.

    Attributes
    ----------
    trimmed_indices_ : ndarray of shape (n_trimmed,), int64
        Indices into the last ``fit``'s ``X`` of the rows left out of its
        joint training (empty without ``trim_size``).
    fit_row_digests_ : ndarray of shape (N,), bytes
        A digest of each row of the last ``fit``'s ``X`` (see
        :func:`row_digests`): how the next warm fit knows which rows it saw.
    """

    _parameter_constraints = {
        **ImageClassifier._parameter_constraints,
        "margin": [Interval(Real, 0, None, closed="left")],
        "loss_weight": RULES["loss_weight"].constraints,
        "epoch_loss": [Integral],
        "loss_hidden": [Interval(Integral, 1, None, closed="left")],
        "trim_size": [Interval(Integral, 0, None, closed="left")],
        "finetune_epochs": [Interval(Integral, 0, None, closed="left")],
        "loss_head": [StrOptions(set(LOSS_HEADS))],
    }

    def __init__(self, module="resnet18", *args, margin=1.0, loss_weight=1.0, epoch_loss=30,
                 loss_hidden=128, loss_head="standard", trim_size=0, finetune_epochs=0,
                 **kwargs):
        super().__init__(module, *args, **kwargs)
        self.margin = margin
        self.loss_weight = loss_weight
        self.epoch_loss = epoch_loss
        self.loss_hidden = loss_hidden
        self.loss_head = loss_head
        self.trim_size = trim_size
        self.finetune_epochs = finetune_epochs

    def initialize_module(self):
        super().initialize_module()
        if not isinstance(self.module_, LossPredictionNetwork):
            self.module_ = LossPredictionNetwork(self.module_, hidden=self.loss_hidden,
                                                 head=self.loss_head)
        return self

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        super().on_train_begin(net, X=X, y=y, **kwargs)
        self.fit_epoch_ = 0

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        super().on_epoch_begin(net, dataset_train=dataset_train, dataset_valid=dataset_valid, **kwargs)
        self.module_.detach_features = self.fit_epoch_ > self.epoch_loss
        self.fit_epoch_ += 1

    def get_loss(self, y_pred, y_true, X=None, training=False):
        logits, predicted_loss = y_pred
        target_loss = self.per_sample_loss(logits, y_true)
        ranking = margin_ranking_loss(predicted_loss, target_loss, self.margin)
        if self.module_.freeze_backbone:
            return ranking
        return target_loss.mean() + self.loss_weight * ranking

    def fit(self, X, y, **fit_params):
        """Joint training (see the class docstring), then SCAL's steps when enabled.

        Parameters
        ----------
        X : ndarray of shape (N, H, W) or (N, H, W, C), uint8 (or float in [0, 1])
        y : array-like of shape (N,), class labels (as for :class:`ImageClassifier`)
        **fit_params
            Passed to skorch's ``partial_fit``.

        Returns
        -------
        self
        """
        return super().fit(X, y, **fit_params)

    def _train(self, X, y, continuing, **fit_params):
        digests = row_digests(X)
        keep = self._rows_to_train(X, y, continuing, digests)
        self.trimmed_indices_ = np.setdiff1d(np.arange(len(X)), keep).astype(np.int64)
        super()._train(X[keep], y[keep], continuing, **fit_params)
        self.fit_row_digests_ = digests
        if int(self.finetune_epochs) > 0:
            self._finetune_loss_head(X, y)
        return self

    def _rows_to_train(self, X, y, continuing, digests):
        """Indices of the rows the joint training uses (all, unless ``trim_size``)."""
        n, trim = len(X), int(self.trim_size)
        if trim <= 0 or n - trim < 2:
            return np.arange(n)
        if not continuing:
            return np.arange(n - trim)
        seen = _seen_before(digests, getattr(self, "fit_row_digests_", digests[:0]))
        losses = self._per_sample_losses(X, y)
        half = trim // 2
        kept = [rows[np.argsort(losses[rows], kind="stable")][half:]
                for rows in (np.flatnonzero(seen), np.flatnonzero(~seen))]
        return np.sort(np.concatenate(kept))

    def true_loss(self, X, y):
        """Per-sample loss of the current model, in eval mode.

        Parameters
        ----------
        X : ndarray of shape (N, H, W) or (N, H, W, C)
        y : array-like of shape (N,), class labels among ``classes_``

        Returns
        -------
        ndarray of shape (N,), float32
            Cross-entropy of each item (the target the loss head learns).
        """
        self.check_is_fitted()
        X, y = self._check_X_y(X, y)
        return self._per_sample_losses(X, y)

    def _per_sample_losses(self, X, y):
        """:meth:`true_loss` of validated ``X`` and encoded ``y`` (0..C-1)."""
        self._set_training(False)
        losses = []
        with torch.no_grad():
            for xb, yb in self.get_iterator(self.get_dataset(X, y), training=False):
                logits = self.module_.classify(self.module_.forward_features(self._prepare(xb))[0])
                losses.append(self.per_sample_loss(logits, yb).float().cpu())
        return torch.cat(losses).numpy()

    def _finetune_loss_head(self, X, y):
        # skorch trains one set of parameters per fit; fine-tuning only the
        # head with the backbone frozen and in eval mode needs its own short loop.
        module = self.module_
        optimizer = torch.optim.SGD(
            module.loss_head.parameters(), lr=self.lr,
            **{k: v for k, v in self.get_params_for("optimizer").items()
               if k in ("momentum", "weight_decay")})
        module.freeze_backbone = True
        try:
            with self._seeded(self.epochs_trained_, 1):
                for _ in range(int(self.finetune_epochs)):
                    module.eval()
                    module.loss_head.train()
                    for xb, yb in self.get_iterator(self.get_dataset(X, y), training=True):
                        optimizer.zero_grad()
                        loss = self.get_loss(self.infer(xb), yb, training=True)
                        loss.backward()
                        optimizer.step()
        finally:
            module.freeze_backbone = False

    def predict_loss(self, X):
        """Predicted loss of each image (N,) float32, from the loss head in eval mode."""
        return self._map_batches(
            X, lambda x: self.module_.loss_head(self.module_.forward_features(x)[1]))
