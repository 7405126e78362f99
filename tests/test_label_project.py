"""Labeling projects on disk (skal.label.project, store, loop, why)."""

import csv
import json

import numpy as np
import pytest

from label_support import CLASSES, make_image_folder, make_project
from skal.data import load_medmnist
from skal.label.loop import advance, load_network
from skal.label.project import LabelError, Project, create_project
from skal.label.store import append_jsonl, read_jsonl


def test_init_writes_plain_files(tmp_path):
    folder, truth = make_image_folder(tmp_path, n=20)
    labels = tmp_path / "known.csv"
    labels.write_text("file,label\na/img000.png,dark\nb/c/img011.png,bright\n")
    project, skipped = create_project(tmp_path / "p", images=folder, classes=CLASSES,
                                      labels=labels, size=12, batch=4, holdout=0.5)
    assert skipped == []
    config = json.loads((tmp_path / "p" / "project.json").read_text())
    assert config["classes"] == CLASSES and config["method"] == "badge"
    assert config["channels"] == 1 and config["source"] == {"images": str(folder.resolve())}
    with open(tmp_path / "p" / "items.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert [r["file"] for r in rows] == sorted(truth)
    # The held-out side is decided by the content hash alone.
    assert [r["holdout"] == "1" for r in rows] == [int(r["sha256"][:8], 16) < 2**31 for r in rows]
    assert np.load(tmp_path / "p" / "images.npy").shape == (20, 12, 12)
    imported = read_jsonl(tmp_path / "p" / "labels.jsonl")
    assert [(r["file"], r["label"], r["source"]) for r in imported] == [
        ("a/img000.png", "dark", "init"), ("b/c/img011.png", "bright", "init")]
    assert project.counts()["labeled"] == 2


@pytest.mark.parametrize("kwargs, message", [
    ({"classes": ["only"]}, "at least two classes"),
    ({"classes": ["a", "a"]}, "distinct"),
    ({"classes": ["a", "skip"]}, "unsure/skip"),
    ({"classes": CLASSES, "batch": 0}, "--batch must be an integer >= 1"),
    ({"classes": CLASSES, "holdout": 1.0}, "--holdout"),
    ({"classes": CLASSES, "method": "bald", "dropout": 0.0}, "MC-dropout"),
])
def test_init_refuses_bad_settings(tmp_path, kwargs, message):
    folder, _ = make_image_folder(tmp_path, n=4)
    with pytest.raises(LabelError, match=message):
        create_project(tmp_path / "p", images=folder, size=12, **kwargs)
    assert not (tmp_path / "p" / "project.json").exists()


def test_init_refuses_a_used_folder_and_unknown_method(tmp_path):
    folder, _ = make_image_folder(tmp_path, n=4)
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "x").write_text("")
    with pytest.raises(LabelError, match="not an empty folder"):
        create_project(tmp_path / "used", images=folder, classes=CLASSES)
    with pytest.raises(ValueError, match="valid names are"):
        create_project(tmp_path / "p", images=folder, classes=CLASSES, method="magic")
    with pytest.raises(LabelError, match="not a labeling project"):
        Project(tmp_path)


def test_init_from_medmnist_hides_labels(tmp_path, shipped_root):
    project, _ = create_project(tmp_path / "p", medmnist="breastmnist", root=shipped_root)
    X, _ = load_medmnist("breastmnist", "train", root=shipped_root)
    assert project.classes == ["malignant", "normal, benign"]
    np.testing.assert_array_equal(project.images, X)
    assert project.n_items == 546 and project.files[3] == "breastmnist/train/00003.png"
    assert project.answers == {} and not (project.path / "labels.jsonl").exists()
    assert project.config["source"] == {"medmnist": "breastmnist", "split": "train"}


