"""Side effects of an experiment's cycles, as callback objects.

:meth:`skal.experiment.ActiveLearningClassifier.fit` holds the loop only;
whatever happens around a cycle without changing what it computes (keeping
each cycle's model, writing the checkpoint, printing a line, writing result
files, moving a progress bar) is a :class:`Callback`, as skorch's networks
do with theirs (``skorch.callbacks``). The experiment builds its default
callbacks from its parameters (``keep_models``, ``checkpoint_dir``,
``verbose``), then runs those passed in ``callbacks``, in order.

The hooks, each given the experiment:

``on_fit_begin(experiment, X, y, X_eval, y_eval)``
    Before the first cycle. A callback that restores a saved run (as
    skorch's ``LoadInitState`` restores a network) returns that run's state;
    the others return None.
``on_cycle_end(experiment, record)``
    After each cycle computed by this ``fit`` (not for cycles restored from
    a checkpoint), once ``learning_curve_`` holds ``record``.
``on_fit_end(experiment)``
    After the last cycle, also when every cycle was restored.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import numbers
import os
import pickle
from pathlib import Path

import numpy as np

from skal.exceptions import CheckpointMismatchError
from skal.query import final_step
from skal.results import atomic_write

__all__ = ["Callback", "KeepModels", "Checkpoint", "PrintCycle", "StoppingRules",
           "CHECKPOINT_FILE"]

#: Name of the checkpoint file inside a checkpoint folder.
CHECKPOINT_FILE = "checkpoint.pkl"
_CHECKPOINT_VERSION = 1

# The experiment's parameters that change how a run reports, not what it
# computes: a resumed run may use other values (e.g. a progress bar on, or off).
RUNTIME_PARAMS = ("checkpoint_dir", "callbacks", "verbose")
# The same for the network's parameters.
_ESTIMATOR_RUNTIME_PARAMS = ("verbose", "callbacks")


class Callback:
    """Base class of the experiment's callbacks: every hook does nothing.

    Subclasses override the hooks they need (see the module's docstring).
    """

    def on_fit_begin(self, experiment, X=None, y=None, X_eval=None, y_eval=None):
        """Before the first cycle; return a saved state to resume from, or None."""

    def on_cycle_end(self, experiment, record):
        """After each cycle computed now; ``record`` is its ``learning_curve_`` entry."""

    def on_fit_end(self, experiment):
        """After the last cycle."""


class KeepModels(Callback):
    """Append a lasting copy of each cycle's model to ``experiment.cycle_models_``.

    A skorch network's weights are copied to the CPU (a ``state_dict``);
    any other model is deep-copied.
    """

    def on_cycle_end(self, experiment, record):
        experiment.cycle_models_.append(snapshot(experiment.estimator_))


def snapshot(estimator):
    """A copy of the model that lasts: a skorch network's weights on the CPU, else a deep copy."""
    module = getattr(final_step(estimator), "module_", None)
    if module is not None and hasattr(module, "state_dict"):
        return {k: v.detach().cpu().clone() for k, v in module.state_dict().items()}
    return copy.deepcopy(estimator)


class PrintCycle(Callback):
    """Print one line per cycle: labeled items, ACC and AUC, seconds."""

    def on_cycle_end(self, experiment, record):
        print(format_record(record), flush=True)


def format_record(record):
    """One line of text for a ``learning_curve_`` record."""
    text = f"cycle {record['cycle']}: {record['n_labeled']} labeled"
    if "acc" in record:
        text += f", acc {record['acc']:.4f}, auc {record['auc']:.4f}"
    return text + f" (train {record['train_seconds']:.1f}s, query {record['query_seconds']:.1f}s)"


class StoppingRules(Callback):
    """Record when each stopping rule of :mod:`skal.stopping` would have stopped the run.

    After each cycle the model predicts a fixed stop set (``stop_set``, or
    ``stop_set_size`` images of the pool drawn once at the start, as
    Bloodgood & Vijay-Shanker draw theirs from the unlabeled data); the kappa
    with the previous model's predictions feeds the stabilizing-predictions
    rule. When the experiment evaluates (``X_eval``), the accuracy curve so
    far feeds the power-law forecast of the next ``n_more`` labels. Cycles
    restored from a checkpoint are not seen (no model to ask), so use it on
    a fresh run.

    Parameters
    ----------
    stop_set : array-like of shape (S, ...), optional
        Images the models predict; default: drawn from the pool.
    stop_set_size : int, default=1000
        Size of the drawn stop set (the whole pool when smaller).
    threshold, window : float, int
        Of :func:`skal.stopping.stabilizing_predictions` (0.99, 3).
    n_more : int, optional
        Forecast horizon in labels; default two queries' worth (``2 * query_size``).
    min_gain : float, default=0.01
        The forecast rule stops when the forecast gain is below this (1 point).
    min_points : int, default=4
        Evaluated cycles before the forecast rule may fire.
    random_state : int, default=0
        Draws the stop set.

    Attributes
    ----------
    history_ : list of dict
        Per cycle: ``cycle``, ``n_labeled``, ``kappa`` (NaN for the first),
        ``agreement`` (of the last ``window`` models; NaN before), and, with an
        evaluation, ``forecast_gain``, ``forecast_low``, ``forecast_high``
        (NaN before 3 points).
    stops_ : dict of str to int or None
        ``'stabilizing_predictions'`` and ``'forecast'``: the labeled-set size
        at which the rule first fired (None: never).
    """

    affects_results = False

    def __init__(self, stop_set=None, stop_set_size=1000, threshold=0.99, window=3,
                 n_more=None, min_gain=0.01, min_points=4, random_state=0):
        self.stop_set = stop_set
        self.stop_set_size = stop_set_size
        self.threshold = threshold
        self.window = window
        self.n_more = n_more
        self.min_gain = min_gain
        self.min_points = min_points
        self.random_state = random_state

    def on_fit_begin(self, experiment, X=None, y=None, X_eval=None, y_eval=None):
        if self.stop_set is not None:
            self.stop_set_ = self.stop_set
        else:
            rng = np.random.default_rng(self.random_state)
            size = min(int(self.stop_set_size), len(X))
            self.stop_set_ = X[np.sort(rng.choice(len(X), size, replace=False))]
        self.predictions_, self.history_ = [], []
        self.stops_ = {"stabilizing_predictions": None, "forecast": None}

    def on_cycle_end(self, experiment, record):
        from skal import stopping

        self.predictions_.append(np.asarray(experiment.predict(self.stop_set_)))
        entry = {"cycle": record["cycle"], "n_labeled": record["n_labeled"],
                 "kappa": (stopping.kappa(*self.predictions_[-2:])
                           if len(self.predictions_) > 1 else float("nan")),
                 "agreement": (stopping.agreement(self.predictions_[-self.window:])
                               if len(self.predictions_) >= self.window else float("nan"))}
        if (self.stops_["stabilizing_predictions"] is None and stopping.stabilizing_predictions(
                self.predictions_, self.threshold, self.window) is not None):
            self.stops_["stabilizing_predictions"] = record["n_labeled"]
        if "acc" in record:
            curve = [(h["n_labeled"], h["acc"]) for h in self.history_] + [
                (record["n_labeled"], record["acc"])]
            entry["acc"] = record["acc"]
            entry["forecast_gain"] = entry["forecast_low"] = entry["forecast_high"] = float("nan")
            if len(curve) >= 3:
                n_more = 2 * experiment.query_size if self.n_more is None else self.n_more
                f = stopping.forecast_gain(*zip(*curve), n_more)
                entry.update(forecast_gain=f.gain, forecast_low=f.low, forecast_high=f.high)
                if self.stops_["forecast"] is None and stopping.forecast_says_stop(
                        f, len(curve), self.min_gain, "point", self.min_points):
                    self.stops_["forecast"] = record["n_labeled"]
        self.history_.append(entry)


class Checkpoint(Callback):
    """Save the run after every cycle; resume a saved run with the same data and parameters.

    After each cycle the state (the fitted estimator pickled, the labeled
    indices, the learning curve, the cycle number, the run's entropy) is
    written atomically to ``dirname/checkpoint.pkl``. At the start of a fit
    a saved state is returned for the experiment to resume from, when its
    fingerprint (a digest of the data and every result-changing parameter)
    matches this run's; otherwise :class:`~skal.exceptions.CheckpointMismatchError`
    names what differs. Parameters that only change reporting may differ:
    the experiment's ``checkpoint_dir``, ``callbacks`` and ``verbose``, the
    network's ``verbose`` and its callbacks marked ``affects_results = False``.

    Parameters
    ----------
    dirname : path-like
        The checkpoint's folder.
    """

    def __init__(self, dirname):
        self.dirname = dirname

    @property
    def path(self):
        """The checkpoint file, ``dirname/checkpoint.pkl``."""
        return Path(os.fspath(self.dirname)) / CHECKPOINT_FILE

    def on_fit_begin(self, experiment, X=None, y=None, X_eval=None, y_eval=None):
        self.fingerprint_ = fingerprint(experiment, hash_arrays(X, y, X_eval, y_eval))
        self._defaults = _described_defaults(experiment)
        state = self._load()
        if state is not None:
            state["estimator"] = _adopt_runtime_params(state["estimator"], experiment.estimator)
        return state

    def on_cycle_end(self, experiment, record):
        curve = experiment.learning_curve_
        state = {
            "version": _CHECKPOINT_VERSION,
            "fingerprint": self.fingerprint_,
            "entropy": experiment.entropy_,
            "cycle": len(curve),
            "estimator": experiment.estimator_,
            "labeled_indices": experiment.labeled_indices_,
            "pending": np.asarray(record["queried"], dtype=np.int64),
            "learning_curve": curve,
            "cycle_models": experiment.cycle_models_,
        }
        atomic_write(self.path, lambda fh: pickle.dump(state, fh, protocol=pickle.HIGHEST_PROTOCOL))

    def _load(self):
        path = self.path
        if not path.is_file():
            return None
        with open(path, "rb") as fh:
            state = pickle.load(fh)
        if state.get("version") != _CHECKPOINT_VERSION:
            raise CheckpointMismatchError(
                f"{path} was written by another version of skal; delete it to start over.",
                path, ("version",))
        old, new = state["fingerprint"], self.fingerprint_
        if old["data"] != new["data"]:
            raise CheckpointMismatchError(
                f"{path} holds a run on other data (X, y, X_eval or y_eval differ); use "
                f"another checkpoint_dir or delete it to start over.", path, ("data",))
        # A parameter that a newer skal added is fine at its default: the old
        # run computed what it computes.
        missing = object()
        keys = sorted(k for k in set(old["params"]) | set(new["params"])
                      if old["params"].get(k, missing) != new["params"].get(k, missing)
                      and not (k not in old["params"]
                               and new["params"][k] == self._defaults.get(k, missing)))
        if keys:
            raise CheckpointMismatchError(
                f"{path} holds a run with other parameters ({', '.join(keys)} differ); use "
                f"another checkpoint_dir or delete it to start over.", path, keys)
        return state


def _adopt_runtime_params(loaded, template):
    """Give a model loaded from a checkpoint this run's reporting settings (from ``template``)."""
    net, template = final_step(loaded), final_step(template)
    if not hasattr(template, "get_params"):
        return loaded
    current = template.get_params(deep=False)
    for key in _ESTIMATOR_RUNTIME_PARAMS:
        if key in current:
            setattr(net, key, copy.deepcopy(current[key]))
    if getattr(net, "initialized_", False) and hasattr(net, "initialize_callbacks"):
        net.initialize_callbacks()  # skorch keeps built callbacks in callbacks_
    return loaded


# ----------------------------------------------------------------------------
# The fingerprint: what a checkpoint must match
# ----------------------------------------------------------------------------


def fingerprint(experiment, arrays_digest):
    """The data's digest and every result-changing parameter of ``experiment``, comparable.

    Returns
    -------
    dict
        ``{'data': arrays_digest, 'params': {name: description}}``; the
        estimator's own parameters are flattened one level
        (``estimator__lr``), so a mismatch can name them.
    """
    own = {k: v for k, v in experiment.get_params(deep=False).items()
           if k not in RUNTIME_PARAMS}
    if not _is_int(own["random_state"]):
        own["random_state"] = None  # the drawn entropy lives in the checkpoint
    params = {}
    for key, value in own.items():
        if key == "estimator" and hasattr(value, "get_params"):
            params[key] = _qualname(type(value))
            for sub, sub_value in _result_params(value.get_params(deep=False)).items():
                params[f"{key}__{sub}"] = _describe(sub_value)
        else:
            params[key] = _describe(value)
    return {"data": arrays_digest, "params": params}


def _described_defaults(experiment):
    """The default of every parameter of the experiment and its estimator, described as
    :func:`fingerprint` describes values (estimator parameters prefixed ``estimator__``)."""
    defaults = {}
    for prefix, owner in (("", experiment), ("estimator__", experiment.estimator)):
        for cls in type(owner).__mro__:  # subclasses pass their parents' by **kwargs
            try:
                signature = inspect.signature(cls.__init__)
            except (TypeError, ValueError):
                continue
            for name, param in signature.parameters.items():
                if param.default is not param.empty:
                    defaults.setdefault(prefix + name, _describe(param.default))
    return defaults


def hash_arrays(*arrays):
    """A hex digest of the arrays' shapes, dtypes and bytes (None counts as empty)."""
    digest = hashlib.sha1(usedforsecurity=False)
    for array in arrays:
        if array is None:
            digest.update(b"None;")
            continue
        array = np.ascontiguousarray(array)
        digest.update(f"{array.shape}{array.dtype.str};".encode())
        digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()


def _is_int(value):
    return isinstance(value, (numbers.Integral, np.integer)) and not isinstance(value, bool)


def _describe(value):
    """A stable, comparable description of a parameter value (no memory addresses)."""
    if not isinstance(value, type) and hasattr(value, "get_params"):
        params = _result_params(value.get_params(deep=False))
        return (_qualname(type(value)),
                tuple(sorted((k, _describe(v)) for k, v in params.items())))
    if isinstance(value, type) or inspect.isroutine(value):
        return _qualname(value)
    if isinstance(value, (list, tuple)):
        return tuple(_describe(v) for v in value)
    if isinstance(value, (set, frozenset)):  # sorted: set order changes between processes
        return tuple(sorted(map(repr, map(_describe, value))))
    if isinstance(value, dict):
        return tuple(sorted((str(k), _describe(v)) for k, v in value.items()))
    if isinstance(value, np.ndarray):
        return ("ndarray", hash_arrays(value))
    if value is None or isinstance(value, (bool, numbers.Number, str, bytes)):
        return repr(value)
    text = repr(value)
    return _qualname(type(value)) if " at 0x" in text else text


def _result_params(params):
    """Drop the parameters that only change reporting (verbosity, progress callbacks)."""
    params = {k: v for k, v in params.items()
              if k != "verbose" and "callbacks__" not in k and not k.startswith("_")}
    if params.get("callbacks") is not None:
        params["callbacks"] = [cb for cb in params["callbacks"] if _affects_results(cb)]
    return params


def _qualname(obj):
    return f"{getattr(obj, '__module__', '?')}.{getattr(obj, '__qualname__', repr(obj))}"


def _affects_results(callback):
    """Callbacks may opt out of the checkpoint fingerprint (progress bars, loggers)."""
    if isinstance(callback, tuple) and len(callback) == 2:
        callback = callback[1]
    return getattr(callback, "affects_results", True)
