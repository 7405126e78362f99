"""The command line's errors name its flags (the library's name its parameters), in one line.

Every remedy is declared once (skal/_remedy.py) with both spellings; these
tests run each error through ``main.py`` and through the library.
"""

import csv
import re

import numpy as np
import pytest
from PIL import Image

from skal import _remedy
from skal.cli import build_parser, build_run_parser, run_main
from skal.data import ChecksumError, DatasetError, DatasetNotFoundError, load_medmnist
from skal.image_folder import ImageFolderError, load_image_folder

TINY = ["--method", "random", "--preset", "fast", "--model", "small_cnn", "--epochs", "1",
        "--cycles", "2", "--budget", "8", "--device", "cpu", "--quiet"]
PARAMETER_WORDS = re.compile(r"\b(verify|root|on_error|color)=")


def error_line(capsys, prog="main.py"):
    """The one line main.py printed on stderr, after its 'error:' prefix."""
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"{prog}: error: "), err
    assert "Traceback" not in err
    return err[len(f"{prog}: error: "):].strip()


# ----------------------------------------------------------------------------
# One declaration, two spellings
# ----------------------------------------------------------------------------


REMEDIES = [value for value in vars(_remedy).values() if isinstance(value, _remedy.Remedy)]


@pytest.mark.parametrize("remedy", REMEDIES, ids=lambda r: r.flag)
def test_every_remedys_flag_is_an_option_of_skal_run_and_main_py(remedy):
    flags = re.findall(r"--[a-z][a-z-]*", remedy.flag)
    assert flags
    for parser in (build_run_parser(), build_parser()._subparsers._group_actions[0]
                   .choices["run"]):
        assert set(flags) <= set(parser._option_string_actions), (remedy, flags)
    assert not PARAMETER_WORDS.search(remedy.flag)
    assert PARAMETER_WORDS.search(remedy.parameter)


# ----------------------------------------------------------------------------
# --root
# ----------------------------------------------------------------------------


def test_a_root_that_does_not_exist_is_an_error_naming_it_not_a_silent_fallback(tmp_path,
                                                                              capsys):
    typo = tmp_path / "medmnsit"
    out = tmp_path / "out"
    assert run_main(["--dataset", "breastmnist", "--root", str(typo), "--out", str(out),
                     *TINY]) == 2
    line = error_line(capsys)
    assert f"data root '{typo}' does not exist" in line
    assert "give --root an existing folder, or leave --root out" in line
    assert not PARAMETER_WORDS.search(line)
    assert not out.exists()  # nothing ran on the shipped copy


def test_a_root_that_is_a_file_is_an_error(tmp_path, capsys):
    not_a_folder = tmp_path / "breastmnist.npz"
    not_a_folder.write_bytes(b"")
    assert run_main(["--dataset", "breastmnist", "--root", str(not_a_folder), *TINY]) == 2
    assert f"data root '{not_a_folder}' is not a folder" in error_line(capsys)


def test_the_library_refuses_a_missing_root_in_its_own_words(tmp_path):
    with pytest.raises(DatasetError, match=r"does not exist.*pass an existing folder as root="):
        load_medmnist("breastmnist", "test", root=tmp_path / "missing")
    # An existing root without the file still reads the shipped copy, as documented.
    X, _ = load_medmnist("breastmnist", "test", root=tmp_path)
    assert X.shape == (156, 28, 28)


# ----------------------------------------------------------------------------
# MD5 and missing files
# ----------------------------------------------------------------------------


def test_checksum_error_says_no_verify_on_the_command_line_and_verify_in_python(
        tmp_path, make_synthetic_medmnist, capsys):
    make_synthetic_medmnist(tmp_path, "chestmnist")
    assert run_main(["--dataset", "chestmnist", "--root", str(tmp_path), *TINY]) == 1
    line = error_line(capsys)
    assert "expected MD5" in line and line.endswith("for a file you made yourself, "
                                                     "add --no-verify.")
    assert not PARAMETER_WORDS.search(line)
    with pytest.raises(ChecksumError, match=r"yourself, pass verify=False\.$") as info:
        load_medmnist("chestmnist", "test", root=tmp_path)
    assert _remedy.command_line_text(info.value) == line


def test_missing_file_offline_says_root_on_the_command_line(tmp_path, no_network, capsys):
    assert run_main(["--dataset", "dermamnist", "--root", str(tmp_path), *TINY]) == 1
    line = error_line(capsys)
    assert "(or use --root) to the folder that holds it" in line
    assert not PARAMETER_WORDS.search(line)
    with pytest.raises(DatasetNotFoundError, match=r"\(or pass root=\)"):
        load_medmnist("dermamnist", "test", root=tmp_path)


# ----------------------------------------------------------------------------
# --images: unreadable and mixed files, --skip-bad, --color
# ----------------------------------------------------------------------------


def _folder(tmp_path, n=24, broken=(), colour=()):
    """``n`` grayscale 12x12 PNGs, two classes; ``broken`` files unreadable, ``colour`` RGB."""
    rng = np.random.default_rng(0)
    folder = tmp_path / "images"
    folder.mkdir()
    truth = {}
    for i in range(n):
        name, cls = f"img{i:02d}.png", ("dark", "bright")[i % 2]
        if name in broken:
            (folder / name).write_bytes(b"not a png")
        else:
            pixels = (rng.integers(0, 60, (12, 12)) + (170 if cls == "bright" else 0)
                      ).astype(np.uint8)
            image = Image.fromarray(pixels)
            (image.convert("RGB") if name in colour else image).save(folder / name)
            if name in colour:  # make it really colour, not grey saved as RGB
                rgb = np.asarray(Image.open(folder / name)).copy()
                rgb[..., 0] = 255 - rgb[..., 0]
                Image.fromarray(rgb).save(folder / name)
        truth[name] = cls
    labels = tmp_path / "labels.csv"
    with open(labels, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "label"])
        writer.writerows(truth.items())
    return folder, labels


def test_an_unreadable_image_names_skip_bad_which_main_py_takes(tmp_path, capsys):
    folder, labels = _folder(tmp_path, broken={"img03.png"})
    args = ["--images", str(folder), "--labels", str(labels), "--out", str(tmp_path / "out"),
            *TINY]
    assert run_main(args) == 1
    line = error_line(capsys)
    assert "img03.png" in line and line.endswith("leave out unreadable files (--skip-bad).")
    assert not PARAMETER_WORDS.search(line)
    with pytest.raises(ImageFolderError, match=r"\(on_error='skip'\)\.$"):
        load_image_folder(folder)

    assert run_main([*args, "--skip-bad"]) == 0
    err = capsys.readouterr().err
    assert "skipped 1 of 24 image file(s) (--skip-bad): img03.png (unreadable)" in err
    rows = list(csv.DictReader(open(tmp_path / "out/fast/images/random/results.csv")))
    assert [r["n_labeled"] for r in rows] == ["8", "16"]


def test_a_mixed_folder_names_color_and_skip_bad_which_main_py_takes(tmp_path, capsys):
    folder, labels = _folder(tmp_path, colour={"img05.png"})
    args = ["--images", str(folder), "--labels", str(labels), "--out", str(tmp_path / "out"),
            *TINY]
    assert run_main(args) == 1
    line = error_line(capsys)
    assert ("Choose --color grayscale or --color rgb to convert them all, or --skip-bad to "
            "leave out the 1 colour ones.") in line
    assert run_main([*args, "--skip-bad"]) == 0
    assert "img05.png (colour in a grayscale folder)" in capsys.readouterr().err
    assert run_main([*args, "--color", "grayscale", "--out", str(tmp_path / "out2")]) == 0