def test_teach_refuses_unknown_names_and_reports_conflicts(tmp_path):
    project, truth = make_project(tmp_path, n=10)
    with pytest.raises(LabelError, match="not in this project.*nope.png") as info:
        project.teach({"a/img000.png": "dark", "nope.png": "dark"}, annotator="x")
    assert info.value.status == 404 and project.answers == {}
    with pytest.raises(LabelError, match="unknown class"):
        project.teach({"a/img000.png": "purple"}, annotator="x")
    report = project.teach({"a/img000.png": "dark", "a/img001.png": "bright"}, annotator="x")
    assert report["added"] == 2 and report["conflicts"] == []
    report = project.teach({"a/img000.png": "bright", "a/img001.png": "bright"}, annotator="y")
    assert report == {"added": 0, "unchanged": 1, "overwritten": 0, "submitted": None,
                      "conflicts": [("a/img000.png", "dark", "bright")]}
    assert project.label_of(0) == "dark"  # not overwritten
    report = project.teach({"a/img000.png": "bright"}, annotator="y", overwrite=True)
    assert report["overwritten"] == 1 and project.label_of(0) == "bright"
    # The current labels are a plain CSV too.
    with open(project.path / "labels.csv") as fh:
        assert {r["file"]: r["label"] for r in csv.DictReader(fh)} == {
            "a/img000.png": "bright", "a/img001.png": "bright"}


def test_torn_last_line_is_ignored_and_cut(tmp_path):
    path = tmp_path / "log.jsonl"
    append_jsonl(path, [{"a": 1}, {"a": 2}])
    with open(path, "ab") as fh:
        fh.write(b'{"a": 3, "tor')  # a write cut short by a crash
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}]
    append_jsonl(path, [{"a": 4}])
    assert read_jsonl(path) == [{"a": 1}, {"a": 2}, {"a": 4}]
    path.write_text('{"a": 1}\nnot json\n{"a": 2}\n')
    with pytest.raises(ValueError, match="line 2"):
        read_jsonl(path)


def test_restart_resumes_batch_answers_and_model(tmp_path):
    project, truth = make_project(tmp_path)
    batch = advance(project)
    assert batch["round"] == 0 and batch["method"] == "random"
    project.record_answers([{"id": i, "label": truth[project.files[i]]} for i in batch["ids"]],
                           "ana")
    project.submit(0, "ana")
    batch1 = advance(project)
    project.record_answers([{"id": batch1["ids"][0], "skip": True}], "ana")
    reopened = Project(project.path)
    assert reopened.open_batch()["ids"] == batch1["ids"] and reopened.round == 1
    assert reopened.is_skipped(batch1["ids"][0])
    assert reopened.model_version == 1 and reopened.answers == project.answers
    # advance() on a restarted project with an open batch neither retrains nor re-queries.
    assert advance(reopened)["ids"] == batch1["ids"] and reopened.model_version == 1
    net = load_network(reopened)
    X = reopened.rows(range(5))
    np.testing.assert_allclose(net.predict_proba(X), load_network(project).predict_proba(X))


def _answer(project, truth, batch):
    project.record_answers([{"id": i, "label": truth[project.files[i]]} for i in batch["ids"]],
                           "ana")
    project.submit(batch["round"], "ana")


def test_ahead_mode_never_waits_for_training_once_a_model_exists(tmp_path):
    project, truth = make_project(tmp_path, n=60)
    assert advance(project, ahead=True)["round"] == 0
    assert [b["round"] for b in project.unsubmitted_batches()] == [0, 1]
    _answer(project, truth, project.open_batch())
    _answer(project, truth, project.open_batch())  # submitted before anything was chosen
    assert project.open_batch() is None
    # No model yet but labels: train first (a random batch would waste them), then ahead.
    assert advance(project, ahead=True)["round"] == 2
    assert [(b["round"], b["model_version"]) for b in project.batches] == \
        [(0, 0), (1, 0), (2, 1), (3, 1)]
    _answer(project, truth, project.open_batch())
    _answer(project, truth, project.open_batch())
    # A model exists (version 1, now stale): the next batch comes from it at once, then the
    # model catches up and picks the batch after.
    assert advance(project, ahead=True)["model_version"] == 1
    assert [(b["round"], b["model_version"]) for b in project.batches[4:]] == [(4, 1), (5, 2)]
    assert project.model_meta["n_train"] == sum(not project.holdout[i]
                                                for b in project.batches[:4] for i in b["ids"])
    picked = [i for b in project.batches for i in b["ids"]]
    assert len(picked) == len(set(picked)) == 36  # no image in two batches
    # A restart finds the open batch and the one chosen ahead.
    reopened = Project(project.path)
    assert [b["ids"] for b in reopened.unsubmitted_batches()] == \
        [b["ids"] for b in project.batches[4:]]
    assert reopened.round == 4 and reopened.next_batch()["round"] == 5


