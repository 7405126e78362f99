"""The labeling server's API (skal.label.server) through Starlette's TestClient."""

import io
import json
import threading
import time

import numpy as np
import pytest
from PIL import Image

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from label_support import CLASSES, make_project, wait_for  # noqa: E402
from skal.label.project import Project  # noqa: E402
from skal.label.server import create_app  # noqa: E402

BASE = "http://127.0.0.1:8765"
ORIGIN = {"Origin": BASE}


def _serve(tmp_path, sync):
    project, truth = make_project(tmp_path)
    app = create_app(project, annotator="ana", port=8765, sync=sync)
    client = TestClient(app, base_url=BASE)
    state = wait_for(lambda: client.get("/api/state").json()["batch"], what="first batch")
    assert state["round"] == 0
    return project, client, truth


@pytest.fixture
def served(tmp_path):
    """(project, client, truth) with the first (random) batch open; the next is chosen ahead."""
    return _serve(tmp_path, sync=False)


@pytest.fixture
def served_sync(tmp_path):
    """The same, served with ``sync=True``: each batch after a submit from the retrained model."""
    return _serve(tmp_path, sync=True)


def _labels_bytes(project):
    path = project.path / "labels.jsonl"
    return path.read_bytes() if path.exists() else b""


def _answer_all(client, project, truth, skip=()):
    state = client.get("/api/state").json()
    answers = [{"id": it["id"], "skip": True} if it["id"] in skip else
               {"id": it["id"], "label": truth[it["file"]], "seconds": 1.5}
               for it in state["batch"]["items"]]
    r = client.post("/api/answers", json={"round": state["batch"]["round"], "answers": answers},
                    headers=ORIGIN)
    assert r.status_code == 200, r.text
    return state


def _settled(client):
    """The state once the worker is idle with the next batch chosen (the person still labels)."""
    return wait_for(lambda: (s := client.get("/api/state").json())["next_batch"]
                    and s["worker"]["stage"] == "idle" and s, what="the next batch chosen ahead")


def test_state_and_first_batch(served):
    project, client, _ = served
    state = _settled(client)
    batch = state["batch"]
    assert state["classes"] == CLASSES and state["annotator"] == "ana"
    assert batch["method"] == "random" and batch["score_name"] == "chance of being drawn"
    assert len(batch["items"]) == 6 and batch["unanswered"] == 6
    # A uniform draw: every remaining image had the same chance, so each pick ranks 1.
    assert [it["rank"] for it in batch["items"]] == [1] * 6
    assert [it["score"] for it in batch["items"]] == [1 / (40 - j) for j in range(6)]
    assert all("guess" not in it for it in batch["items"])  # off by default
    assert state["counts"]["per_class"] == {"dark": 0, "bright": 0}
    assert state["worker"]["stage"] == "idle" and state["model_version"] == 0
    assert state["stopping"] is None  # no model yet
    page = client.get("/")
    assert page.status_code == 200 and "skal label" in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").headers["content-type"].startswith("text/javascript")


def test_image_by_id(served):
    project, client, _ = served
    item = 5
    r = client.get(f"/api/items/{item}/image")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    shown = np.asarray(Image.open(io.BytesIO(r.content)))
    original = np.asarray(Image.open(project.path.parent / "images" / project.files[item]))
    np.testing.assert_array_equal(shown, original)
    assert client.get("/api/items/40/image").status_code == 404
    assert "no item with id 40" in client.get("/api/items/40/image").json()["detail"]
    assert client.get("/api/items/-1/image").status_code == 404
    assert client.get("/api/items/..%2Fproject.json/image").status_code in (404, 422)
    assert client.get("/static/..%2F..%2Fproject.json").status_code == 404
    assert client.get("/static/index.py").status_code == 404


