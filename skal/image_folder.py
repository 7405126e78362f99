"""A folder of images as the uint8 arrays skal's estimators take.

:func:`load_image_folder` reads every PNG and JPEG under a folder (nested
folders too, in sorted path order), resizes each to ``size`` x ``size`` and
returns them as one uint8 array, with each item's path relative to the folder
and the SHA-256 of its file (the item's identity when files are renamed or
moved). :func:`read_labels_csv` reads a ``file,label`` CSV of class names for
some of them.

Colour
------
A file counts as grayscale when Pillow reads it as a one-band image (``1``,
``L``, ``I``, ``I;16``, ``F``, with or without alpha), or as a colour image
whose three channels are equal everywhere (a grayscale scan saved as RGB). With
``color='auto'`` the folder must be all grayscale (the result is (N, S, S)) or
all colour ((N, S, S, 3)); a mixed folder is an error naming files of each
kind, unless ``on_error='skip'``, which leaves out the files of the smaller
kind. ``color='grayscale'`` or ``'rgb'`` converts every file instead.

Errors
------
A file that Pillow cannot read raises :class:`ImageFolderError` naming it;
with ``on_error='skip'`` it is left out and listed in ``ImageFolder.skipped``
(the count is ``len(skipped)``), so a caller can report it.

Images are resized to a square without keeping the aspect ratio (nothing is
cropped away: a lesion at the border stays in the picture); JPEG orientation
tags are applied first. 16-bit and 32-bit grayscale is scaled to 8 bits by
its type's range (``I;16``: /257; ``I`` and ``F``: clipped to [0, 65535] or
[0, 1]).
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from skal._remedy import COLOR, SKIP_BAD, Message, error
from skal.registry import COLORS

__all__ = [
    "IMAGE_SUFFIXES",
    "convert_color",
    "ImageFolder",
    "ImageFolderError",
    "file_sha256",
    "list_image_files",
    "load_image_folder",
    "read_image",
    "read_labels_csv",
    "to_8bit",
]

#: File suffixes read as images (case-insensitive); other files are ignored.
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")

_ON_ERROR = ("raise", "skip")


class ImageFolderError(ValueError):
    """A folder, image or labels file that cannot be used; ``path`` names it."""

    def __init__(self, message, path=None):
        super().__init__(message)
        self.path = path


@dataclass
class ImageFolder:
    """The images of a folder, in sorted path order.

    Attributes
    ----------
    images : ndarray of uint8, shape (N, S, S) or (N, S, S, 3)
        Grayscale or RGB, resized to ``S = size``.
    files : list of str
        Each image's path relative to the folder, with ``/`` separators.
    sha256 : list of str
        Hex SHA-256 of each file's bytes.
    skipped : list of (str, str)
        Files left out with ``on_error='skip'``, and why.
    root : pathlib.Path
        The folder, resolved.
    """

    images: np.ndarray
    files: list
    sha256: list
    root: Path
    skipped: list = field(default_factory=list)

    @property
    def is_rgb(self):
        return self.images.ndim == 4


def list_image_files(directory):
    """Relative paths of the image files under ``directory``, sorted.

    Hidden files and folders (names starting with ``.``) are left out.

    Parameters
    ----------
    directory : str or path-like

    Returns
    -------
    list of str
        Paths relative to ``directory`` with ``/`` separators.

    Raises
    ------
    ImageFolderError
        When ``directory`` is not a folder.
    """
    root = Path(directory).expanduser()
    if not root.is_dir():
        raise ImageFolderError(f"{root} is not a folder; pass the folder holding the images.",
                               path=root)
    files = []
    for path in root.rglob("*"):
        rel = path.relative_to(root)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in IMAGE_SUFFIXES and path.is_file():
            files.append(rel.as_posix())
    return sorted(files)


def file_sha256(path):
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def to_8bit(img):
    """A Pillow image as an 8-bit 'L' or 'RGB' image, and whether its content is gray.

    JPEG orientation is applied; 16/32-bit grayscale is scaled as the module
    docstring says; alpha is dropped.

    Parameters
    ----------
    img : PIL.Image.Image

    Returns
    -------
    image : PIL.Image.Image, mode 'L' or 'RGB'
    is_gray : bool
    """
    from PIL import Image, ImageOps

    img = ImageOps.exif_transpose(img)
    mode = img.mode
    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if mode.startswith("I;16"):
            arr = arr / 257.0
        elif mode == "I":
            arr = np.clip(arr, 0, 65535) / (257.0 if arr.max() > 255 else 1.0)
        else:
            arr = np.clip(arr, 0.0, 1.0) * 255.0 if arr.max() <= 1.0 else np.clip(arr, 0, 255)
        return Image.fromarray(np.rint(arr).astype(np.uint8), "L"), True
    if mode in ("1", "L", "LA"):
        return img.convert("L"), True
    rgb = img.convert("RGB")
    arr = np.asarray(rgb)
    gray = bool((arr[..., 0] == arr[..., 1]).all() and (arr[..., 1] == arr[..., 2]).all())
    return rgb, gray


def read_image(path, size):
    """Read one image file at ``size`` x ``size``.

    Parameters
    ----------
    path : str or path-like
    size : int
        Side of the square result.

    Returns
    -------
    pixels : ndarray of uint8, shape (size, size) or (size, size, 3)
        (size, size) for a grayscale file, (size, size, 3) otherwise.
    is_gray : bool

    Raises
    ------
    ImageFolderError
        When Pillow cannot read the file.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            img.load()
            img8, gray = to_8bit(img)
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ImageFolderError(f"cannot read image {path}: {exc}", path=Path(path)) from None
    img8 = img8.resize((size, size), Image.Resampling.LANCZOS)
    arr = np.asarray(img8, dtype=np.uint8)
    if gray and arr.ndim == 3:
        arr = np.ascontiguousarray(arr[..., 0])
    return arr, gray


