"""Run modAL 0.4.1 on every scikit-learn skal supports (1.6 to 1.9 and on).

modAL is unmaintained. Its ``BaseLearner`` (``modAL/models/base.py``, the only
modAL module that validates data) calls::

    check_X_y(X, y, ..., force_all_finite=self.force_all_finite)

scikit-learn 1.6 renamed that keyword to ``ensure_all_finite`` (the old name
warns with a FutureWarning on 1.6 and 1.7) and 1.8 removed it, so on 1.8+
``ActiveLearner(...)``, ``teach`` and ``fit`` raise
``TypeError: check_X_y() got an unexpected keyword argument 'force_all_finite'``.

The bridge rebinds the name ``check_X_y`` *inside* ``modAL.models.base`` (the
name that module imported with ``from sklearn.utils import check_X_y``) to
:func:`check_X_y` below, which renames the keyword and calls scikit-learn's
function. modAL's installed files are not edited, scikit-learn itself is not
patched (other callers of ``sklearn.utils.check_X_y`` are untouched), and no
warning is emitted on any call. The rebinding happens once, when this module
is first imported; :mod:`skal.estimator` and :mod:`skal.query` import it, so
it is in place whenever skal's learners or query functions are used, while
``import skal`` stays free of modAL.

Nothing here is written by hand that scikit-learn or modAL provide: this is a
keyword rename, the one thing neither library does for the other.
"""

from __future__ import annotations

import inspect

import modAL.models.base as _modal_base
from sklearn.utils import check_X_y as _sklearn_check_X_y

__all__ = ["check_X_y", "apply", "is_applied"]

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


def is_applied():
    """Whether ``modAL.models.base`` calls :func:`check_X_y` of this module."""
    return _modal_base.check_X_y is check_X_y


def apply():
    """Rebind ``modAL.models.base.check_X_y`` to the bridge (idempotent)."""
    _modal_base.check_X_y = check_X_y


apply()