def test_a_batch_never_shares_an_item_with_an_open_one(tmp_path):
    project, _ = make_project(tmp_path)
    advance(project, ahead=True)
    open_ids, ahead_ids = (b["ids"] for b in project.unsubmitted_batches())
    assert not set(open_ids) & set(project.pool_ids()) and not set(ahead_ids) & set(
        project.pool_ids())
    before = (project.path / "batches.jsonl").read_bytes()
    with pytest.raises(LabelError, match="next one is chosen"):
        project.add_batch({"ids": [int(project.pool_ids()[0])]})
    project.batches.pop()  # as if only the open batch were there
    with pytest.raises(LabelError, match=rf"items \[{open_ids[0]}\] are already in an open"):
        project.add_batch({"ids": [open_ids[0]]})
    assert (project.path / "batches.jsonl").read_bytes() == before


def test_skipped_items_wait_for_the_cooldown(tmp_path):
    project, truth = make_project(tmp_path, n=12, batch=4, skip_cooldown=1, method="random")
    batch = advance(project)
    skipped = batch["ids"][0]
    project.record_answers([{"id": skipped, "skip": True}] +
                           [{"id": i, "label": "dark"} for i in batch["ids"][1:]], "ana")
    project.submit(0, "ana")
    assert skipped not in project.pool_ids()  # round 1: not re-queried at once
    b1 = advance(project)
    project.record_answers([{"id": i, "label": "dark"} for i in b1["ids"]], "ana")
    project.submit(1, "ana")
    assert skipped in project.pool_ids()  # round 2: back in the pool
    assert skipped not in project.labeled_ids()  # never trained on


def test_query_and_its_explanation_share_one_pass_over_the_pool(tmp_path, monkeypatch):
    from skal.estimator import ImageClassifier
    from skal.label import loop

    project, truth = make_project(tmp_path)
    batch = advance(project)
    project.record_answers([{"id": i, "label": truth[project.files[i]]} for i in batch["ids"]],
                           "ana")
    project.submit(0, "ana")
    learner = loop.train(project)
    pool_size = len(project.pool_ids())
    sizes = []
    original = ImageClassifier._map_batches

    def counting(self, X, fn, axis=0):
        sizes.append(len(X))
        return original(self, X, fn, axis)

    monkeypatch.setattr(ImageClassifier, "_map_batches", counting)
    batch = loop.query_batch(project, learner)
    assert batch["method"] == "badge" and batch["scores"] is not None
    assert sizes.count(pool_size) == 1  # BADGE and the 'why' scores: one pass
    # Outside the query, the network predicts afresh.
    assert learner.estimator.predict_proba(project.rows(range(3))).shape == (3, 2)


