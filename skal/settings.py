"""The rules of skal's settings, each declared once.

A rule is a list of scikit-learn parameter constraints (what
``_parameter_constraints`` holds) and the same rule in words. Everything that
checks a setting reads it from :data:`RULES`: the experiment's and the
estimators' ``_parameter_constraints`` (scikit-learn's message, naming the
parameter), the command line and the benchmark runner through
:func:`skal.runner.check_settings` (a one-line error naming the flag) and a
labeling project's settings (:class:`skal.label.project.LabelError` naming
the flag). :func:`check_setting` gives the flag-style message.

Examples
--------
>>> check_setting("--budget", 0, "budget")
Traceback (most recent call last):
...
ValueError: --budget must be an integer >= 1, got 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from numbers import Integral, Real

from sklearn.utils._param_validation import Interval, Options

from skal.registry import SIZES

__all__ = ["Rule", "RULES", "check_setting"]


@dataclass(frozen=True)
class Rule:
    """One setting's rule.

    Attributes
    ----------
    constraints : list
        scikit-learn parameter constraints; a value is valid when one of them
        is satisfied (as in ``_parameter_constraints``). A bool is never a
        number here.
    says : str
        The rule in words, completing "``<name>`` must be ...".
    """

    constraints: list
    says: str

    def allows(self, value):
        """Whether ``value`` satisfies the rule."""
        if isinstance(value, bool):
            return False
        return any(c.is_satisfied_by(value) for c in self.constraints)


def _at_least(minimum):
    return Rule([Interval(Integral, minimum, None, closed="left")], f"an integer >= {minimum}")


#: The rules, by setting. Callers map their own parameter names onto them
#: (``--budget`` and the experiment's ``n_initial``/``query_size`` are ``budget``).
RULES = {
    # Items labeled per cycle (also the initial set's size), or per labeling round.
    "budget": _at_least(1),
    # Trainings per trial.
    "cycles": _at_least(1),
    "trials": _at_least(1),
    # Epochs per training.
    "epochs": _at_least(1),
    "batch_size": _at_least(1),
    "dropout": Rule([Interval(Real, 0, 1, closed="left")], "in [0, 1)"),
    "lr": Rule([Interval(Real, 0, None, closed="neither")], "a positive number"),
    # The ranking loss's weight of LL4AL and SCAL.
    "loss_weight": Rule([Interval(Real, 0, None, closed="left")], "a number >= 0"),
    # A trial's or project's seed: numpy and torch take 0 <= seed < 2**32.
    "seed": Rule([Interval(Integral, 0, 2**32, closed="left")], "in [0, 2**32)"),
    # A MedMNIST file's image side.
    "size": Rule([Options(Integral, set(SIZES))], f"one of {', '.join(map(str, SIZES))}"),
    # A labeling project's image side (its own images are resized to it).
    "image_size": _at_least(4),
    # A labeling project's held-out fraction, its smallest scored held-out set,
    # and the rounds an unsure/skip answer keeps an item out of the queries.
    "holdout": Rule([Interval(Real, 0, 1, closed="left")], "a fraction in [0, 1)"),
    "min_holdout": _at_least(1),
    "skip_cooldown": _at_least(0),
}


def check_setting(name, value, rule, error=ValueError):
    """Refuse a value that breaks its rule, with a message naming the setting.

    Parameters
    ----------
    name : str
        The setting as the caller's user knows it (``'--budget'``).
    value : object
    rule : str
        A key of :data:`RULES`.
    error : type, default=ValueError
        The exception to raise (the caller's own, e.g. a ``SettingsError``).

    Raises
    ------
    error
        ``'<name> must be <rule>, got <value>.'``
    """
    if not RULES[rule].allows(value):
        shown = repr(value) if isinstance(value, str) else value
        raise error(f"{name} must be {RULES[rule].says}, got {shown}.")
