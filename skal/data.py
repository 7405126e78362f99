"""MedMNIST loading: flags, splits, sizes, data root, MD5 check and clear errors.

Everything this module knows about a dataset comes from ``medmnist.INFO``
(never retyped here), and files are the official ``.npz`` files that medmnist
publishes. Images are returned exactly as stored: ``uint8`` arrays of shape
(N, H, W) for grey datasets or (N, H, W, 3) for colour ones. Conversion to
float happens per batch inside the estimator, so a pool never exists in
float32 all at once.

The data root is, in order: the ``root`` argument, the ``MEDMNIST_ROOT``
environment variable, then medmnist's own default (``~/.medmnist``). A file
the root does not hold is read from the copy shipped inside skal when there is
one (pneumoniamnist and breastmnist at 28x28, see :func:`embedded_flags`),
else downloaded where the network allows.

Examples
--------
>>> from skal.data import load_medmnist, dataset_info
>>> X, y = load_medmnist("breastmnist", "train")  # doctest: +SKIP
>>> X.shape, X.dtype, y.shape, y.dtype  # doctest: +SKIP
((546, 28, 28), dtype('uint8'), (546,), dtype('int64'))
>>> dataset_info("chestmnist").n_classes
14
"""

from __future__ import annotations

import difflib
import hashlib
import importlib.resources
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import medmnist
import medmnist.info
import numpy as np
from medmnist.info import INFO

from skal._remedy import EXISTING_ROOT, NO_VERIFY, ROOT, Message, error

__all__ = [
    "ChecksumError",
    "DatasetError",
    "DatasetFormatError",
    "DatasetInfo",
    "DatasetNotFoundError",
    "ENV_ROOT",
    "FLAGS_2D",
    "FLAGS_3D",
    "SPLITS",
    "available_flags",
    "clear_checksum_cache",
    "dataset_filename",
    "dataset_info",
    "dataset_path",
    "embedded_flags",
    "embedded_path",
    "load_medmnist",
    "locate_dataset",
    "resolve_root",
]

#: The splits every MedMNIST file holds.
SPLITS = ("train", "val", "test")

#: Environment variable naming the folder that holds the ``.npz`` files.
ENV_ROOT = "MEDMNIST_ROOT"

_BASE_SIZE = 28


# ----------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------


class DatasetError(ValueError):
    """A dataset request or file that skal cannot serve (bad flag, size, split...)."""


class DatasetNotFoundError(DatasetError, FileNotFoundError):
    """The dataset file is not on disk and could not be downloaded.

    Attributes
    ----------
    path : pathlib.Path
        The file that was looked for.
    url : str
        Where medmnist publishes that file.
    """

    def __init__(self, message, path=None, url=None):
        # Only the message goes to the base classes: OSError formats
        # ``filename`` as "[Errno None] None: ..." when it is set.
        super().__init__(message)
        self.path = path
        self.url = url


class ChecksumError(DatasetError):
    """A file's MD5 differs from the one medmnist publishes.

    Attributes
    ----------
    path : pathlib.Path
    expected, actual : str
        Hex MD5 digests.
    """

    def __init__(self, message, path=None, expected=None, actual=None):
        super().__init__(message)
        self.path = path
        self.expected = expected
        self.actual = actual


class DatasetFormatError(DatasetError):
    """A file that is not in the official MedMNIST ``.npz`` layout."""


# ----------------------------------------------------------------------------
# Flags and dataset descriptions
# ----------------------------------------------------------------------------


def _is_2d(flag):
    """Whether medmnist implements ``flag`` with its 2D dataset class."""
    cls = getattr(medmnist, INFO[flag]["python_class"], None)
    base = getattr(getattr(medmnist, "dataset", None), "MedMNIST2D", None)
    if cls is None or base is None:
        # medmnist's dataset classes need torch and PIL; without them
        # fall back on its naming rule, which puts "3d" in every 3D flag.
        return "3d" not in flag
    return issubclass(cls, base)


#: The MedMNIST 2D flags, in ``medmnist.INFO`` order.
FLAGS_2D = tuple(flag for flag in INFO if _is_2d(flag))

#: The MedMNIST 3D flags (not supported by skal yet).
FLAGS_3D = tuple(flag for flag in INFO if not _is_2d(flag))


