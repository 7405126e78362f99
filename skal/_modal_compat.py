"""Run modAL 0.4.1 on every scikit-learn, numpy and pandas skal supports.

modAL is unmaintained, and three of its calls broke on the versions skal
installs (scikit-learn >= 1.6, numpy >= 1.24, pandas >= 2.0). This module
mends each from outside: it rebinds names *inside* modAL's modules (the names
they imported or looked up) to replacements here, never edits modAL's files,
and never adds a name to scikit-learn, numpy or pandas, whose other callers
are untouched. It runs once, when first imported; :mod:`skal.estimator` and
:mod:`skal.query` import it, so it is in place whenever skal's learners or
query functions are used, while ``import skal`` stays free of modAL.

1. ``check_X_y(force_all_finite=...)`` (scikit-learn 1.8). Its
   ``BaseLearner`` (``modAL/models/base.py``, the only modAL module that
   validates data) calls::

    check_X_y(X, y, ..., force_all_finite=self.force_all_finite)

scikit-learn 1.6 renamed that keyword to ``ensure_all_finite`` (the old name
warns with a FutureWarning on 1.6 and 1.7) and 1.8 removed it, so on 1.8+
``ActiveLearner(...)``, ``teach`` and ``fit`` raise
``TypeError: check_X_y() got an unexpected keyword argument 'force_all_finite'``.
   The bridge rebinds ``check_X_y`` in ``modAL.models.base`` to
   :func:`check_X_y` below, which renames the keyword (no warning on any call).

2. ``DataFrame.append`` (pandas 2.0). ``modAL.utils.data.data_vstack`` stacks
   DataFrames with it, so ``teach`` with DataFrames raised ``AttributeError``.
   :func:`data_vstack` below stacks DataFrames with ``pandas.concat`` (what
   ``append`` did) and hands every other input to modAL's own function; it is
   bound wherever modAL imported ``data_vstack``.

3. ``np.float`` and ``np.bool`` (numpy 1.24; numpy 2.0 brought ``np.bool``
   back). ``modAL.expected_error`` names ``np.float`` in a parameter's type
   annotation, which Python evaluates when the module runs, so the module
   could not be imported. The bridge imports it from modAL's unchanged source
   with annotations left unevaluated (PEP 563, ``from __future__ import
   annotations``; nothing in modAL reads them back), so ``np.float`` is
   never looked up. ``modAL.batch.ranked_batch`` calls ``np.ones(n,
   np.bool)`` at run time; where numpy lacks ``np.bool`` (1.24 to 1.26) the
   name ``np`` inside ``modAL.batch`` is bound to :class:`_NumpyForModal`,
   numpy with that one alias (the builtin ``bool``, what it always meant).

Nothing here is written by hand that scikit-learn, numpy, pandas or modAL
provide: a keyword rename, a ``pandas.concat`` call and an import without
annotations are what none of them does for the others.
"""

from __future__ import annotations

import __future__
import importlib
import importlib.util
import inspect
import sys
import types
import warnings

import modAL.batch as _modal_batch
import modAL.models.base as _modal_base
import modAL.utils as _modal_utils
import modAL.utils.data as _modal_data
import numpy as np
import pandas as pd
from sklearn.utils import check_X_y as _sklearn_check_X_y

__all__ = ["check_X_y", "data_vstack", "apply", "is_applied"]

# modAL's own stacking function, for every input that is not a DataFrame.
_modal_data_vstack = _modal_data.data_vstack

# scikit-learn >= 1.6 names the keyword ``ensure_all_finite``; before 1.6 it
# only knew ``force_all_finite``, which then needs no renaming.
_NEW_NAME = "ensure_all_finite" in inspect.signature(_sklearn_check_X_y).parameters


def check_X_y(*args, force_all_finite=None, **kwargs):
    """scikit-learn's ``check_X_y``, also taking modAL's ``force_all_finite``.

    ``force_all_finite`` (bool or ``'allow-nan'``), when given, is passed on as
    ``ensure_all_finite`` where the installed scikit-learn has that name, and
    unchanged otherwise. Every other argument and the return value are
    scikit-learn's: see ``sklearn.utils.check_X_y``.
    """
    if force_all_finite is not None:
        kwargs["ensure_all_finite" if _NEW_NAME else "force_all_finite"] = force_all_finite
    return _sklearn_check_X_y(*args, **kwargs)


def data_vstack(blocks):
    """modAL's ``data_vstack``, stacking DataFrames with ``pandas.concat``.

    Parameters
    ----------
    blocks : sequence of DataFrame, ndarray, sparse matrix or list
        When the first is a DataFrame, the others are rows to append to it
        (DataFrames, or Series, each one row), as ``DataFrame.append`` took
        them before pandas 2.0 removed it; the index is kept, as ``append``
        kept it. Any other input goes to modAL's own function.

    Returns
    -------
    stacked : same type as ``blocks[0]`` (sparse when any block is)
    """
    if isinstance(blocks[0], pd.DataFrame) and not any(map(_is_sparse, blocks)):
        return pd.concat([b.to_frame().T if isinstance(b, pd.Series) else b for b in blocks])
    return _modal_data_vstack(blocks)


def _is_sparse(block):
    import scipy.sparse

    return scipy.sparse.issparse(block)


class _NumpyForModal(types.ModuleType):
    """numpy as ``modAL.batch`` sees it where numpy lacks ``np.bool`` (1.24 to 1.26).

    Every attribute is numpy's; ``bool`` is the builtin, what the alias always
    was. numpy itself is not changed.
    """

    bool = bool

    def __getattr__(self, name):
        return getattr(np, name)


def _import_without_evaluating_annotations(name):
    """Import modAL's module ``name`` from its unchanged source under PEP 563."""
    spec = importlib.util.find_spec(name)
    with warnings.catch_warnings():
        # modAL 0.4.1 compares strings with `is` (a SyntaxWarning when compiled);
        # a normal import shows it once, when the .pyc is written, never again.
        warnings.simplefilter("ignore", SyntaxWarning)
        code = compile(spec.loader.get_source(name), spec.origin, "exec",
                       flags=__future__.annotations.compiler_flag, dont_inherit=True)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        exec(code, module.__dict__)
    except BaseException:
        del sys.modules[name]
        raise
    parent, _, child = name.rpartition(".")
    setattr(importlib.import_module(parent), child, module)  # as the import system does
    return module


def _expected_error_module():
    name = "modAL.expected_error"
    if name in sys.modules:
        return sys.modules[name]
    try:
        return importlib.import_module(name)
    except AttributeError:  # np.float in an annotation (numpy >= 1.24)
        return _import_without_evaluating_annotations(name)


def _modules_using_data_vstack():
    return (_modal_data, _modal_utils, _modal_base, _modal_batch, _expected_error_module())


def is_applied():
    """Whether every part of the bridge is in place in modAL's modules."""
    return (_modal_base.check_X_y is check_X_y
            and all(m.data_vstack is data_vstack for m in _modules_using_data_vstack())
            and (hasattr(np, "bool") or isinstance(_modal_batch.np, _NumpyForModal)))


def apply():
    """Rebind modAL's names to the bridge's (idempotent); see the module's docstring."""
    _modal_base.check_X_y = check_X_y
    for module in _modules_using_data_vstack():
        module.data_vstack = data_vstack
    if not hasattr(np, "bool") and not isinstance(_modal_batch.np, _NumpyForModal):
        _modal_batch.np = _NumpyForModal("numpy")


apply()