def test_answers_are_durable_with_provenance(served):
    project, client, truth = served
    batch = client.get("/api/state").json()["batch"]
    first = batch["items"][0]
    r = client.post("/api/answers", headers=ORIGIN, json={"round": 0, "answers": [
        {"id": first["id"], "label": "bright", "seconds": 2.25, "guess_shown": False}]})
    assert r.status_code == 200, r.text
    assert r.json()["unanswered"] == 5 and r.json()["counts"]["per_class"]["bright"] == 1
    record = json.loads(_labels_bytes(project).decode().splitlines()[-1])
    assert record["id"] == first["id"] and record["label"] == "bright"
    assert record["file"] == first["file"] and record["sha256"] == project.sha256[first["id"]]
    assert record["annotator"] == "ana" and record["seconds"] == 2.25
    assert record["round"] == 0 and record["model_version"] == 0
    assert record["guess_shown"] is False and record["source"] == "page" and record["time"]
    # Edit, skip, then clear (undo): each is recorded, the last one counts.
    for answer in ({"label": "dark"}, {"skip": True}, {}):
        r = client.post("/api/answers", headers=ORIGIN,
                        json={"round": 0, "answers": [{"id": first["id"], **answer}]})
        assert r.status_code == 200
    state = client.get("/api/state").json()
    assert state["batch"]["items"][0]["label"] is None
    assert state["batch"]["items"][0]["skipped"] is False
    assert len(_labels_bytes(project).decode().splitlines()) == 4


@pytest.mark.parametrize("answers, status, message", [
    ([{"id": "FIRST", "label": "cat"}], 400, "'cat' is not one of the project's classes"),
    ([{"id": 999, "label": "dark"}], 404, "no item with id 999"),
    ([{"id": "FIRST", "label": "dark"}, {"id": "FIRST", "label": "bright"}], 400,
     "answered twice in one request"),
    ([{"id": "OUTSIDE", "label": "dark"}], 409, "not in the open batch"),
    ([{"id": "FIRST", "label": "dark", "skip": True}], 400, "not both"),
    ([{"id": "FIRST", "label": "dark", "seconds": -1}], 422, "greater than or equal"),
    ([], 422, "at least 1"),
])
def test_bad_answers_write_nothing(served, answers, status, message):
    project, client, _ = served
    batch = client.get("/api/state").json()["batch"]
    first = batch["items"][0]["id"]
    outside = next(i for i in range(project.n_items) if i not in [it["id"] for it in batch["items"]])
    good = {"id": batch["items"][1]["id"], "label": "dark"}
    body = [good] + [dict(a, id={"FIRST": first, "OUTSIDE": outside}.get(a["id"], a["id"]))
                     for a in answers] if answers else []
    before = _labels_bytes(project)
    r = client.post("/api/answers", json={"round": 0, "answers": body}, headers=ORIGIN)
    assert r.status_code == status
    assert message in json.dumps(r.json()["detail"])
    assert _labels_bytes(project) == before  # nothing written, not even the good answer
    assert project.label_of(good["id"]) is None


def test_stale_round_and_submit_errors(served):
    project, client, truth = served
    r = client.post("/api/answers", headers=ORIGIN,
                    json={"round": 3, "answers": [{"id": 0, "label": "dark"}]})
    assert r.status_code == 409 and "round 3 is over" in r.json()["detail"]
    r = client.post("/api/submit", json={"round": 0}, headers=ORIGIN)
    assert r.status_code == 409 and "6 item(s) of the batch have no answer" in r.json()["detail"]
    r = client.post("/api/submit", json={"round": 1}, headers=ORIGIN)
    assert r.status_code == 409
    r = client.post("/api/submit", json={}, headers=ORIGIN)
    assert r.status_code == 422


def test_submit_retrains_and_next_batch_explains_picks(served_sync):
    project, client, truth = served_sync
    state = client.get("/api/state").json()
    skipped = state["batch"]["items"][0]["id"]
    _answer_all(client, project, truth, skip={skipped})
    assert client.get("/api/curve.svg").status_code == 404  # not trained yet
    r = client.post("/api/submit", json={"round": 0}, headers=ORIGIN)
    assert r.status_code == 202 and r.json()["submitted"] == 0
    # No batch is open while the model trains: answers are refused.
    r = client.post("/api/answers", headers=ORIGIN,
                    json={"round": 0, "answers": [{"id": skipped, "label": "dark"}]})
    assert r.status_code == 409
    state = wait_for(lambda: (s := client.get("/api/state").json())["batch"] and s, what="batch 1")
    batch = state["batch"]
    assert batch["round"] == 1 and batch["method"] == "badge"
    assert batch["score_name"] == "squared gradient distance" and batch["pool_size"] == 40 - 6
    assert state["model_version"] == 1 and batch["model_version"] == 1
    ranks = [it["rank"] for it in batch["items"]]
    assert all(1 <= r <= 34 for r in ranks) and 1 in ranks  # BADGE's first pick: the largest
    assert all(isinstance(it["score"], float) for it in batch["items"])
    assert skipped not in [it["id"] for it in batch["items"]]  # not re-queried at once
    assert project.model_meta["n_train"] == len(project.labeled_ids(holdout=False))
    # The stopping verdict is the one stored with the model when it was trained.
    stored = Project(project.path).model_meta["stopping"]
    assert state["stopping"] == stored and stored["n_models"] == 1
    assert stored["sentence"] == ("stop-set agreement needs 3 models (1 so far); the forecast "
                                  "needs 3 evaluated models (0 so far)")
    svg = client.get("/api/curve.svg")
    assert svg.status_code == 200 and svg.headers["content-type"] == "image/svg+xml"
    assert b"<svg" in svg.content


