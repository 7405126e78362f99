"""Issue 16.4: one of each -- one atomic writer, one network factory, one rule per setting,
one ``missing_requirements``."""

from __future__ import annotations

import os
import threading

import pytest

from skal import results
from skal.label import store


# ----------------------------------------------------------------------------
# One atomic writer
# ----------------------------------------------------------------------------


def test_the_label_store_writes_through_the_one_writer():
    assert store.atomic_write_bytes is results.atomic_write_bytes
    assert store.fsync_dir is results.fsync_dir


@pytest.mark.parametrize("write", [
    lambda path, data: results.atomic_write(path, lambda fh: fh.write(data)),
    store.atomic_write_bytes,
], ids=["results.atomic_write", "store.atomic_write_bytes"])
def test_two_threads_writing_one_path_never_tear_it(tmp_path, write):
    # Two writers replace the same file over and over with contents of their
    # own; a reader checks every version it sees is one writer's whole content.
    # With a shared temporary name one writer truncates or renames away the
    # other's file: torn content, or FileNotFoundError from the rename.
    target = tmp_path / "labels.csv"
    contents = [bytes([65 + k]) * (64 * 1024 + k) for k in range(2)]
    write(target, contents[0])
    errors, seen, stop = [], set(), threading.Event()

    def writer(k):
        try:
            for _ in range(150):
                write(target, contents[k])
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            errors.append(exc)

    def reader():
        while not stop.is_set():
            data = target.read_bytes()
            seen.add(data[:1])
            if data not in contents:
                errors.append(AssertionError(f"torn file: {len(data)} bytes"))

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(2)]
    watcher = threading.Thread(target=reader)
    watcher.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    watcher.join()
    assert errors == []
    assert target.read_bytes() in contents
    assert [p.name for p in tmp_path.iterdir()] == ["labels.csv"]  # no temporary file left


def test_the_writer_gives_the_mode_open_gives_without_touching_the_umask(tmp_path, monkeypatch):
    def no_umask(*args):
        raise AssertionError("os.umask called: it sets the process's umask")

    with open(tmp_path / "plain", "wb"):
        pass
    monkeypatch.setattr(os, "umask", no_umask)
    results.atomic_write(tmp_path / "atomic", lambda fh: fh.write(b"x"))
    assert (tmp_path / "atomic").stat().st_mode == (tmp_path / "plain").stat().st_mode


# ----------------------------------------------------------------------------
# One missing_requirements
# ----------------------------------------------------------------------------


def test_one_missing_requirements_with_one_return_type():
    import skal.query
    import skal.query._base
    from sklearn.linear_model import LogisticRegression

    from skal.estimator import ImageClassifier
    from skal.query import REQUIREMENTS, check_requirements, missing_requirements

    assert not hasattr(skal.query._base, "missing_requirements")
    # scal needs embeddings and a loss head: a logistic regression has neither; the
    # dict lists both, in REQUIREMENTS' order, with REQUIREMENTS' descriptions.
    missing = missing_requirements("scal", LogisticRegression())
    assert missing == {"loss_head": "a loss-prediction head (predict_loss)",
                       "embedding": "penultimate-layer embeddings (embed)"}
    assert list(missing) == [need for need in REQUIREMENTS if need in missing]
    # The checker refuses with the first of them.
    with pytest.raises(ValueError, match="scal needs a loss-prediction head"):
        check_requirements("scal", LogisticRegression())
    multi = ImageClassifier("small_cnn", n_classes=3, multi_label=True)
    assert missing_requirements("badge", multi) == {
        "single_label": "single-label output (one class per item)"}
    assert missing_requirements("margin", multi) == {}