def _check_size(size):
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 4:
        raise ImageFolderError(f"size must be an integer >= 4 (the image side), got {size!r}.")
    return int(size)


def load_image_folder(directory, size=64, *, color="auto", on_error="raise"):
    """Read every PNG/JPEG under a folder into one uint8 array.

    Parameters
    ----------
    directory : str or path-like
        The folder; nested folders are read too.
    size : int, default=64
        Side of the square images returned.
    color : {'auto', 'grayscale', 'rgb'}, default='auto'
        ``'auto'`` keeps the folder's kind (all grayscale or all colour, see
        the module docstring); the others convert every file.
    on_error : {'raise', 'skip'}, default='raise'
        What to do with an unreadable file, or (with ``color='auto'``) a file
        of the folder's minority kind: raise :class:`ImageFolderError` naming
        it, or leave it out and list it in ``skipped``.

    Returns
    -------
    ImageFolder
        ``images`` uint8 (N, size, size) when grayscale, (N, size, size, 3)
        when RGB; ``files`` and ``sha256`` of length N.

    Raises
    ------
    ImageFolderError
        Not a folder, no images in it, an unreadable file, or mixed
        grayscale and colour files with ``color='auto'``.
    """
    size = _check_size(size)
    if color not in COLORS:
        raise ImageFolderError(f"color must be one of {', '.join(COLORS)}; got {color!r}.")
    if on_error not in _ON_ERROR:
        raise ImageFolderError(f"on_error must be 'raise' or 'skip'; got {on_error!r}.")
    root = Path(directory).expanduser().resolve()
    files = list_image_files(root)
    if not files:
        raise ImageFolderError(
            f"no images in {root}: skal reads files ending in {', '.join(IMAGE_SUFFIXES)} "
            f"(in nested folders too).", path=root)
    pixels, grays, kept, hashes, skipped = [], [], [], [], []
    for rel in files:
        try:
            arr, gray = read_image(root / rel, size)
        except ImageFolderError as exc:
            if on_error == "raise":
                raise error(ImageFolderError, Message(
                    f"{exc}. Fix or remove the file, or leave out unreadable files (",
                    SKIP_BAD, ")."), path=exc.path) from None
            skipped.append((rel, "unreadable"))
            continue
        pixels.append(arr)
        grays.append(gray)
        kept.append(rel)
        hashes.append(file_sha256(root / rel))
    if not kept:
        raise ImageFolderError(f"none of the {len(files)} image files in {root} could be read.",
                               path=root)
    grays = np.asarray(grays)
    if color == "auto":
        want_gray = bool(grays.mean() >= 0.5)
        odd = np.flatnonzero(grays != want_gray)
        if len(odd) and on_error == "raise":
            example_gray = kept[int(np.flatnonzero(grays)[0])]
            example_rgb = kept[int(np.flatnonzero(~grays)[0])]
            raise error(ImageFolderError, Message(
                f"{root} mixes grayscale and colour images: {int(grays.sum())} grayscale (e.g. "
                f"{example_gray}) and {int((~grays).sum())} colour (e.g. {example_rgb}). Choose ",
                COLOR, " to convert them all, or ", SKIP_BAD, f" to leave out the {len(odd)} "
                f"{'colour' if want_gray else 'grayscale'} ones."),
                path=root / kept[int(odd[0])])
        skipped += [(kept[i], "colour in a grayscale folder" if want_gray
                     else "grayscale in a colour folder") for i in odd]
        keep = np.flatnonzero(grays == want_gray)
        pixels = [pixels[i] for i in keep]
        kept = [kept[i] for i in keep]
        hashes = [hashes[i] for i in keep]
    else:
        want_gray = color == "grayscale"
    images = np.stack([convert_color(p, want_gray) for p in pixels]).astype(np.uint8, copy=False)
    return ImageFolder(images=images, files=kept, sha256=hashes, root=root, skipped=skipped)


