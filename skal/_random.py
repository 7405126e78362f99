"""How skal turns a ``random_state`` into randomness: the one place for it.

Every skal function and estimator with a ``random_state`` takes

- ``None``: fresh, unpredictable randomness from the operating system
  (``numpy.random.SeedSequence()``). skal never reads or advances numpy's or
  torch's *global* generators, so ``np.random.seed`` or ``torch.manual_seed``
  do not make a skal call reproducible; an int ``random_state`` does.
- a non-negative ``int``: a fixed seed; the same int gives the same results.
- a ``numpy.random.Generator``: used as given (its state advances), so a
  sequence of calls sharing one Generator is reproducible as a whole.
- a ``numpy.random.RandomState``: one draw from it seeds the call (it advances).

Anything else (a negative int, a bool, a float, a string) raises
``InvalidParameterError`` (a ``ValueError`` and a ``TypeError``), naming the
parameter.

Three forms serve the three kinds of consumer:

- :func:`check_generator`: a ``numpy.random.Generator`` (query functions).
- :func:`check_legacy_rng`: what skal's kernels draw from. For an int it is
  ``numpy.random.RandomState(seed)``, the stream the kernels have always used
  for int seeds, so int-seeded picks stay as published; otherwise as
  :func:`check_generator`.
- :func:`check_seed`: an int seed, for libraries that take ints (torch,
  scikit-learn's KMeans) and for runs that record their seed to resume.
"""

from __future__ import annotations

import numbers

import numpy as np
from sklearn.utils._param_validation import InvalidParameterError

__all__ = ["check_generator", "check_legacy_rng", "check_seed"]

#: Draws from a RandomState or Generator give seeds below this (numpy's int32 maximum).
_SEED_HIGH = np.iinfo(np.int32).max


def _check(random_state, name):
    """``random_state`` itself after checking its type and sign (an int becomes a Python int)."""
    if random_state is None or isinstance(random_state, (np.random.Generator, np.random.RandomState)):
        return random_state
    if isinstance(random_state, numbers.Integral) and not isinstance(random_state, (bool, np.bool_)):
        if random_state < 0:
            raise InvalidParameterError(f"{name} must be a non-negative int, got {random_state}.")
        return int(random_state)
    raise InvalidParameterError(
        f"{name} must be None, a non-negative int, a numpy RandomState or Generator; "
        f"got {random_state!r} ({type(random_state).__name__}).")


def check_generator(random_state, name="random_state"):
    """A ``numpy.random.Generator`` for ``random_state`` (see the module docstring).

    Parameters
    ----------
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator
    name : str
        The parameter's name, for the error message.

    Returns
    -------
    numpy.random.Generator
        ``random_state`` itself when it is a Generator; ``default_rng(seed)``
        for an int; seeded by one draw from a RandomState; fresh OS entropy for None.

    Raises
    ------
    InvalidParameterError
        Anything else, or a negative int.
    """
    random_state = _check(random_state, name)
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(_SEED_HIGH))
    return np.random.default_rng(random_state)  # None: fresh OS entropy


def check_legacy_rng(random_state, name="random_state"):
    """The kernels' random source: ``RandomState(seed)`` for an int, else :func:`check_generator`.

    Parameters
    ----------
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator
    name : str
        The parameter's name, for the error message.

    Returns
    -------
    numpy.random.RandomState or numpy.random.Generator
        Both have ``.random()``, the only call the kernels make. A RandomState
        is used as given.

    Raises
    ------
    InvalidParameterError
        As :func:`check_generator`; an int above 2**32 - 1 raises numpy's ValueError.
    """
    random_state = _check(random_state, name)
    if isinstance(random_state, numbers.Integral):
        return np.random.RandomState(random_state)
    if isinstance(random_state, np.random.RandomState):
        return random_state
    return check_generator(random_state, name)


def check_seed(random_state, name="random_state"):
    """An int seed for ``random_state`` (see the module docstring).

    Parameters
    ----------
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator
    name : str
        The parameter's name, for the error message.

    Returns
    -------
    int
        The int itself; one draw below 2**31 - 1 from a RandomState or
        Generator; fresh OS entropy (a 128-bit int) for None.

    Raises
    ------
    InvalidParameterError
        As :func:`check_generator`.
    """
    random_state = _check(random_state, name)
    if random_state is None:
        return int(np.random.SeedSequence().entropy)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(_SEED_HIGH))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(_SEED_HIGH))
    return random_state
