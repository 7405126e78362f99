"""Tests for skal.data: real files, synthetic files for every other 2D flag, errors."""

import dataclasses
import hashlib
import os
from pathlib import Path

import medmnist
import medmnist.info
import numpy as np
import pytest
from medmnist import INFO

import skal.data as data
from skal.data import (
    FLAGS_2D,
    FLAGS_3D,
    SPLITS,
    ChecksumError,
    DatasetError,
    DatasetFormatError,
    DatasetNotFoundError,
    available_flags,
    dataset_filename,
    dataset_info,
    dataset_path,
    embedded_flags,
    embedded_path,
    load_medmnist,
    locate_dataset,
    resolve_root,
)

REAL_FLAGS = ("breastmnist", "retinamnist", "pneumoniamnist")
SYNTHETIC_FLAGS = tuple(f for f in FLAGS_2D if f not in REAL_FLAGS)

# Label counts per split of the official files (medmnist v3, 28x28).
SOURCES_LABEL_COUNTS = {
    "retinamnist": {
        "train": [486, 128, 206, 194, 66],
        "val": [54, 12, 28, 20, 6],
        "test": [174, 46, 92, 68, 20],
    },
    "breastmnist": {"train": [147, 399], "val": [21, 57], "test": [42, 114]},
    "pneumoniamnist": {"train": [1214, 3494], "val": [135, 389], "test": [234, 390]},
}
SOURCES_SPLIT_SIZES = {
    "retinamnist": (1080, 120, 400),
    "breastmnist": (546, 78, 156),
    "pneumoniamnist": (4708, 524, 624),
}


def image_shape(flag, size):
    return (size, size) if INFO[flag]["n_channels"] == 1 else (size, size, 3)


# ----------------------------------------------------------------------------
# Flags and descriptions
# ----------------------------------------------------------------------------


def test_flags_split_info_into_2d_and_3d():
    assert len(FLAGS_2D) == 12 and len(FLAGS_3D) == 6
    assert set(FLAGS_2D) | set(FLAGS_3D) == set(INFO)
    assert not set(FLAGS_2D) & set(FLAGS_3D)
    assert all("3d" in f for f in FLAGS_3D)
    assert available_flags() == FLAGS_2D and available_flags(3) == FLAGS_3D
    with pytest.raises(ValueError):
        available_flags(4)


@pytest.mark.parametrize("flag", FLAGS_2D)
def test_dataset_info_matches_medmnist_info(flag):
    info, raw = dataset_info(flag), INFO[flag]
    assert info.flag == flag and info.python_class == raw["python_class"]
    assert info.task == raw["task"]
    assert info.n_channels == raw["n_channels"]
    assert info.n_classes == len(raw["label"])
    assert info.label_names == tuple(raw["label"][str(i)] for i in range(info.n_classes))
    assert info.n_samples == raw["n_samples"]
    assert info.sizes == (28, 64, 128, 224)
    assert info.is_multilabel == (flag == "chestmnist")
    assert info.is_binary == (raw["task"] == "binary-class")
    assert info.md5() == raw["MD5"] and info.md5(64) == raw["MD5_64"]
    assert info.url(224) == raw["url_224"]


def test_dataset_info_details():
    chest = dataset_info("chestmnist")
    assert chest.is_multilabel and not chest.is_binary and chest.n_classes == 14
    assert dataset_info("breastmnist").is_binary
    assert dataset_info("BreastMNIST").flag == "breastmnist"  # case-insensitive
    with pytest.raises(dataclasses.FrozenInstanceError):
        chest.n_classes = 3


def test_file_names_follow_medmnist():
    assert dataset_filename("pathmnist") == "pathmnist.npz"
    assert dataset_filename("pathmnist", 28) == "pathmnist.npz"
    assert dataset_filename("pathmnist", 64) == "pathmnist_64.npz"
    assert dataset_path("dermamnist", 224, root="/x") == Path("/x/dermamnist_224.npz")


# ----------------------------------------------------------------------------
# The real files
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("flag", REAL_FLAGS)
def test_real_file(real_root, no_network, flag, split):
    if not (real_root / f"{flag}.npz").is_file():
        pytest.skip(f"{flag}.npz not in {real_root}")
    X, y = load_medmnist(flag, split, root=real_root)  # verify=True: MD5 checked

    n = INFO[flag]["n_samples"][split]
    assert n == SOURCES_SPLIT_SIZES[flag][SPLITS.index(split)]
    assert X.dtype == np.uint8 and X.shape == (n, *image_shape(flag, 28))
    assert y.dtype == np.int64 and y.shape == (n,)
    counts = np.bincount(y, minlength=len(INFO[flag]["label"]))
    assert counts.tolist() == SOURCES_LABEL_COUNTS[flag][split]
    assert not no_network  # present files are never downloaded