def available_flags(ndim=2):
    """List the MedMNIST flags of 2D or 3D datasets.

    Parameters
    ----------
    ndim : {2, 3}, default=2

    Returns
    -------
    flags : tuple of str
        In ``medmnist.INFO`` order. Only 2D flags can be loaded by skal.
    """
    if ndim == 2:
        return FLAGS_2D
    if ndim == 3:
        return FLAGS_3D
    raise ValueError(f"ndim must be 2 or 3, got {ndim!r}")


def _check_flag(flag):
    """Return the canonical (lower-case) 2D flag, or raise a helpful error."""
    if not isinstance(flag, str):
        raise DatasetError(f"flag must be a string such as 'pathmnist', got {flag!r}")
    key = flag.strip().lower()
    if key in FLAGS_3D:
        raise DatasetError(
            f"{flag!r} is a 3D MedMNIST dataset; 3D datasets are not supported "
            f"yet. Supported 2D flags: {', '.join(FLAGS_2D)}."
        )
    if key not in FLAGS_2D:
        close = difflib.get_close_matches(key, FLAGS_2D, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise DatasetError(
            f"Unknown MedMNIST flag {flag!r}.{hint} "
            f"Valid 2D flags: {', '.join(FLAGS_2D)}."
        )
    return key


def _size_suffix(size):
    """medmnist's file-name suffix: '' at 28, '_<size>' otherwise."""
    return "" if size == _BASE_SIZE else f"_{size}"


def _sizes_in_info(flag):
    """Sizes for which INFO publishes both a URL and an MD5."""
    info = INFO[flag]
    sizes = [_BASE_SIZE] if "MD5" in info and "url" in info else []
    for key in info:
        if key.startswith("MD5_") and key[4:].isdigit():
            if f"url_{key[4:]}" in info:
                sizes.append(int(key[4:]))
    return tuple(sorted(sizes))


@dataclass(frozen=True)
class DatasetInfo:
    """Description of one MedMNIST 2D dataset, read from ``medmnist.INFO``.

    Attributes
    ----------
    flag : str
        medmnist's name for the dataset, e.g. ``'pathmnist'``.
    python_class : str
        medmnist's dataset class, e.g. ``'PathMNIST'``.
    task : str
        INFO's task string: ``'multi-class'``, ``'binary-class'``,
        ``'ordinal-regression'`` or ``'multi-label, binary-class'``.
    n_classes : int
        Number of classes; for the multi-label chestmnist, number of labels.
    n_channels : int
        1 (images (N, H, W)) or 3 (images (N, H, W, 3)).
    label_names : tuple of str
        Name of each class (or label), indexed by label id.
    n_samples : dict of str to int
        Official number of images in ``'train'``, ``'val'`` and ``'test'``.
    sizes : tuple of int
        Image sizes medmnist offers, e.g. ``(28, 64, 128, 224)``.
    license : str
    """

    flag: str
    python_class: str
    task: str
    n_classes: int
    n_channels: int
    label_names: tuple
    n_samples: dict
    sizes: tuple
    license: str

    @property
    def is_multilabel(self):
        """True for multi-label tasks (chestmnist): labels are (N, L) 0/1."""
        return self.task.startswith("multi-label")

    @property
    def is_binary(self):
        """True for single-label two-class tasks (labels 0 or 1)."""
        return self.task == "binary-class"

    def filename(self, size=_BASE_SIZE):
        """File name medmnist uses at ``size``, e.g. ``'pathmnist_64.npz'``."""
        return f"{self.flag}{_size_suffix(self._check_size(size))}.npz"

    def url(self, size=_BASE_SIZE):
        """Where medmnist publishes the file at ``size``."""
        return INFO[self.flag][f"url{_size_suffix(self._check_size(size))}"]

    def md5(self, size=_BASE_SIZE):
        """The MD5 medmnist publishes for the file at ``size``."""
        return INFO[self.flag][f"MD5{_size_suffix(self._check_size(size))}"]

    def _check_size(self, size):
        if size is None:
            return _BASE_SIZE
        if isinstance(size, bool) or not isinstance(size, (int, np.integer)):
            raise DatasetError(f"size must be an integer, got {size!r}")
        if int(size) not in self.sizes:
            offered = ", ".join(map(str, self.sizes))
            raise DatasetError(
                f"Size {size} is not offered for {self.flag}; available sizes: {offered}."
            )
        return int(size)


def dataset_info(flag):
    """Describe a MedMNIST 2D dataset from ``medmnist.INFO``.

    Parameters
    ----------
    flag : str
        One of :data:`FLAGS_2D`, e.g. ``'pathmnist'`` (case-insensitive).

    Returns
    -------
    info : DatasetInfo

    Raises
    ------
    DatasetError
        Unknown flag (the message lists the valid ones) or a 3D flag.
    """
    flag = _check_flag(flag)
    info = INFO[flag]
    labels = info["label"]
    return DatasetInfo(
        flag=flag,
        python_class=info["python_class"],
        task=info["task"],
        n_classes=len(labels),
        n_channels=int(info["n_channels"]),
        label_names=tuple(labels[k] for k in sorted(labels, key=int)),
        n_samples={split: int(info["n_samples"][split]) for split in SPLITS},
        sizes=_sizes_in_info(flag),
        license=info.get("license", ""),
    )


# ----------------------------------------------------------------------------
# Where the files are
# ----------------------------------------------------------------------------


def resolve_root(root=None):
    """Find the folder that holds (or will hold) the MedMNIST files.

    Parameters
    ----------
    root : str or path-like, optional
        Used when given. Otherwise the ``MEDMNIST_ROOT`` environment variable
        when set and non-empty, otherwise medmnist's default root
        (``medmnist.info.DEFAULT_ROOT``, i.e. ``~/.medmnist``).

    Returns
    -------
    root : pathlib.Path
        Absolute, with ``~`` expanded. The folder may not exist.
    """
    if root is None:
        root = os.environ.get(ENV_ROOT) or None
    if root is None:
        # Read at call time, not import time, so it can be patched. medmnist
        # sets it to None when it could not create ~/.medmnist.
        root = medmnist.info.DEFAULT_ROOT or os.path.join("~", ".medmnist")
    return Path(os.fspath(root)).expanduser().absolute()


def _check_root_exists(root):
    folder = resolve_root(root)
    if not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise error(DatasetError, Message(
            f"data root '{folder}' {what}. Create it and put the MedMNIST .npz files "
            f"in it, or ", EXISTING_ROOT, f" (then ${ENV_ROOT}, medmnist's ~/.medmnist "
            f"and the copies skal ships are used)."))


def dataset_filename(flag, size=_BASE_SIZE):
    """Name of the official file: ``{flag}.npz`` at 28, ``{flag}_{size}.npz`` otherwise.

    Parameters
    ----------
    flag : str
    size : int, default=28
        One of the sizes medmnist offers for ``flag``.

    Returns
    -------
    filename : str
    """
    return dataset_info(flag).filename(size)


def dataset_path(flag, size=_BASE_SIZE, root=None):
    """Full path where the file for ``flag`` at ``size`` is looked for.

    Parameters
    ----------
    flag : str
    size : int, default=28
    root : str or path-like, optional
        See :func:`resolve_root`.

    Returns
    -------
    path : pathlib.Path
    """
    return resolve_root(root) / dataset_filename(flag, size)


def _embedded_folder():
    """The folder of MedMNIST files shipped inside skal (package data)."""
    return importlib.resources.files("skal") / "datasets"


def embedded_path(flag, size=_BASE_SIZE):
    """Path of the official file for ``flag`` at ``size`` shipped inside skal, or None.

    Parameters
    ----------
    flag : str
    size : int, default=28

    Returns
    -------
    path : pathlib.Path or None
        None when skal does not ship that file (or is installed in a form
        whose files are not on disk, such as a zip).
    """
    resource = _embedded_folder() / dataset_filename(flag, size)
    return resource if isinstance(resource, Path) and resource.is_file() else None


def embedded_flags(size=_BASE_SIZE):
    """Flags whose official file at ``size`` is shipped inside skal.

    Returns
    -------
    flags : tuple of str
        In ``medmnist.INFO`` order; ``('pneumoniamnist', 'breastmnist')`` at 28.
    """
    return tuple(flag for flag in FLAGS_2D
                 if size in dataset_info(flag).sizes and embedded_path(flag, size) is not None)


def locate_dataset(flag, size=_BASE_SIZE, root=None, download=None):
    """The file :func:`load_medmnist` reads without downloading, or None.

    The data root's file when it exists (a downloaded or user-supplied file
    always wins); otherwise skal's embedded copy, unless ``download=True``
    asks for a file in the root; otherwise None.

    Parameters
    ----------
    flag : str
    size : int, default=28
    root : str or path-like, optional
        See :func:`resolve_root`.
    download : bool or None, default=None
        As for :func:`load_medmnist`.

    Returns
    -------
    path : pathlib.Path or None

    Raises
    ------
    DatasetError
        ``root`` is given and is not an existing folder (as medmnist's own
        datasets refuse it): a typo must not pass for a choice and silently
        read the shipped copy.
    """
    if root is not None:
        _check_root_exists(root)
    path = dataset_path(flag, size, root)
    if path.is_file():
        return path
    if download is True:
        return None
    return embedded_path(flag, size)


# ----------------------------------------------------------------------------
# Download
# ----------------------------------------------------------------------------


def _download(url, folder, filename, md5):
    """Fetch one file exactly as ``medmnist.dataset.MedMNIST.download`` does."""
    # Imported here: torchvision is slow to import and only needed to download.
    from torchvision.datasets.utils import download_url

    download_url(url=url, root=str(folder), filename=filename, md5=md5)


def _missing_message(path, url, md5, reason):
    return Message(
        f"MedMNIST file {path.name!r} was not found in folder '{path.parent}' "
        f"({reason}). To supply it, download {url} (MD5 {md5}) into that "
        f"folder, or set the {ENV_ROOT} environment variable (or ", ROOT, ") "
        f"to the folder that holds it."
    )


def _fetch(path, info, size, download):
    """Make ``path`` exist, downloading it when ``download`` allows."""
    url, md5 = info.url(size), info.md5(size)
    if download is False:
        raise error(DatasetNotFoundError, _missing_message(path, url, md5, "download=False"),
                    path=path, url=url)
    try:
        _download(url, path.parent, path.name, md5)
    except Exception as exc:  # offline, DNS, HTTP, MD5 of the download, no torchvision
        # A connection lost mid-way leaves a truncated file that would later
        # look like a corrupt download; the file was absent before, so drop it.
        if path.is_file():
            path.unlink()
        reason = f"automatic download failed: {type(exc).__name__}: {exc}"
        raise error(DatasetNotFoundError, _missing_message(path, url, md5, reason),
                    path=path, url=url) from exc
    if not path.is_file():
        raise error(DatasetNotFoundError,
                    _missing_message(path, url, md5, "the download produced no file"),
                    path=path, url=url)


# ----------------------------------------------------------------------------
# MD5
# ----------------------------------------------------------------------------

# (absolute path, size in bytes, mtime in ns) -> hex MD5. A file is hashed once
# per process; rewriting or touching it changes the key, so it is hashed again.
_MD5_CACHE = {}


def clear_checksum_cache():
    """Forget every MD5 computed so far, so the next load hashes again."""
    _MD5_CACHE.clear()


def _compute_md5(path, chunk_size=1 << 20):
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def _file_md5(path):
    """MD5 of ``path``, computed at most once per (path, size, mtime)."""
    path = Path(path).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _MD5_CACHE:
        _MD5_CACHE[key] = _compute_md5(path)
    return _MD5_CACHE[key]


def _verify_md5(path, expected):
    actual = _file_md5(path)
    if actual != expected:
        raise error(
            ChecksumError,
            Message(f"MedMNIST file '{path}' is corrupt or a different version than the "
                    f"one medmnist publishes: expected MD5 {expected}, got {actual}. "
                    f"Delete it and download it again; for a file you made yourself, ",
                    NO_VERIFY, "."),
            path=path,
            expected=expected,
            actual=actual,
        )


# ----------------------------------------------------------------------------
# Reading one split
# ----------------------------------------------------------------------------


def _read_split(path, split):
    """Read only ``split``'s two members of the npz (members load lazily)."""
    keys = (f"{split}_images", f"{split}_labels")
    # Corrupt or foreign files surface as any of these, from zipfile or numpy.
    unreadable = (OSError, ValueError, EOFError, zipfile.BadZipFile)
    try:
        npz = np.load(path, allow_pickle=False)
    except unreadable as exc:
        raise DatasetFormatError(f"Cannot read '{path}' as a MedMNIST .npz file: {exc}") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise DatasetFormatError(f"'{path}' holds a single array, not a MedMNIST .npz archive.")
    with npz:
        missing = [k for k in keys if k not in npz.files]
        if missing:
            raise DatasetFormatError(
                f"MedMNIST file '{path}' lacks {', '.join(missing)}; it holds "
                f"{', '.join(npz.files) or 'nothing'}."
            )
        try:
            return npz[keys[0]], npz[keys[1]]
        except unreadable as exc:
            raise DatasetFormatError(f"Cannot read {split} arrays from '{path}': {exc}") from exc


def _check_images(images, info, size, path, split):
    if images.dtype != np.uint8:
        raise DatasetFormatError(
            f"{split}_images in '{path}' are {images.dtype}, expected uint8."
        )
    expected = (size, size) if info.n_channels == 1 else (size, size, 3)
    if images.shape[1:] != expected:
        raise DatasetFormatError(
            f"{split}_images in '{path}' have shape {images.shape}, expected "
            f"(N, {', '.join(map(str, expected))}) for {info.flag} at size {size}."
        )


def _check_labels(labels, info, n, path, split):
    """Return labels as int64: (N,) single-label, (N, L) multi-label."""
    name = f"{split}_labels in '{path}'"
    if not np.issubdtype(labels.dtype, np.integer):
        raise DatasetFormatError(f"{name} are {labels.dtype}, expected integers.")
    if info.is_multilabel:
        if labels.shape != (n, info.n_classes):
            raise DatasetFormatError(
                f"{name} have shape {labels.shape}, expected ({n}, {info.n_classes})."
            )
        valid = labels.size == 0 or (labels.min() >= 0 and labels.max() <= 1)
    else:
        # The official files store (N, 1); accept an already-squeezed (N,).
        if labels.shape not in ((n, 1), (n,)):
            raise DatasetFormatError(
                f"{name} have shape {labels.shape}, expected ({n}, 1)."
            )
        labels = labels.reshape(n)
        valid = labels.size == 0 or (
            labels.min() >= 0 and labels.max() < info.n_classes
        )
    if not valid:
        allowed = "0/1" if info.is_multilabel else f"0..{info.n_classes - 1}"
        raise DatasetFormatError(f"{name} hold values outside {allowed}.")
    return labels.astype(np.int64)


# ----------------------------------------------------------------------------
# Public loader
# ----------------------------------------------------------------------------


def load_medmnist(flag, split, size=_BASE_SIZE, root=None, download=None, verify=True):
    """Load one split of a MedMNIST 2D dataset as numpy arrays.

    Parameters
    ----------
    flag : str
        One of :data:`FLAGS_2D`, e.g. ``'pathmnist'``.
    split : {'train', 'val', 'test'}
    size : int, default=28
        Image side; 64, 128 and 224 where medmnist offers them. The file is
        ``{flag}.npz`` at 28 and ``{flag}_{size}.npz`` otherwise.
    root : str or path-like, optional
        Folder holding the files, which must exist when given; see
        :func:`resolve_root` for the fallbacks.
    download : bool or None, default=None
        What to do when the data root lacks the file. None: read skal's
        embedded copy when it ships one (:func:`embedded_flags`), else
        download it where the network allows. True: download it into the
        root, even when skal ships a copy. False: never download (the
        embedded copy is still read). A download that fails raises
        :class:`DatasetNotFoundError`.
    verify : bool, default=True
        Check the file against the MD5 medmnist publishes (once per process
        per file). ``verify=False`` skips that check; it is meant for tests
        and user-made files in the same format. The layout, dtype and label
        checks apply either way.

    Returns
    -------
    X : ndarray of uint8, shape (N, size, size) or (N, size, size, 3)
        The images exactly as stored; 3 channels where ``n_channels`` is 3.
    y : ndarray of int64, shape (N,) or (N, L)
        Class ids; for the multi-label chestmnist, (N, 14) 0/1 indicators.

    Raises
    ------
    DatasetError
        Unknown or 3D flag, bad split or size, a ``root`` that is not an
        existing folder (all are ``ValueError``).
    DatasetNotFoundError
        The file is missing and could not be downloaded (also a
        ``FileNotFoundError``); the message names the file, the folder and how
        to supply it.
    ChecksumError
        The file's MD5 differs from medmnist's.
    DatasetFormatError
        The file lacks the split's members or holds wrong dtypes or shapes.
    """
    info = dataset_info(flag)
    size = info._check_size(size)
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(SPLITS)}; got {split!r}.")
    if download not in (None, True, False):
        raise ValueError(f"download must be None, True or False; got {download!r}.")

    path = locate_dataset(info.flag, size, root, download)
    if path is None:
        path = dataset_path(info.flag, size, root)
        _fetch(path, info, size, download)
    if verify:
        _verify_md5(path, info.md5(size))

    images, labels = _read_split(path, split)
    _check_images(images, info, size, path, split)
    return images, _check_labels(labels, info, len(images), path, split)
