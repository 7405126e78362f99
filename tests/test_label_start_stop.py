"""``skal label init --initial`` (a label-free first batch) and the stopping line of ``status``."""

import csv
import json

import numpy as np
import pytest

from label_support import make_image_folder
from skal.cli import main
from skal.label.loop import _query_seed, build_network
from skal.label.project import FORECAST_LABELS, KEPT_MODELS, STOP_SET_SIZE, Project
from skal.query.cold_start import probcover
from skal.stopping import assess


def _read_csv(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def _teach(tmp_path, project, batch, truth, name):
    answers = tmp_path / name
    answers.write_text("file,label\n" + "".join(f"{r['file']},{truth[r['file']]}\n"
                                                for r in batch))
    assert main(["label", "teach", str(project), str(answers)]) == 0


def test_initial_first_batch_then_stopping_status(tmp_path, capsys):
    folder, truth = make_image_folder(tmp_path, n=30)
    project = tmp_path / "proj"
    assert main(["label", "init", str(project), "--images", str(folder), "--classes", "dark",
                 "bright", "--batch", "5", "--size", "12", "--epochs", "1",
                 "--min-holdout", "2", "--initial", "probcover"]) == 0
    capsys.readouterr()

    # Round 0: ProbCover on self-supervised features of the project's images, cached there.
    assert main(["label", "query", str(project), "--out", str(tmp_path / "b0.csv")]) == 0
    batch0 = _read_csv(tmp_path / "b0.csv")
    assert "picked by probcover" in capsys.readouterr().err
    opened = Project(project)
    assert opened.config["initial"] == "probcover"
    assert len(list((project / "features").glob("*.npy"))) == 1
    ids = [int(r["id"]) for r in batch0]
    pool = np.array(sorted(set(opened.pool_ids().tolist()) | set(ids)))  # before the batch
    expected, gains = probcover(None, opened.images[pool], 5, n_classes=2,
                                random_state=_query_seed(opened.config, 0),
                                cache_dir=project / "features", return_utilities=True)
    assert ids == pool[expected].tolist()
    # newly covered points: the utility each pick had at its step
    assert [float(r["score"]) for r in batch0] == gains[np.arange(5), expected].tolist()

    # No model yet: the stopping line says what it waits for.
    assert main(["label", "status", str(project)]) == 0
    assert ("stop? stop-set agreement needs 3 models (0 so far); the forecast needs 3 "
            "evaluated models (0 so far)") in capsys.readouterr().out

    # Three rounds of labels: three models kept, their agreement reported.
    batch = batch0
    for round_ in range(3):
        _teach(tmp_path, project, batch, truth, f"a{round_}.csv")
        assert main(["label", "query", str(project), "--out", str(tmp_path / "b.csv")]) == 0
        batch = _read_csv(tmp_path / "b.csv")
    opened = Project(project)
    assert len(opened.kept_model_paths()) == KEPT_MODELS == 3
    # The verdict stored with the newest model is skal.stopping.assess on the three kept
    # models' predictions on the project's stop set, recomputed here from their weights.
    rng = np.random.default_rng(int(opened.config["seed"]))
    pick = np.sort(rng.choice(opened.n_items, min(STOP_SET_SIZE, opened.n_items), replace=False))
    predictions = []
    for path in opened.kept_model_paths():
        net = build_network(opened.config)
        net.initialize()
        net.load_params(f_params=str(path))
        predictions.append(net.predict(opened.images[pick]))
    curve = [(int(r["n_train"]), float(r["accuracy"])) for r in opened.curve if r["accuracy"]]
    expected = assess(predictions, [n for n, _ in curve] or None, [a for _, a in curve] or None,
                      n_more=FORECAST_LABELS, window=3)
    stored = opened.model_meta["stopping"]
    assert stored == json.loads(json.dumps(expected))
    assert stored["agreement"] == np.mean(np.all(np.stack(predictions) == predictions[0], axis=0))
    # status prints that stored sentence; another --next recomputes the forecast part only.
    assert main(["label", "status", str(project)]) == 0
    assert f"stop? {stored['sentence']}\n" in capsys.readouterr().out
    assert main(["label", "status", str(project), "--next", "50"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("stop? "))
    agree = f"stop? the last 3 models agree on {100 * stored['agreement']:.1f} % of the stop set; "
    assert line.startswith(agree)
    assert "the next 50 labels are forecast to add" in line or "the forecast needs 3" in line


def test_init_refuses_an_unknown_initial_strategy(tmp_path, capsys):
    folder, _ = make_image_folder(tmp_path, n=10)
    with pytest.raises(SystemExit) as exit_:
        main(["label", "init", str(tmp_path / "p"), "--images", str(folder), "--classes",
              "dark", "bright", "--initial", "kmeans"])
    assert exit_.value.code == 2
    assert "argument --initial: invalid choice: 'kmeans'" in capsys.readouterr().err


def test_random_first_batch_is_unchanged_by_the_setting(tmp_path, capsys):
    """A project made before --initial existed (no 'initial' in project.json) draws at random."""
    folder, _ = make_image_folder(tmp_path, n=20)
    project = tmp_path / "proj"
    assert main(["label", "init", str(project), "--images", str(folder), "--classes", "dark",
                 "bright", "--batch", "4", "--size", "12"]) == 0
    assert Project(project).config["initial"] == "random"
    assert main(["label", "query", str(project), "--out", str(tmp_path / "b0.csv")]) == 0
    assert "picked by random" in capsys.readouterr().err
    assert not (project / "features").exists()
    np.testing.assert_equal(len(_read_csv(tmp_path / "b0.csv")), 4)