def test_real_file_equals_medmnist_dataset(real_root):
    """Our arrays are exactly what medmnist's own class reads."""
    if not (real_root / "breastmnist.npz").is_file():
        pytest.skip("breastmnist.npz missing")
    ds = medmnist.BreastMNIST(split="val", root=str(real_root), download=False)
    X, y = load_medmnist("breastmnist", "val", root=real_root)
    np.testing.assert_array_equal(X, ds.imgs)
    np.testing.assert_array_equal(y, ds.labels[:, 0])


# ----------------------------------------------------------------------------
# Synthetic files for the flags we do not hold
# ----------------------------------------------------------------------------


@pytest.mark.parametrize("flag", SYNTHETIC_FLAGS)
def test_synthetic_every_other_flag(tmp_path, make_synthetic_medmnist, flag):
    n_per_split = (30, 12, 9)
    make_synthetic_medmnist(tmp_path, flag, n_per_split=n_per_split)
    info = dataset_info(flag)
    for split, n in zip(SPLITS, n_per_split):
        X, y = load_medmnist(flag, split, root=tmp_path, download=False, verify=False)
        assert X.dtype == np.uint8 and X.shape == (n, *image_shape(flag, 28))
        assert y.dtype == np.int64
        if info.is_multilabel:
            assert y.shape == (n, 14) and set(np.unique(y)) <= {0, 1}
        else:
            assert y.shape == (n,) and 0 <= y.min() and y.max() < info.n_classes


def test_synthetic_chestmnist_is_multilabel(tmp_path, make_synthetic_medmnist):
    make_synthetic_medmnist(tmp_path, "chestmnist", n_per_split=(40, 5, 5))
    X, y = load_medmnist("chestmnist", "train", root=tmp_path, verify=False)
    assert X.shape == (40, 28, 28) and y.shape == (40, 14)
    assert y.dtype == np.int64 and y.sum() > 0 and (y == 0).any()


@pytest.mark.parametrize("flag", ["dermamnist", "chestmnist", "organamnist"])
def test_synthetic_size_64(tmp_path, make_synthetic_medmnist, flag):
    path = make_synthetic_medmnist(tmp_path, flag, n_per_split=(6, 4, 5), size=64)
    assert path.name == f"{flag}_64.npz"
    X, y = load_medmnist(flag, "test", size=64, root=tmp_path, verify=False)
    assert X.shape == (5, *image_shape(flag, 64)) and X.dtype == np.uint8
    assert len(y) == 5
    # The 28 file is a different file, and it is not there.
    with pytest.raises(DatasetNotFoundError):
        load_medmnist(flag, "test", root=tmp_path, download=False, verify=False)


def test_medmnist_reads_our_size_64_file(tmp_path, make_synthetic_medmnist):
    """medmnist's own class finds and reads the file under the same name."""
    make_synthetic_medmnist(tmp_path, "pathmnist", n_per_split=(6, 4, 5), size=64)
    ds = medmnist.PathMNIST(split="train", root=str(tmp_path), size=64)
    X, y = load_medmnist("pathmnist", "train", size=64, root=tmp_path, verify=False)
    np.testing.assert_array_equal(X, ds.imgs)
    np.testing.assert_array_equal(y, ds.labels[:, 0])


def test_only_requested_split_is_read(tmp_path):
    """A file holding only the train members still serves 'train'."""
    rng = np.random.default_rng(0)
    np.savez(
        tmp_path / "bloodmnist.npz",
        train_images=rng.integers(0, 256, (4, 28, 28, 3), dtype=np.uint8),
        train_labels=np.array([[0], [1], [7], [2]], dtype=np.uint8),
    )
    X, y = load_medmnist("bloodmnist", "train", root=tmp_path, verify=False)
    assert y.tolist() == [0, 1, 7, 2]
    with pytest.raises(DatasetFormatError, match="val_images"):
        load_medmnist("bloodmnist", "val", root=tmp_path, verify=False)


# ----------------------------------------------------------------------------
# Errors
# ----------------------------------------------------------------------------