def test_next_batch_is_chosen_ahead_and_opens_at_submit(served):
    from skal.label.loop import _snapshot

    project, client, truth = served
    state = _settled(client)
    assert state["sync"] is False
    assert state["next_batch"] == {"round": 1, "model_version": 0}  # no model yet: random
    first = [it["id"] for it in state["batch"]["items"]]
    ahead = list(project.next_batch()["ids"])
    assert len(ahead) == 6 and not set(ahead) & set(first)
    _answer_all(client, project, truth)
    r = client.post("/api/submit", json={"round": 0}, headers=ORIGIN)
    assert r.status_code == 202 and r.json()["open"] == 1  # open at once: no waiting
    state = client.get("/api/state").json()
    batch = state["batch"]
    assert batch["round"] == 1 and [it["id"] for it in batch["items"]] == ahead
    assert batch["model_version"] == 0 and batch["method"] == "random"
    # The page can answer it at once, while the model catches up on batch 0.
    r = client.post("/api/answers", headers=ORIGIN, json={"round": 1, "answers": [
        {"id": ahead[0], "label": truth[project.files[ahead[0]]]}]})
    assert r.status_code == 200
    state = _settled(client)
    # Model 1 learned batch 0 (not the answer just given: batch 1 is open) and chose batch 2.
    assert state["model_version"] == 1 and state["next_batch"] == {"round": 2, "model_version": 1}
    trained = [i for i in first if not project.holdout[i]]
    assert project.model_meta["n_train"] == len(trained)
    assert project.model_meta["train_digest"] == project.training_digest(sorted(trained))
    chosen = project.next_batch()
    assert chosen["method"] == "badge" and not set(chosen["ids"]) & set(ahead + first)
    _answer_all(client, project, truth)
    assert client.post("/api/submit", json={"round": 1}, headers=ORIGIN).json()["open"] == 2
    batch = client.get("/api/state").json()["batch"]
    assert [it["id"] for it in batch["items"]] == chosen["ids"]
    assert batch["model_version"] == 1 and all(isinstance(it["score"], float)
                                               for it in batch["items"])
    state = _settled(client)
    assert state["model_version"] == 2 and state["next_batch"]["model_version"] == 2
    assert len(_snapshot(project)["ids"]) == len([i for i in first + ahead
                                                  if not project.holdout[i]])


def test_guess_is_optional_and_recorded(served_sync):
    project, client, truth = served_sync
    _answer_all(client, project, truth)
    client.post("/api/submit", json={"round": 0}, headers=ORIGIN)
    wait_for(lambda: client.get("/api/state").json()["batch"], what="batch 1")
    plain = client.get("/api/state").json()["batch"]["items"]
    assert all("guess" not in it for it in plain)
    items = client.get("/api/state?guesses=1").json()["batch"]["items"]
    assert all(it["guess"] in CLASSES and 0.5 <= it["confidence"] <= 1 for it in items)
    r = client.post("/api/answers", headers=ORIGIN, json={"round": 1, "answers": [
        {"id": items[0]["id"], "label": "dark", "guess_shown": True},
        {"id": items[1]["id"], "label": "dark", "guess_shown": False}]})
    assert r.status_code == 200
    shown, hidden = (project.answers[items[0]["id"]], project.answers[items[1]["id"]])
    assert shown["guess_shown"] is True and shown["guess"] == items[0]["guess"]
    assert hidden["guess_shown"] is False and hidden["guess"] is None
    assert shown["model_version"] == 1 and shown["round"] == 1


