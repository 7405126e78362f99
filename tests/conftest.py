"""Shared fixtures: the real MedMNIST files, synthetic files in the same format,
and a guard that keeps tests off the network."""

import os
import urllib.error
from pathlib import Path

import numpy as np
import pytest
from medmnist import INFO

# The three official files, kept beside the repository, not in it (skal ships
# two of them; retinamnist only comes from here).
DEFAULT_REAL_ROOT = Path(__file__).resolve().parents[2] / "shared" / "data" / "medmnist"
REAL_FLAGS = ("breastmnist", "retinamnist", "pneumoniamnist")


def _real_files_folder():
    return Path(os.environ.get("MEDMNIST_ROOT") or DEFAULT_REAL_ROOT).expanduser()


@pytest.fixture(scope="session")
def real_root():
    """Folder with the real breastmnist, retinamnist and pneumoniamnist files.

    ``$MEDMNIST_ROOT`` when set, else ``../shared/data/medmnist`` next to the
    repository. Skips the test when the folder does not exist.
    """
    root = _real_files_folder()
    if not root.is_dir():
        pytest.skip(f"real MedMNIST files not found in {root} (set MEDMNIST_ROOT)")
    return root


@pytest.fixture(scope="session")
def shipped_root(tmp_path_factory):
    """Data root for tests that need only pneumoniamnist or breastmnist at 28x28.

    The real files' folder when there is one, else an empty folder, from
    which skal reads the copies it ships (byte-identical, MD5-checked): these
    tests run on a fresh clone too, never skip.
    """
    root = _real_files_folder()
    return root if root.is_dir() else tmp_path_factory.mktemp("empty-root")


def _synthetic_labels(rng, info, n):
    n_labels = len(info["label"])
    if info["task"].startswith("multi-label"):
        return rng.integers(0, 2, size=(n, n_labels), dtype=np.uint8)
    # Every class appears (when n allows), in random order, as medmnist's (N, 1).
    return rng.permutation(np.arange(n) % n_labels).astype(np.uint8).reshape(n, 1)


def write_synthetic_medmnist(root, flag, n_per_split=(24, 8, 8), size=28, seed=0):
    """Write a small random file in the official MedMNIST ``.npz`` layout.

    Parameters
    ----------
    root : path-like
        Folder to write into (created if needed).
    flag : str
        A ``medmnist.INFO`` flag; sets channels, number of classes and labels.
    n_per_split : tuple of 3 int
        Number of images in train, val and test.
    size : int
        Image side. The file is ``{flag}.npz`` at 28, ``{flag}_{size}.npz``
        otherwise, as medmnist names them.
    seed : int

    Returns
    -------
    path : pathlib.Path
        The file written. Images are uint8 (N, size, size) or
        (N, size, size, 3); labels uint8 (N, 1), or (N, 14) 0/1 for chestmnist.
        Its MD5 never matches medmnist's, so load it with ``verify=False``.
    """
    info = INFO[flag]
    rng = np.random.default_rng(seed)
    image_shape = (size, size) if info["n_channels"] == 1 else (size, size, 3)
    images, labels = {}, {}
    for split, n in zip(("train", "val", "test"), n_per_split):
        images[f"{split}_images"] = rng.integers(0, 256, (n, *image_shape), dtype=np.uint8)
        labels[f"{split}_labels"] = _synthetic_labels(rng, info, n)
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    path = root / (f"{flag}.npz" if size == 28 else f"{flag}_{size}.npz")
    # Official member order: the three image arrays, then the three label arrays.
    np.savez_compressed(path, **images, **labels)
    return path


@pytest.fixture
def make_synthetic_medmnist():
    """Factory ``make(root, flag, n_per_split=(24, 8, 8), size=28, seed=0) -> Path``.

    Call it as ``make_synthetic_medmnist(tmp_path, "chestmnist")``; see
    :func:`write_synthetic_medmnist`.
    """
    return write_synthetic_medmnist


@pytest.fixture
def no_network(monkeypatch):
    """Make every skal download fail as it does offline; yields the list of calls.

    Each call is recorded as ``(url, folder, filename, md5)``.
    """
    import skal.data

    calls = []

    def offline(url, folder, filename, md5):
        calls.append((url, folder, filename, md5))
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(skal.data, "_download", offline)
    return calls


@pytest.fixture
def fresh_md5_cache(monkeypatch):
    """Run the test with an empty MD5 cache, restoring the old one after."""
    import skal.data

    monkeypatch.setattr(skal.data, "_MD5_CACHE", {})
    return skal.data._MD5_CACHE
