"""benchmarks/study_time.py: the study's workload per cell and its time at a measured speed."""

import json

import pytest

from benchmarks import study_time


def test_a_cells_images_by_hand():
    # pneumoniamnist: budget 100, 4,708 training and 624 test images; 50 epochs x 10 cycles.
    train, forward = study_time.cell_images("pneumoniamnist", "random")
    assert train == 50 * 100 * (1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 + 10) == 275_000
    assert forward == 10 * 624
    # core-set scores the study's subsample, max(pool // 2, 10 x budget), after cycles 1-9.
    _, forward = study_time.cell_images("pneumoniamnist", "coreset")
    assert forward == 6240 + sum(max((4708 - 100 * c) // 2, 1000) for c in range(1, 10))
    # SCAL scores the whole pool and fine-tunes its loss head 20 epochs a cycle.
    _, forward = study_time.cell_images("pneumoniamnist", "scal")
    assert forward == 6240 + sum(4708 - 100 * c for c in range(1, 10)) + 20 * 100 * 55


def test_study_seconds_at_a_known_speed():
    one = study_time.study_seconds(1000.0, datasets=("pneumoniamnist",), methods=("random",),
                                   trials=5)
    assert one["pneumoniamnist"] == pytest.approx(5 * (275_000 + 6240 / 3) / 1000)
    assert one["total"] == one["pneumoniamnist"]
    whole = study_time.study_seconds(1000.0)
    assert len(whole) == 9 + 1 and whole["total"] == pytest.approx(
        sum(v for k, v in whole.items() if k != "total"))
    # Twice the speed, half the time; tissuemnist (budget 3300) dominates.
    assert study_time.study_seconds(2000.0)["total"] == pytest.approx(whole["total"] / 2)
    assert max(whole, key=lambda k: whole[k] if k != "total" else 0) == "tissuemnist"
    with pytest.raises(ValueError, match="positive"):
        study_time.study_seconds(0)


def test_speeds_of_processes_run_together_add_up(tmp_path, capsys):
    paths = []
    for i, rate in enumerate((300.0, 500.0)):
        path = tmp_path / f"s{i}.json"
        path.write_text(json.dumps([{"model": "resnet18", "skal_images_per_second": rate},
                                    {"model": "small_cnn", "skal_images_per_second": 9e9}]))
        paths.append(str(path))
    assert study_time.read_speed(paths) == 800.0
    assert study_time.read_speed(paths, model="vgg") is None
    assert study_time.main([paths[0], "--concurrent", *paths]) == 0
    out = capsys.readouterr().out
    hours = study_time.study_seconds(300.0)["total"] / 3600
    assert f"at 300 training images/s (1 cell at a time): {hours:8.1f} h in all" in out
    assert "at 800 training images/s (2 cells at once (--jobs 2))" in out
    assert "180 cells" in out