def test_export_csv_and_jsonl(served):
    project, client, truth = served
    _answer_all(client, project, truth)
    csv_text = client.get("/api/export.csv")
    assert csv_text.headers["content-disposition"].endswith('filename="labels.csv"')
    lines = csv_text.text.splitlines()
    assert lines[0].startswith("id,file,sha256,label,skipped,holdout,annotator,time,seconds")
    assert len(lines) == 7
    rows = [json.loads(line) for line in client.get("/api/export.jsonl").text.splitlines()]
    assert len(rows) == 6 and all(r["label"] == truth[r["file"]] for r in rows)
    assert all(r["annotator"] == "ana" and r["seconds"] == 1.5 for r in rows)


def test_host_origin_and_token_checks(tmp_path):
    project, _ = make_project(tmp_path)
    app = create_app(project, annotator="ana", port=8765, token="secret", start_worker=False)
    client = TestClient(app, base_url=BASE)
    assert client.get("/api/state").status_code == 200  # loopback: reads need no token
    for host in ("evil.example:8765", "127.0.0.1:9999", "", "127.0.0.1:x"):
        r = client.get("/api/state", headers={"Host": host})
        assert r.status_code == 403, host
    assert "not this server's" in client.get("/", headers={"Host": "evil.example"}).text
    assert client.get("/", headers={"Host": "localhost:8765"}).status_code == 200
    body = {"round": 0, "answers": [{"id": 0, "label": "dark"}]}
    r = client.post("/api/answers", json=body)  # no Origin, no token
    assert r.status_code == 403 and "same-origin" in r.text
    r = client.post("/api/answers", json=body, headers={"Origin": "http://evil.example"})
    assert r.status_code == 403
    r = client.post("/api/answers", json=body, headers={"X-Skal-Token": "wrong"})
    assert r.status_code == 403
    # The right token passes the guard (409: this server's worker never queried a batch).
    r = client.post("/api/answers", json=body, headers={"X-Skal-Token": "secret"})
    assert r.status_code == 409 and "no batch is open" in r.json()["detail"]


def test_non_loopback_needs_token(tmp_path):
    project, _ = make_project(tmp_path)
    app = create_app(project, annotator="ana", host="10.1.2.3", port=8765, token="secret",
                     start_worker=False)
    client = TestClient(app, base_url="http://10.1.2.3:8765")
    r = client.get("/api/state")
    assert r.status_code == 403 and "?token=" in r.text
    assert client.get("/api/items/0/image").status_code == 403
    assert client.get("/api/state", headers={"Host": "127.0.0.1:8765"}).status_code == 403
    r = client.get("/?token=secret")
    assert r.status_code == 200
    assert "skal_token_8765=secret" in r.headers["set-cookie"]
    assert "samesite=strict" in r.headers["set-cookie"].lower()
    assert client.get("/api/state").status_code == 200  # the cookie now
    client.cookies.clear()
    assert client.get("/api/state", headers={"X-Skal-Token": "secret"}).status_code == 200
    assert client.get("/api/state?token=nope").status_code == 403


def test_two_tabs_writing_at_once_keep_the_log_whole(served):
    project, client, _ = served
    ids = [it["id"] for it in client.get("/api/state").json()["batch"]["items"]]
    errors = []

    def tab(k):
        try:
            own = TestClient(client.app, base_url=BASE)
            for j in range(8):
                r = own.post("/api/answers", headers=ORIGIN, json={"round": 0, "answers": [
                    {"id": i, "label": CLASSES[(j + k) % 2]} for i in ids]})
                assert r.status_code == 200, r.text
        except Exception as exc:  # reported in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=tab, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    lines = _labels_bytes(project).decode().splitlines()
    assert len(lines) == 3 * 8 * len(ids)
    records = [json.loads(line) for line in lines]  # every line whole
    # Each request's records are contiguous: writes did not interleave.
    for start in range(0, len(records), len(ids)):
        assert len({r["label"] for r in records[start:start + len(ids)]}) == 1
    assert client.get("/api/state").json()["batch"]["unanswered"] == 0


def test_server_answers_while_the_model_trains(tmp_path):
    project, truth = make_project(tmp_path, n=60, epochs=150)
    client = TestClient(create_app(project, annotator="ana", port=8765, sync=True),
                        base_url=BASE)
    wait_for(lambda: client.get("/api/state").json()["batch"], what="first batch")
    _answer_all(client, project, truth)
    client.post("/api/submit", json={"round": 0}, headers=ORIGIN)
    # The page keeps getting answers (state, images) while the model trains. How
    # fast they come is measured, not asserted (a shared machine's load decides):
    # benchmarks/label_latency.py polls /api/state during training and reports it.
    answers, stages = 0, set()
    while True:
        state = client.get("/api/state").json()
        answers += 1
        stages.add(state["worker"]["stage"])
        if state["batch"]:
            break
        assert client.get("/api/items/0/image").status_code == 200
        time.sleep(0.05)
    assert "training" in stages and answers >= 5