def test_unknown_flag_lists_valid_flags():
    with pytest.raises(DatasetError) as exc:
        load_medmnist("pathmnst", "train")
    message = str(exc.value)
    assert all(flag in message for flag in FLAGS_2D)
    assert "Did you mean 'pathmnist'" in message
    assert isinstance(exc.value, ValueError)
    with pytest.raises(DatasetError):
        dataset_info(3)


def test_3d_flag_not_supported():
    with pytest.raises(DatasetError, match="3D datasets are not supported yet"):
        load_medmnist("organmnist3d", "train")


def test_bad_split():
    with pytest.raises(ValueError, match="train, val, test"):
        load_medmnist("breastmnist", "validation")


@pytest.mark.parametrize("size", [32, 0, "64", True])
def test_bad_size_lists_sizes(size):
    with pytest.raises(DatasetError) as exc:
        load_medmnist("breastmnist", "train", size=size)
    if size in (32, 0):
        assert "28, 64, 128, 224" in str(exc.value)


def test_bad_download_value():
    with pytest.raises(ValueError, match="download"):
        load_medmnist("breastmnist", "train", download="yes")


@pytest.mark.parametrize("download", [None, True])
def test_missing_file_offline(tmp_path, no_network, download):
    with pytest.raises(DatasetNotFoundError) as exc:
        load_medmnist("octmnist", "train", size=128, root=tmp_path, download=download)
    message = str(exc.value)
    assert "octmnist_128.npz" in message and str(tmp_path) in message
    assert INFO["octmnist"]["url_128"] in message and "MEDMNIST_ROOT" in message
    assert "download failed" in message
    assert isinstance(exc.value, FileNotFoundError) and isinstance(exc.value, ValueError)
    assert exc.value.path == tmp_path / "octmnist_128.npz"
    # It tried medmnist's URL and MD5 for that size, into the folder searched.
    assert no_network == [
        (INFO["octmnist"]["url_128"], tmp_path, "octmnist_128.npz", INFO["octmnist"]["MD5_128"])
    ]


def test_missing_file_download_false_never_downloads(tmp_path, no_network):
    with pytest.raises(DatasetNotFoundError) as exc:
        load_medmnist("pathmnist", "test", root=tmp_path, download=False)
    assert "pathmnist.npz" in str(exc.value) and str(tmp_path) in str(exc.value)
    assert "download=False" in str(exc.value)
    assert no_network == []


def test_partial_download_is_removed(tmp_path, monkeypatch):
    def broken(url, folder, filename, md5):
        (Path(folder) / filename).write_bytes(b"truncated")
        raise ConnectionResetError("connection lost")

    monkeypatch.setattr(data, "_download", broken)
    with pytest.raises(DatasetNotFoundError, match="connection lost"):
        load_medmnist("pathmnist", "train", root=tmp_path)
    assert not (tmp_path / "pathmnist.npz").exists()


def test_successful_download_is_loaded(tmp_path, monkeypatch, make_synthetic_medmnist):
    def fake(url, folder, filename, md5):
        make_synthetic_medmnist(folder, "dermamnist")

    monkeypatch.setattr(data, "_download", fake)
    X, _ = load_medmnist("dermamnist", "val", root=tmp_path, verify=False)
    assert X.shape == (8, 28, 28, 3)


def test_md5_mismatch(tmp_path, make_synthetic_medmnist, fresh_md5_cache):
    path = make_synthetic_medmnist(tmp_path, "breastmnist")
    actual = hashlib.md5(path.read_bytes()).hexdigest()
    with pytest.raises(ChecksumError) as exc:
        load_medmnist("breastmnist", "train", root=tmp_path)
    message = str(exc.value)
    assert "corrupt or a different version" in message
    assert INFO["breastmnist"]["MD5"] in message and actual in message
    assert (exc.value.expected, exc.value.actual) == (INFO["breastmnist"]["MD5"], actual)
    assert isinstance(exc.value, ValueError)
    # verify=False is the way to read such a file.
    X, _ = load_medmnist("breastmnist", "train", root=tmp_path, verify=False)
    assert len(X) == 24


