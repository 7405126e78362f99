"""skal.results: the one result schema, its number and error text, and reading older files."""

import os

import pandas as pd
import pytest

from benchmarks import report
from skal import results


def test_numbers_keep_every_digit_and_none_is_empty():
    assert results.csv_number(0.1 + 0.2) == "0.30000000000000004"
    assert results.csv_number(None) == ""
    assert results.format_rows([{"acc": 1, "auc": None, "train_seconds": 0.5,
                                 "query_seconds": "0.25", "seed": 3}]) == [
        {"acc": "1.0", "auc": "", "train_seconds": "0.5", "query_seconds": "0.25", "seed": 3}]


def test_error_text_is_one_line():
    assert results.error_text(ValueError("bad\n  value\tthere")) == "ValueError: bad value there"


def test_written_rows_read_back_by_seed_and_cycle(tmp_path):
    rows = results.curve_rows("random", "breastmnist", 4, [
        {"cycle": 1, "n_labeled": 10, "acc": 0.5, "auc": 0.75, "test_loss": 0.625,
         "balanced_acc": 0.375, "train_seconds": 1.0, "query_seconds": 0.125,
         "query_cpu_seconds": 0.25, "queried": [1, 2]}])
    path = tmp_path / "results.csv"
    results.write_csv(path, results.RESULT_COLUMNS, results.format_rows(rows))
    assert path.read_text().splitlines() == [
        "method,dataset,seed,cycle,n_labeled,acc,auc,test_loss,balanced_acc,train_seconds,"
        "query_seconds,query_cpu_seconds",
        "random,breastmnist,4,1,10,0.5,0.75,0.625,0.375,1.0,0.125,0.25"]
    assert results.read_rows(path) == {(4, 1): {
        "method": "random", "dataset": "breastmnist", "seed": "4", "cycle": "1",
        "n_labeled": "10", "acc": "0.5", "auc": "0.75", "test_loss": "0.625",
        "balanced_acc": "0.375", "train_seconds": "1.0", "query_seconds": "0.125",
        "query_cpu_seconds": "0.25"}}
    assert results.read_rows(tmp_path / "none.csv") == {}


def test_files_and_checkpoints_without_the_later_columns_still_read(tmp_path):
    # results.csv before test_loss and query_cpu_seconds, and a checkpointed
    # learning curve of that time (a resumed run's first cycles).
    old = tmp_path / "results.csv"
    old.write_text("method,dataset,seed,cycle,n_labeled,acc,auc,train_seconds,query_seconds\n"
                   "random,breastmnist,2,1,10,0.5,0.75,1.0,0.25\n")
    row = results.read_rows(old)[(2, 1)]
    assert row["test_loss"] == row["query_cpu_seconds"] == "" and row["query_seconds"] == "0.25"
    assert row["balanced_acc"] == ""
    frame = report.validate_results(pd.read_csv(old))
    assert frame["test_loss"].isna().all() and frame["query_cpu_seconds"].isna().all()
    assert frame["balanced_acc"].isna().all()
    assert frame["acc"].tolist() == [0.5]
    rows = results.curve_rows("random", "breastmnist", 2, [
        {"cycle": 1, "n_labeled": 10, "acc": 0.5, "auc": 0.75, "train_seconds": 1.0,
         "query_seconds": 0.25}])
    assert results.format_rows(rows)[0]["test_loss"] == results.format_rows(rows)[0][
        "balanced_acc"] == ""
    assert set(results.LATER_COLUMNS) <= set(results.RESULT_COLUMNS)
    assert set(results.LATER_COLUMNS).isdisjoint(report.REQUIRED_COLUMNS)


def test_files_that_name_the_trial_column_trial_still_read(tmp_path):
    # skal run's results.csv before the one-name rule called the seed column `trial`.
    old = tmp_path / "results.csv"
    old.write_text("method,dataset,trial,cycle,n_labeled,acc,auc,train_seconds,query_seconds\n"
                   "random,breastmnist,2,1,10,0.5,0.75,1.0,0.0\n")
    assert results.read_rows(old)[(2, 1)]["seed"] == "2"
    frame = report.validate_results(pd.read_csv(old))
    assert frame["seed"].tolist() == [2] and frame["acc"].tolist() == [0.5]


def test_the_committed_grid_parses_with_the_schema():
    from pathlib import Path

    grid = Path(__file__).resolve().parents[1] / "benchmarks" / "results" / "fast" / "results.csv"
    frame = pd.read_csv(grid)
    # The schema's columns in order; only later ones may be missing (written before them).
    assert tuple(frame.columns) == tuple(c for c in results.RESULT_COLUMNS if c in frame.columns)
    assert set(results.RESULT_COLUMNS) - set(frame.columns) <= set(results.LATER_COLUMNS)
    assert len(report.validate_results(frame)) == len(frame)


def test_atomic_write_never_leaves_a_part(tmp_path):
    target = tmp_path / "state.pkl"
    results.atomic_write(target, lambda fh: fh.write(b"old"))

    def broken(fh):
        fh.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError):
        results.atomic_write(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["state.pkl"]  # no temp file left
    # readable by others as open() would make it, not private as mkstemp does
    umask = os.umask(0)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask
