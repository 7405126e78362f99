"""``skal label init -> query -> teach -> status`` through the command line."""

import csv
import json

import pytest

from label_support import make_image_folder
from skal.cli import main


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_init_query_teach_status(tmp_path, capsys):
    folder, truth = make_image_folder(tmp_path, n=30)
    project = tmp_path / "proj"
    assert main(["label", "init", str(project), "--images", str(folder), "--classes", "dark",
                 "bright", "--batch", "5", "--size", "12", "--epochs", "1",
                 "--min-holdout", "2"]) == 0
    assert "30 images, classes dark, bright; 0 labels imported" in capsys.readouterr().out

    # Round 0: no labels yet, so a random batch, as file names for another tool.
    assert main(["label", "query", str(project), "--out", str(tmp_path / "b0.csv")]) == 0
    batch0 = _read_csv(tmp_path / "b0.csv")
    # A uniform draw: every image had the same chance, so each pick ranks 1.
    assert len(batch0) == 5 and [r["rank"] for r in batch0] == ["1"] * 5
    assert "picked by random" in capsys.readouterr().err
    # Asking again returns the same open batch, not a new one.
    assert main(["label", "query", str(project), "--out", str(tmp_path / "again.csv")]) == 0
    assert _read_csv(tmp_path / "again.csv") == batch0

    answers = tmp_path / "a0.csv"
    answers.write_text("file,label\n" + "".join(f"{r['file']},{truth[r['file']]}\n"
                                                for r in batch0))
    assert main(["label", "teach", str(project), str(answers), "--annotator", "bob"]) == 0
    out = capsys.readouterr().out
    assert "imported 5 new label(s)" in out and "round 0 is complete" in out

    # Round 1: trains on the labels, then BADGE picks with its own score.
    assert main(["label", "query", str(project), "--out", str(tmp_path / "b1.csv")]) == 0
    batch1 = _read_csv(tmp_path / "b1.csv")
    assert len(batch1) == 5 and all(float(r["score"]) >= 0 for r in batch1)
    assert not {r["file"] for r in batch1} & {r["file"] for r in batch0}
    assert "picked by badge (squared gradient distance)" in capsys.readouterr().err

    assert main(["label", "status", str(project)]) == 0
    out = capsys.readouterr().out
    dark = sum(truth[r["file"]] == "dark" for r in batch0)
    assert f"labels: dark {dark}, bright {5 - dark} (5 labeled, 0 unsure/skip" in out
    assert "rounds: 1 submitted; round 1 open, 0 of 5 answered" in out
    assert "model: version 1, trained on" in out

    assert main(["label", "export", str(project), "--format", "jsonl",
                 "--out", str(tmp_path / "all.jsonl")]) == 0
    rows = [json.loads(line) for line in (tmp_path / "all.jsonl").read_text().splitlines()]
    assert {r["file"]: r["label"] for r in rows} == {r["file"]: truth[r["file"]] for r in batch0}
    assert all(r["annotator"] == "bob" and r["source"] == "teach" for r in rows)


def test_teach_refuses_unknown_files_and_reports_conflicts(tmp_path, capsys):
    folder, truth = make_image_folder(tmp_path, n=10)
    project = tmp_path / "proj"
    known = tmp_path / "known.csv"
    known.write_text("file,label\na/img000.png,dark\n")
    assert main(["label", "init", str(project), "--images", str(folder), "--classes", "dark",
                 "bright", "--labels", str(known), "--size", "12"]) == 0
    assert "1 labels imported" in capsys.readouterr().out

    unknown = tmp_path / "unknown.csv"
    unknown.write_text("file,label\na/img001.png,dark\nelsewhere/x.png,bright\n")
    assert main(["label", "teach", str(project), str(unknown)]) == 2
    err = capsys.readouterr().err
    assert "1 file name(s) are not in this project" in err and "elsewhere/x.png" in err
    lines = (project / "labels.jsonl").read_text().splitlines()
    assert len(lines) == 1  # nothing imported

    conflict = tmp_path / "conflict.csv"
    conflict.write_text("file,label\na/img000.png,bright\na/img001.png,bright\n")
    assert main(["label", "teach", str(project), str(conflict)]) == 1
    captured = capsys.readouterr()
    assert "imported 1 new label(s)" in captured.out
    assert "a/img000.png: earlier 'dark', this file 'bright'" in captured.err
    assert "use --overwrite" in captured.err
    assert main(["label", "teach", str(project), str(conflict), "--overwrite"]) == 0
    assert json.loads((project / "labels.jsonl").read_text().splitlines()[-1])["label"] == "bright"


@pytest.mark.parametrize("argv, message", [
    (["init", "P", "--images", "MISSING", "--classes", "a", "b"], "is not a folder"),
    (["init", "P", "--images", "IMAGES", "--classes", "a"], "at least two classes"),
    (["status", "IMAGES"], "not a labeling project"),
    (["init", "P", "--medmnist", "chestmnist"], "multi-label"),
])
def test_errors_are_one_clear_line(tmp_path, capsys, argv, message):
    folder, _ = make_image_folder(tmp_path, n=4)
    names = {"P": str(tmp_path / "p"), "MISSING": str(tmp_path / "none"), "IMAGES": str(folder)}
    assert main(["label"] + [names.get(a, a) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("skal label: error: ") and message in err
    assert "Traceback" not in err


def test_teach_refused_while_served(tmp_path, capsys):
    folder, _ = make_image_folder(tmp_path, n=4)
    project = tmp_path / "proj"
    assert main(["label", "init", str(project), "--images", str(folder), "--classes", "dark",
                 "bright", "--size", "12"]) == 0
    from skal.label.project import Project

    holder = Project(project)
    holder.process_lock()  # as a running `skal label serve` holds it
    labels = tmp_path / "l.csv"
    labels.write_text("file,label\na/img000.png,dark\n")
    try:
        assert main(["label", "teach", str(project), str(labels)]) == 2
        assert "open in another process" in capsys.readouterr().err
    finally:
        holder._file_lock.release()
    assert main(["label", "teach", str(project), str(labels)]) == 0
