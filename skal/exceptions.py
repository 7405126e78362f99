"""The errors an experiment raises before it trains anything."""

from __future__ import annotations

__all__ = ["ExperimentConfigError", "CheckpointMismatchError", "BudgetWarning"]


class ExperimentConfigError(ValueError):
    """Settings or data that an experiment cannot run with, found before any training."""


class CheckpointMismatchError(ExperimentConfigError):
    """``checkpoint_dir`` holds a run made with other data or parameters.

    Attributes
    ----------
    path : pathlib.Path
        The checkpoint file.
    differing : tuple of str
        The parameters that differ (``('data',)`` when the data do).
    """

    def __init__(self, message, path=None, differing=()):
        super().__init__(message)
        self.path = path
        self.differing = tuple(differing)


class BudgetWarning(UserWarning):
    """The pool holds fewer items than ``n_initial + (n_cycles - 1) * query_size``.

    :class:`~skal.experiment.ActiveLearningClassifier` then clamps the run
    (fewer initial items, a last query of what is left, fewer cycles) and
    warns with this; the command line, whose budgets are the study's, turns
    it into an error.
    """
