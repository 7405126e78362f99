"""The lower bounds CI installs (.ci/lower-bounds.txt) are pyproject.toml's.

.ci/run builds a second environment with ``pip install -c .ci/lower-bounds.txt``
and runs the modAL and estimator tests in it; this test keeps that file from
drifting away from the bounds pyproject declares.
"""

from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")  # standard library from Python 3.11

ROOT = Path(__file__).resolve().parents[1]


def _pyproject_lower_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    # bench (scikit-activeml, for benchmarks/query_speed.py alone) is not installed by CI.
    lines = [*project["dependencies"], *extras["label"], *extras["dev"], *extras["dask"]]
    bounds = {}
    for line in lines:
        req = Requirement(line)
        if canonicalize_name(req.name) == "skal":
            continue  # dev's skal[label]: the label extra is in the list already
        lower = [s.version for s in req.specifier if s.operator == ">="]
        assert len(lower) == 1, f"{line!r} must declare exactly one lower bound (>=)"
        bounds[canonicalize_name(req.name)] = (Version(lower[0]), req.specifier)
    return bounds


def _constraints():
    pins = {}
    for line in (ROOT / ".ci" / "lower-bounds.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            req = Requirement(line)
            (spec,) = req.specifier
            assert spec.operator == "==", f"{line!r}: pin lower bounds with =="
            pins[canonicalize_name(req.name)] = Version(spec.version)
    return pins


def test_ci_lower_bounds_are_pyprojects_lower_bounds():
    bounds, pins = _pyproject_lower_bounds(), _constraints()
    assert sorted(pins) == sorted(bounds)
    for name, (lower, specifier) in bounds.items():
        assert pins[name] == lower, f"{name}: .ci/lower-bounds.txt has {pins[name]}, pyproject >={lower}"
        assert specifier.contains(pins[name])
