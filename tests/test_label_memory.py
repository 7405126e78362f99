"""What bounds a labeling server's memory on a large folder (benchmarks/results/label_scale.md).

The project's images stay on disk (memory-mapped; rows are read for the
network as needed), a pass over the pool hands the network a few batches at
a time (the same numbers, the same picks), and the worker gives the memory
it freed back when it goes idle.
"""

import numpy as np
import pytest
from label_support import make_project

from skal.label import loop, network
from skal.label.loop import advance
from skal.label.project import Project


def _trained(tmp_path, **settings):
    project, truth = make_project(tmp_path, n=40, **settings)
    batch = advance(project)
    project.record_answers([{"id": i, "label": truth[project.files[i]]} for i in batch["ids"]],
                           "ana")
    project.submit(0, "ana")
    return project, loop.train(project)


def test_project_images_are_memory_mapped_read_only(tmp_path):
    from PIL import Image

    project, _ = make_project(tmp_path, n=10)
    Image.fromarray(np.full((12, 12), 77, np.uint8)).save(tmp_path / "images" / "new.png")
    synced = Project(project.path)
    assert synced.sync_images()["added"] == ["new.png"]  # images.npy rewritten
    for opened in (project, synced, Project(project.path)):
        assert isinstance(opened.images, np.memmap) and opened.images.mode == "r"
        assert not opened.images.flags.writeable
    assert synced.images.shape == (11, 12, 12) and (synced.images[10] == 77).all()


@pytest.mark.parametrize("ids", [range(11), [10], [2, 3, 4, 9, 10], [10, 3, 3, 2, 0], []])
def test_rows_are_the_images_rows_in_memory(tmp_path, ids):
    from PIL import Image

    project, _ = make_project(tmp_path, n=10)
    Image.fromarray(np.full((12, 12), 77, np.uint8)).save(tmp_path / "images" / "new.png")
    project.sync_images()  # rows come from the rewritten file
    rows = project.rows(ids)
    assert type(rows) is np.ndarray and rows.flags.writeable and rows.shape == (len(ids), 12, 12)
    assert np.array_equal(rows, project.images[np.asarray(ids, dtype=np.int64)])
    assert 10 not in ids or (rows[list(ids).index(10)] == 77).all()
    with pytest.raises(IndexError):
        project.rows([0, 11])


@pytest.mark.parametrize("method", ["badge", "margin", "scal"])
def test_a_pass_over_the_pool_in_chunks_gives_the_same_numbers_and_picks(tmp_path, monkeypatch,
                                                                          method):
    from skal.estimator import ImageClassifier
    from skal.query import get_query_strategy

    # Batches of 4 and 2 per call: the pool of 34 goes in 5 calls, the last one short.
    project, learner = _trained(tmp_path, method=method, batch_size=4)
    monkeypatch.setattr(network, "PASS_CHUNK_BATCHES", 2)
    net, strategy = learner.estimator, get_query_strategy(method)
    X_pool = project.images[project.pool_ids()]
    assert len(X_pool) == 34
    sizes = []
    original = ImageClassifier._map_batches

    def counting(self, X, fn, axis=0):
        sizes.append(len(X))
        return original(self, X, fn, axis)

    def query():
        return strategy(learner, X_pool, n_instances=3, random_state=7, return_utilities=True)

    def outputs():  # what the query's pass over the pool gives
        return ((net.predict_loss(X_pool),) if method == "scal"
                else net.predict_proba_and_embed(X_pool))

    monkeypatch.setattr(ImageClassifier, "_map_batches", counting)
    with net.sharing_pass(X_pool):
        picked, utilities = query()
        chunked = outputs()
    assert sizes[:5] == [8, 8, 8, 8, 2]  # whole batches per call, never the whole pool
    sizes.clear()
    whole = outputs()  # outside a query: one call over everything
    assert sizes == [34]
    assert len(chunked) == len(whole)
    for a, b in zip(chunked, whole):
        assert a.dtype == b.dtype and np.array_equal(a, b)
    monkeypatch.setattr(network, "PASS_CHUNK_BATCHES", 10**6)  # one call over the pool
    with net.sharing_pass(X_pool):
        picked_whole, utilities_whole = query()
    assert np.array_equal(picked, picked_whole)
    assert np.array_equal(utilities, utilities_whole, equal_nan=True)


def test_the_worker_gives_freed_memory_back_at_each_stage_and_when_idle(tmp_path, monkeypatch):
    import platform

    from skal.label import worker

    if platform.libc_ver()[0] == "glibc":  # elsewhere there is no malloc_trim to call
        assert worker.release_freed_memory() is True
    events = []

    def advance(project, progress, ahead):  # trains, then queries, as the loop reports
        for stage, fraction in [("training", 0.5), ("training", 1.0), ("querying", 0.0),
                                ("querying", 1.0)]:
            progress(stage, fraction)
            events.append(stage)

    monkeypatch.setattr(worker, "advance", advance)
    monkeypatch.setattr(worker, "release_freed_memory", lambda: events.append("trim"))
    project, _ = make_project(tmp_path, n=10)
    background = worker.Worker(project)
    assert background.start()
    background.join(10)
    assert events == ["training", "training", "trim", "querying", "querying", "trim"]
    assert background.status()["stage"] == "idle"
