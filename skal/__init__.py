"""skal: scikit-learn-style active learning for biomedical image classification.

The main names are importable from here, loaded on first use (PEP 562), so
``import skal`` (and the command line's start-up) does not pay for torch::

    from skal import ActiveLearningClassifier, ImageClassifier, LossPredictionClassifier
    from skal import STRATEGIES, load_medmnist

Glossary (one name per concept; each layer uses these names)
------------------------------------------------------------
pool
    The items a query may choose from: ``X`` of ``ActiveLearningClassifier.fit``
    minus the labeled set. Query functions receive its rows as ``X_pool``;
    :class:`skal.query.QueryPool` is the part of it one query scores (the
    subsample), with the network that scores it.
subsample
    How many pool items one query scores (``None``: all; an int; ``'paper'``).
query_size
    Items labeled per query, the per-cycle batch, in the experiment's
    parameters. The presets and the command line call the same number the
    ``budget`` (``--budget``: it also sizes the initial set, as in the study).
    At the modAL boundary it is modAL's ``n_instances``: every query function
    (and :class:`skal.query.QueryPool`) takes ``n_instances``, as modAL passes
    it. The torch kernels (:mod:`skal.kernels`), which know no learner, call
    the count they pick ``n_select``.
n_initial
    Size of the random initial labeled set.
cycle
    One training (and evaluation) of the loop, numbered from 1; the queries
    happen between cycles.
seed
    Names a trial: each trial of a method runs with its own seed, the trial's
    folder is ``trial_<seed>`` and the result files' column is ``seed``.
strategy, method
    A query function (``query_strategy`` in the estimator, registered in
    :data:`skal.query.STRATEGIES`); the command line calls its name the
    ``--method``.
requirement
    What a strategy needs from the estimator (``'embedding'``, ``'dropout'``,
    ``'loss_head'``, ``'single_label'``), declared once with
    :func:`skal.query.requires` and checked by :func:`skal.query.check_requirements`.
callback
    A per-cycle side effect of an experiment (:mod:`skal.callbacks`): the
    checkpoint, result files, progress, printing.

Modules: ``estimator`` (the skorch image classifiers), ``models``, ``query``
(strategies), ``kernels``, ``experiment`` (the loop), ``callbacks``,
``protocols`` (presets), ``data``, ``metrics``, ``runner`` (trials and
benchmark cells), ``results`` (result files), ``cli``.
"""

from importlib import import_module
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("skal")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"

# Public name -> the module that defines it, imported on first access.
_LAZY = {
    "ActiveLearningClassifier": "skal.experiment",
    "ImageClassifier": "skal.estimator",
    "LossPredictionClassifier": "skal.estimator",
    "STRATEGIES": "skal.query",
    "load_medmnist": "skal.data",
}

__all__ = [*_LAZY, "__version__"]


def __getattr__(name):
    if name in _LAZY:
        value = getattr(import_module(_LAZY[name]), name)
        globals()[name] = value  # later lookups skip this function
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