def convert_color(arr, to_gray):
    """One image (S, S) or (S, S, 3), uint8, as grayscale (S, S) or RGB (S, S, 3)."""
    from PIL import Image

    if to_gray:
        return arr if arr.ndim == 2 else np.asarray(Image.fromarray(arr, "RGB").convert("L"))
    return np.repeat(arr[..., None], 3, axis=2) if arr.ndim == 2 else arr


def read_labels_csv(path, classes, files=None):
    """Read a ``file,label`` CSV of class names.

    Parameters
    ----------
    path : str or path-like
        A CSV with a header row naming the columns ``file`` and ``label``
        (other columns are ignored). ``file`` is a path relative to the
        images folder, with ``/`` separators.
    classes : sequence of str
        The valid class names.
    files : collection of str, optional
        The valid file names; when given, any other name is an error.

    Returns
    -------
    dict of str to str
        File name to class name, in the CSV's order.

    Raises
    ------
    ImageFolderError
        A missing column, an unknown class or file name, or one file given
        two different labels; the message names the line(s).
    """
    path = Path(path).expanduser()
    try:
        fh = open(path, newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise ImageFolderError(f"cannot read labels file {path}: {exc.strerror}", path=path) from None
    classes = [str(c) for c in classes]
    known = None if files is None else set(files)
    labels, problems, unknown = {}, [], []
    with fh:
        reader = csv.DictReader(fh)
        header = [h.strip() for h in (reader.fieldnames or [])]
        if "file" not in header or "label" not in header:
            raise ImageFolderError(
                f"{path} must start with a header row naming the columns 'file' and 'label'; "
                f"found {header or 'an empty file'}.", path=path)
        reader.fieldnames = header
        for line, row in enumerate(reader, start=2):
            name = (row.get("file") or "").strip().replace("\\", "/")
            label = (row.get("label") or "").strip()
            if not name:
                problems.append(f"line {line}: empty file name")
            elif label not in classes:
                problems.append(f"line {line}: {label!r} is not a class "
                                f"(classes: {', '.join(classes)})")
            elif known is not None and name not in known:
                unknown.append(f"line {line}: {name}")
            elif name in labels and labels[name] != label:
                problems.append(f"line {line}: {name} is labeled {label!r} here and "
                                f"{labels[name]!r} earlier")
            else:
                labels[name] = label
    if unknown:
        problems.insert(0, f"{len(unknown)} file name(s) not in the images folder "
                           f"({'; '.join(unknown[:5])}{'; ...' if len(unknown) > 5 else ''})")
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise ImageFolderError(f"{path} has problems; nothing was read:\n  {shown}{more}",
                               path=path)
    return labels