def test_a_failed_retraining_is_shown_and_can_be_retried(tmp_path, monkeypatch):
    from skal.label import worker as worker_module

    project, truth = make_project(tmp_path)
    client = TestClient(create_app(project, annotator="ana", port=8765, sync=True),
                        base_url=BASE)
    wait_for(lambda: client.get("/api/state").json()["batch"], what="first batch")
    r = client.post("/api/retry", headers=ORIGIN)
    assert r.status_code == 409 and "nothing failed" in r.json()["detail"]
    _answer_all(client, project, truth)
    real_advance = worker_module.advance

    def failing(project, progress=None, ahead=False):
        raise MemoryError("out of memory while training")

    monkeypatch.setattr(worker_module, "advance", failing)
    client.post("/api/submit", json={"round": 0}, headers=ORIGIN)
    state = wait_for(lambda: (s := client.get("/api/state").json())["worker"]["stage"] == "error"
                     and s, what="the error")
    assert state["worker"]["message"] == "MemoryError: out of memory while training"
    assert state["batch"] is None and state["counts"]["labeled"] == 6  # labels untouched
    monkeypatch.setattr(worker_module, "advance", real_advance)
    assert client.post("/api/retry", headers=ORIGIN).status_code == 202
    state = wait_for(lambda: (s := client.get("/api/state").json())["batch"] and s, what="batch 1")
    assert state["batch"]["round"] == 1 and state["worker"]["stage"] == "idle"


def test_favicon_is_a_small_png(served):
    _, client, _ = served
    r = client.get("/favicon.ico")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(r.content)).size == (32, 32)


@pytest.mark.parametrize("seconds", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_seconds_are_refused_and_write_nothing(served, seconds):
    project, client, _ = served
    first = client.get("/api/state").json()["batch"]["items"][0]["id"]
    before = _labels_bytes(project)
    # Python's json (which the server parses with) reads NaN and Infinity; send them raw.
    body = f'{{"round": 0, "answers": [{{"id": {first}, "label": "dark", "seconds": {seconds}}}]}}'
    r = client.post("/api/answers", content=body,
                    headers={**ORIGIN, "Content-Type": "application/json"})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "answers", 0, "seconds"]
    assert "finite" in r.json()["detail"][0]["msg"]
    assert _labels_bytes(project) == before and project.label_of(first) is None


def test_review_and_correct_submitted_labels(served):
    from skal.label.loop import needs_training

    project, client, truth = served
    first = _answer_all(client, project, truth)["batch"]["items"]
    assert client.get("/api/labeled").json() == {"total": 0, "offset": 0, "items": []}
    client.post("/api/submit", json={"round": 0}, headers=ORIGIN)
    state = wait_for(lambda: (s := client.get("/api/state").json())["batch"] and s, what="batch 1")
    review = client.get("/api/labeled").json()
    # Newest first: the batch's answers were written in item order, in one request.
    assert review["total"] == 6
    assert [it["id"] for it in review["items"]] == [it["id"] for it in reversed(first)]
    row = review["items"][0]
    assert row == {"id": first[-1]["id"], "file": first[-1]["file"],
                   "label": truth[first[-1]["file"]], "skipped": False, "round": 0,
                   "annotator": "ana", "time": row["time"], "source": "page"}
    page = client.get("/api/labeled?offset=2&limit=3").json()
    assert page["total"] == 6 and [it["id"] for it in page["items"]] == \
        [it["id"] for it in reversed(first)][2:5]
    assert client.get("/api/labeled?limit=0").status_code == 422

    target = first[2]
    old = truth[target["file"]]
    new = next(c for c in CLASSES if c != old)
    digest_before = project.training_digest(project.labeled_ids(holdout=False))
    r = client.post("/api/correct", json={"id": target["id"], "label": new}, headers=ORIGIN)
    assert r.status_code == 200, r.text
    assert r.json()["corrected"]["label"] == new
    record = json.loads(_labels_bytes(project).decode().splitlines()[-1])
    assert record["id"] == target["id"] and record["label"] == new
    assert record["source"] == "correction" and record["annotator"] == "ana"
    assert record["previous"]["label"] == old and record["previous"]["round"] == 0
    assert record["previous"]["source"] == "page"
    review = client.get("/api/labeled").json()
    assert review["total"] == 6 and review["items"][0]["id"] == target["id"]
    assert review["items"][0]["label"] == new
    # The corrected label is new training data.
    assert project.training_digest(project.labeled_ids(holdout=False)) != digest_before \
        or bool(project.holdout[target["id"]])
    assert needs_training(project) != bool(project.holdout[target["id"]])

    open_item = state["batch"]["items"][0]["id"]
    never = next(i for i in range(project.n_items) if i not in project.answers
                 and i not in [it["id"] for it in state["batch"]["items"]])
    before = _labels_bytes(project)
    for body, status, message in [
            ({"id": 999, "label": "dark"}, 404, "no item with id 999"),
            ({"id": open_item, "label": "dark"}, 409, "is in the open batch"),
            ({"id": never, "label": "dark"}, 409, "no submitted answer"),
            ({"id": target["id"], "label": "cat"}, 400, "'cat' is not one of the project's"),
            ({"id": target["id"], "label": new}, 409, "already labeled"),
            ({"id": target["id"]}, 422, "Field required")]:
        r = client.post("/api/correct", json=body, headers=ORIGIN)
        assert r.status_code == status and message in json.dumps(r.json()["detail"]), body
    assert _labels_bytes(project) == before