@pytest.mark.parametrize(
    "members, match",
    [
        ({"train_images": np.zeros((2, 28, 28), np.float32)}, "float32, expected uint8"),
        ({"train_images": np.zeros((2, 28, 28, 3), np.uint8)}, "shape"),
        ({"train_labels": np.zeros((2, 1), np.float64)}, "expected integers"),
        ({"train_labels": np.zeros((2, 2), np.uint8)}, r"expected \(2, 1\)"),
        ({"train_labels": np.array([[0], [2]], np.uint8)}, "outside 0..1"),
        ({"train_labels": np.zeros((3, 1), np.uint8)}, "shape"),
    ],
)
def test_bad_file_contents(tmp_path, members, match):
    arrays = {
        "train_images": np.zeros((2, 28, 28), np.uint8),
        "train_labels": np.zeros((2, 1), np.uint8),
    }
    np.savez(tmp_path / "breastmnist.npz", **{**arrays, **members})
    with pytest.raises(DatasetFormatError, match=match):
        load_medmnist("breastmnist", "train", root=tmp_path, verify=False)


def test_not_an_npz_file(tmp_path):
    (tmp_path / "breastmnist.npz").write_bytes(b"this is not a zip file")
    with pytest.raises(DatasetFormatError, match="Cannot read"):
        load_medmnist("breastmnist", "train", root=tmp_path, verify=False)


def test_multilabel_values_checked(tmp_path):
    np.savez(
        tmp_path / "chestmnist.npz",
        test_images=np.zeros((2, 28, 28), np.uint8),
        test_labels=np.full((2, 14), 2, np.uint8),
    )
    with pytest.raises(DatasetFormatError, match="outside 0/1"):
        load_medmnist("chestmnist", "test", root=tmp_path, verify=False)


# ----------------------------------------------------------------------------
# Files shipped inside skal
# ----------------------------------------------------------------------------


def test_skal_ships_pneumoniamnist_and_breastmnist_at_28_only():
    assert embedded_flags() == ("pneumoniamnist", "breastmnist")
    assert embedded_flags(64) == ()
    assert embedded_path("retinamnist") is None
    assert embedded_path("pneumoniamnist", size=64) is None


@pytest.mark.parametrize("flag", ["pneumoniamnist", "breastmnist"])
def test_embedded_files_are_byte_identical_to_the_published_ones(flag):
    path = embedded_path(flag)
    assert path.name == f"{flag}.npz"
    # hashed here with hashlib, not with skal's cached helper
    assert hashlib.md5(path.read_bytes()).hexdigest() == INFO[flag]["MD5"]
    assert (path.parent / "README.md").is_file()  # the licence and attribution


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("flag", ["pneumoniamnist", "breastmnist"])
def test_an_empty_root_offline_reads_the_embedded_file(tmp_path, no_network, flag, split):
    X, y = load_medmnist(flag, split, root=tmp_path)  # verify=True: MD5 checked
    n = SOURCES_SPLIT_SIZES[flag][SPLITS.index(split)]
    assert X.dtype == np.uint8 and X.shape == (n, 28, 28)
    assert np.bincount(y).tolist() == SOURCES_LABEL_COUNTS[flag][split]
    assert no_network == []  # no download was even tried
    assert not any(tmp_path.iterdir())  # nothing was written to the root


def test_a_fresh_machine_without_medmnist_root_reads_the_embedded_file(tmp_path, monkeypatch,
                                                                       no_network):
    monkeypatch.delenv("MEDMNIST_ROOT", raising=False)
    monkeypatch.setattr(medmnist.info, "DEFAULT_ROOT", str(tmp_path / ".medmnist"))
    X, _ = load_medmnist("pneumoniamnist", "train")
    assert X.shape == (4708, 28, 28)
    assert locate_dataset("pneumoniamnist") == embedded_path("pneumoniamnist")
    assert no_network == []


def test_a_file_in_the_root_wins_over_the_embedded_one(tmp_path, make_synthetic_medmnist,
                                                       fresh_md5_cache):
    path = make_synthetic_medmnist(tmp_path, "pneumoniamnist", n_per_split=(5, 2, 1))
    assert locate_dataset("pneumoniamnist", root=tmp_path) == path
    X, _ = load_medmnist("pneumoniamnist", "train", root=tmp_path, verify=False)
    assert X.shape == (5, 28, 28)
    # A root file that fails the MD5 check is reported, never silently replaced.
    with pytest.raises(ChecksumError, match=str(path)):
        load_medmnist("pneumoniamnist", "train", root=tmp_path)


def test_download_true_fetches_into_the_root_despite_the_embedded_file(tmp_path, no_network):
    assert locate_dataset("breastmnist", root=tmp_path, download=True) is None
    with pytest.raises(DatasetNotFoundError, match="download failed"):
        load_medmnist("breastmnist", "train", root=tmp_path, download=True)
    assert [call[2] for call in no_network] == ["breastmnist.npz"]
    # download=False still reads the embedded copy: it downloads nothing.
    assert len(load_medmnist("breastmnist", "val", root=tmp_path, download=False)[0]) == 78


