"""Loading a folder of PNG/JPEG images (skal.image_folder)."""

import hashlib

import numpy as np
import pytest
from PIL import Image

from skal.image_folder import (ImageFolderError, list_image_files, load_image_folder,
                               read_labels_csv)


def _save(path, array, mode=None, **kw):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(array, mode).save(path, **kw)
    return path


def test_nested_grayscale_folder_known_pixels(tmp_path):
    # A constant image resizes to the same constant: known answer per file.
    _save(tmp_path / "b" / "two.png", np.full((10, 12), 200, np.uint8))
    _save(tmp_path / "a.png", np.full((8, 8), 7, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    _save(tmp_path / ".hidden" / "x.png", np.zeros((8, 8), np.uint8))
    folder = load_image_folder(tmp_path, size=6)
    assert folder.files == ["a.png", "b/two.png"]
    assert folder.images.shape == (2, 6, 6) and folder.images.dtype == np.uint8
    assert (folder.images[0] == 7).all() and (folder.images[1] == 200).all()
    assert folder.sha256[0] == hashlib.sha256((tmp_path / "a.png").read_bytes()).hexdigest()
    assert not folder.is_rgb and folder.skipped == []


def test_rgb_folder_and_gray_saved_as_rgb(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 0] = 255
    _save(tmp_path / "red.png", rgb)
    _save(tmp_path / "blue.jpg", np.dstack([np.zeros((8, 8)), np.zeros((8, 8)),
                                            np.full((8, 8), 255)]).astype(np.uint8), quality=100)
    folder = load_image_folder(tmp_path, size=4)
    assert folder.images.shape == (2, 4, 4, 3)
    red = folder.images[folder.files.index("red.png")]
    assert (red[..., 0] == 255).all() and (red[..., 1:] == 0).all()
    # An RGB file whose channels are equal counts as grayscale.
    gray_dir = tmp_path / "g"
    _save(gray_dir / "g.png", np.full((8, 8, 3), 90, np.uint8))
    _save(gray_dir / "l.png", np.full((8, 8), 30, np.uint8))
    folder = load_image_folder(gray_dir, size=4)
    assert folder.images.shape == (2, 4, 4)
    assert folder.images[0, 0, 0] == 90 and folder.images[1, 0, 0] == 30


def test_16_bit_grayscale_is_scaled(tmp_path):
    _save(tmp_path / "deep.png", np.full((8, 8), 65535, np.uint16))
    folder = load_image_folder(tmp_path, size=4)
    assert (folder.images == 255).all()


def test_mixed_modes_error_names_files_or_skips(tmp_path):
    for i in range(2):
        _save(tmp_path / f"gray{i}.png", np.full((8, 8), 10, np.uint8))
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[..., 1] = 100
    _save(tmp_path / "colour.png", rgb)
    with pytest.raises(ImageFolderError, match=r"colour\.png.*color='grayscale'"):
        load_image_folder(tmp_path, size=4)
    folder = load_image_folder(tmp_path, size=4, on_error="skip")
    assert folder.files == ["gray0.png", "gray1.png"]
    assert folder.skipped == [("colour.png", "colour in a grayscale folder")]
    converted = load_image_folder(tmp_path, size=4, color="rgb")
    assert converted.images.shape == (3, 4, 4, 3)


def test_unreadable_file_error_or_skip(tmp_path):
    _save(tmp_path / "ok.png", np.zeros((8, 8), np.uint8))
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ImageFolderError, match=r"broken\.png.*skip") as info:
        load_image_folder(tmp_path, size=4)
    assert info.value.path.name == "broken.png"
    folder = load_image_folder(tmp_path, size=4, on_error="skip")
    assert folder.files == ["ok.png"] and folder.skipped == [("broken.png", "unreadable")]


def test_bad_arguments(tmp_path):
    with pytest.raises(ImageFolderError, match="not a folder"):
        list_image_files(tmp_path / "missing")
    with pytest.raises(ImageFolderError, match="no images"):
        load_image_folder(tmp_path)
    with pytest.raises(ImageFolderError, match="size"):
        load_image_folder(tmp_path, size=2)
    with pytest.raises(ImageFolderError, match="color"):
        load_image_folder(tmp_path, color="cmyk")


def test_labels_csv(tmp_path):
    csv = tmp_path / "labels.csv"
    csv.write_text("file,label,note\na.png,benign,x\nsub/b.png,malignant,\n")
    assert read_labels_csv(csv, ["benign", "malignant"], files={"a.png", "sub/b.png"}) == {
        "a.png": "benign", "sub/b.png": "malignant"}
    csv.write_text("file,label\na.png,cat\nzzz.png,benign\na.png,benign\na.png,malignant\n")
    with pytest.raises(ImageFolderError) as info:
        read_labels_csv(csv, ["benign", "malignant"], files={"a.png"})
    message = str(info.value)
    assert "line 2: 'cat' is not a class" in message
    assert "line 3: zzz.png" in message
    assert "line 5: a.png is labeled 'malignant' here and 'benign' earlier" in message
    csv.write_text("name,class\n")
    with pytest.raises(ImageFolderError, match="header row"):
        read_labels_csv(csv, ["benign"])