def test_state_passes_sentences_and_worker_eta(served):
    from skal.label.server import Worker

    project, client, _ = served
    state = _settled(client)
    assert state["worker"] == {"stage": "idle", "fraction": None, "eta_seconds": None,
                               "message": None}
    with project.lock:  # each item's sentence and "of" are the batch record's, read as stored
        batch = project.open_batch()
        assert [it["sentence"] for it in state["batch"]["items"]] == batch["sentences"]
        assert [it["of"] for it in state["batch"]["items"]] == batch["of"]
        batch["sentences"] = [f"picked because {i}" for i in batch["ids"]]
    items = client.get("/api/state").json()["batch"]["items"]
    assert [it["sentence"] for it in items] == [f"picked because {it['id']}" for it in items]

    worker = Worker(project)
    worker._progress("training", 0.0)
    assert worker.status()["eta_seconds"] is None  # no pace yet
    worker._progress("training", 0.25)
    worker._status["start"] = worker._status["reported"] - 3.0  # a quarter took 3 s
    status = worker.status()
    assert status["fraction"] == 0.25 and 8.5 <= status["eta_seconds"] <= 9.0


def test_own_address_is_accepted_off_loopback_and_foreign_names_are_not(tmp_path, monkeypatch):
    from skal.label import access

    project, _ = make_project(tmp_path)
    app = create_app(project, annotator="ana", host="0.0.0.0", port=8765, token="secret",
                     start_worker=False)
    # TestClient's base URL is the address the request arrives on (the ASGI "server").
    client = TestClient(app, base_url="http://10.9.8.7:8765")
    assert client.get("/api/state").status_code == 403  # the token still guards
    assert client.get("/api/state?token=secret").status_code == 200
    client.cookies.clear()
    for host in ("evil.example:8765", "10.9.8.6:8765", "10.9.8.7:8766"):
        r = client.get("/api/state?token=secret", headers={"Host": host})
        assert r.status_code == 403 and "not this server's" in r.text, host
    # Every URL printed for a wildcard bind passes the guard.
    for url in access.server_urls("0.0.0.0", 8765, "secret"):
        host = url.split("//")[1].split("/")[0]
        r = TestClient(app, base_url=f"http://{host}").get(url[len(f'http://{host}'):])
        assert r.status_code == 200, url
    monkeypatch.setattr(access, "machine_names", lambda: ["box", "10.0.0.5"])
    assert access.server_urls("0.0.0.0", 8765, "t") == [
        "http://box:8765/?token=t", "http://10.0.0.5:8765/?token=t",
        "http://127.0.0.1:8765/?token=t"]
    assert access.server_urls("127.0.0.1", 8765, "t") == ["http://127.0.0.1:8765/"]
    assert access.server_urls("10.1.2.3", 8765, "t", ["lab.example"]) == [
        "http://10.1.2.3:8765/?token=t", "http://lab.example:8765/?token=t"]