@pytest.mark.parametrize("flag, size", [("retinamnist", 28), ("pneumoniamnist", 64)])
def test_a_file_skal_does_not_ship_still_gives_the_clear_error(tmp_path, no_network, flag,
                                                               size):
    with pytest.raises(DatasetNotFoundError) as exc:
        load_medmnist(flag, "train", size=size, root=tmp_path)
    name = dataset_filename(flag, size)
    assert f"MedMNIST file {name!r} was not found in folder '{tmp_path}'" in str(exc.value)
    assert "download failed" in str(exc.value) and "MEDMNIST_ROOT" in str(exc.value)
    assert [call[2] for call in no_network] == [name]


# ----------------------------------------------------------------------------
# Data root
# ----------------------------------------------------------------------------


def test_root_resolution_order(tmp_path, monkeypatch):
    arg, env, default = tmp_path / "arg", tmp_path / "env", tmp_path / "default"
    monkeypatch.setattr(medmnist.info, "DEFAULT_ROOT", str(default))
    monkeypatch.delenv("MEDMNIST_ROOT", raising=False)
    assert resolve_root() == default
    monkeypatch.setenv("MEDMNIST_ROOT", "")  # empty counts as unset
    assert resolve_root() == default
    monkeypatch.setenv("MEDMNIST_ROOT", str(env))
    assert resolve_root() == env
    assert resolve_root(arg) == arg
    assert resolve_root(str(arg)) == arg


def test_root_expands_user_and_is_absolute(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_root("~/medmnist") == tmp_path / "medmnist"
    monkeypatch.setenv("MEDMNIST_ROOT", "~/from_env")
    assert resolve_root() == tmp_path / "from_env"
    monkeypatch.chdir(tmp_path)
    assert resolve_root("rel") == tmp_path / "rel"


def test_default_root_when_medmnist_has_none(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("MEDMNIST_ROOT", raising=False)
    monkeypatch.setattr(medmnist.info, "DEFAULT_ROOT", None)
    assert resolve_root() == tmp_path / ".medmnist"


def test_load_uses_env_root(tmp_path, monkeypatch, make_synthetic_medmnist):
    make_synthetic_medmnist(tmp_path / "env", "organsmnist", n_per_split=(3, 2, 1))
    make_synthetic_medmnist(tmp_path / "arg", "organsmnist", n_per_split=(5, 2, 1))
    monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path / "env"))
    assert len(load_medmnist("organsmnist", "train", verify=False)[0]) == 3
    assert len(load_medmnist("organsmnist", "train", root=tmp_path / "arg", verify=False)[0]) == 5


# ----------------------------------------------------------------------------
# MD5 once per process
# ----------------------------------------------------------------------------


@pytest.fixture
def count_md5(monkeypatch, fresh_md5_cache):
    calls = []
    real = data._compute_md5

    def counting(path, *args, **kwargs):
        calls.append(Path(path))
        return real(path, *args, **kwargs)

    monkeypatch.setattr(data, "_compute_md5", counting)
    return calls


def test_md5_computed_once_per_file(real_root, count_md5):
    if not (real_root / "breastmnist.npz").is_file():
        pytest.skip("breastmnist.npz missing")
    for split in SPLITS + SPLITS:
        load_medmnist("breastmnist", split, root=real_root)
    assert count_md5 == [(real_root / "breastmnist.npz").resolve()]


def test_md5_recomputed_when_file_changes(tmp_path, make_synthetic_medmnist, count_md5):
    path = make_synthetic_medmnist(tmp_path, "breastmnist")
    for _ in range(2):
        with pytest.raises(ChecksumError):
            load_medmnist("breastmnist", "train", root=tmp_path)
    assert len(count_md5) == 1
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    with pytest.raises(ChecksumError):
        load_medmnist("breastmnist", "train", root=tmp_path)
    assert len(count_md5) == 2
    # verify=False never hashes.
    load_medmnist("breastmnist", "train", root=tmp_path, verify=False)
    assert len(count_md5) == 2
    data.clear_checksum_cache()
    with pytest.raises(ChecksumError):
        load_medmnist("breastmnist", "train", root=tmp_path)
    assert len(count_md5) == 3