def test_renamed_moved_new_and_deleted_files(tmp_path):
    from PIL import Image

    project, truth = make_project(tmp_path, n=10)
    project.teach({"a/img000.png": "dark", "a/img001.png": "bright"}, annotator="ana")
    images = tmp_path / "images"
    (images / "a" / "img000.png").rename(images / "renamed.png")
    (images / "moved").mkdir()
    (images / "a" / "img001.png").rename(images / "moved" / "img001.png")
    (images / "a" / "img002.png").unlink()
    Image.fromarray(np.full((12, 12), 77, np.uint8)).save(images / "new.png")

    reopened = Project(project.path)
    report = reopened.sync_images()
    assert sorted(report["renamed"]) == [("a/img000.png", "renamed.png"),
                                         ("a/img001.png", "moved/img001.png")]
    assert report["added"] == ["new.png"] and report["missing"] == ["a/img002.png"]
    assert reopened.label_of(reopened.item_id("renamed.png")) == "dark"
    assert reopened.item_id("renamed.png") == 0 and reopened.item_id("moved/img001.png") == 1
    assert reopened.holdout[0] == project.holdout[0]
    new = reopened.item_id("new.png")
    assert new == 10 and (reopened.images[new] == 77).all()
    # What was written is what a fresh open reads; a second sync changes nothing.
    again = Project(project.path)
    assert again.files == reopened.files and again.images.shape == (11, 12, 12)
    assert again.sync_images() == {"renamed": [], "added": [], "missing": ["a/img002.png"],
                                   "skipped": []}
    report = again.teach({"renamed.png": "dark"}, annotator="ana")
    assert report["unchanged"] == 1 and report["conflicts"] == []
    assert ",renamed.png," in again.export_csv()


@pytest.mark.parametrize("method", sorted(__import__("skal.query").query.STRATEGIES))
def test_every_strategy_queries_and_explains(tmp_path, method):
    from skal.query import strategy_utility

    project, truth = make_project(tmp_path, n=24, batch=3, method=method)
    batch = advance(project)
    project.record_answers([{"id": i, "label": truth[project.files[i]]} for i in batch["ids"]],
                           "ana")
    project.submit(0, "ana")
    batch = advance(project)
    assert batch["method"] == method and len(batch["ids"]) == 3
    assert len(set(batch["ids"])) == 3 and batch["pool_size"] == 24 - 3
    assert all(1 <= r <= 21 for r in batch["ranks"])
    assert batch["guesses"] is not None and all(g in CLASSES for g in batch["guesses"])
    assert batch["score_name"] == strategy_utility(method).name
    assert all(np.isfinite(batch["scores"])) and len(batch["sentences"]) == 3
    assert all(r <= of <= 21 for r, of in zip(batch["ranks"], batch["of"]))
    if method == "random":  # every remaining image had the same chance
        assert batch["scores"] == [1 / 21, 1 / 20, 1 / 19] and batch["ranks"] == [1, 1, 1]


#: skal.label's layers, lowest first: a module may import only from earlier layers.
LAYERS = [
    {"store", "access", "plot", "why"},  # files, Host rules, the curve, why a pick: no skal.label
    {"network"},  # the project's network
    {"project"},  # the project folder and its state
    {"loop"},  # train and query
    {"worker"},  # the loop in a background thread
    {"server"},  # the page's API
    {"cli", "__init__"},  # the commands and the package's face
    {"__main__"},  # python -m skal.label
]


def _label_imports(path):
    """Names of the skal.label modules a source file imports, at any depth (lazy ones too)."""
    import ast

    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:  # from . import x / from .x import y
                module = "skal.label" + ("." + module if module else "")
            names = [f"{module}.{alias.name}" for alias in node.names] + [module]
        else:
            continue
        found.update(n.split(".")[2] for n in names
                     if n.startswith("skal.label.") and len(n.split(".")) > 2)
    return found


def test_label_package_is_layered_one_way():
    from pathlib import Path

    import skal.label

    layer = {name: k for k, names in enumerate(LAYERS) for name in names}
    folder = Path(skal.label.__file__).parent
    modules = {p.stem: p for p in folder.glob("*.py")}
    assert set(modules) == set(layer), "place each skal.label module in LAYERS"
    for name, path in modules.items():
        imported = {m for m in _label_imports(path) if m in layer}
        later = sorted(m for m in imported if layer[m] >= layer[name] and m != name)
        assert not later, f"skal.label.{name} imports {later}, which are not below it"
    # The test itself sees a forbidden import.
    assert _label_imports(modules["worker"]) == {"loop"}
    assert "network" in _label_imports(modules["project"])  # lazy, inside a function
