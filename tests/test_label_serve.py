"""``skal label serve`` killed with SIGKILL: every saved label, the batch and the model survive."""

import json
import signal
import time
import urllib.request

import pytest

pytest.importorskip("uvicorn")

from label_support import (free_port, get_json, make_project, post_json,  # noqa: E402
                           start_server, wait_for, wait_for_batch)
from skal.label.project import Project  # noqa: E402


def _kill(server):
    server.send_signal(signal.SIGKILL)
    server.wait(timeout=10)
    assert server.returncode == -signal.SIGKILL


def _saved(project_path):
    lines = (project_path / "labels.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX-only")
def test_sigkill_mid_batch_keeps_labels_batch_and_model(tmp_path):
    """The synchronous mode (``serve --sync``): killed labeling, idle, and training."""
    project, truth = make_project(tmp_path)
    path, port = project.path, free_port()
    del project  # the server owns the project from here
    server = start_server(path, port, "--sync")
    try:
        state = wait_for_batch(port, 0)
        items = state["batch"]["items"]
        # Three answers saved (the reply came), then SIGKILL in the middle of the batch.
        for item in items[:3]:
            status, _ = post_json(port, "/api/answers", {"round": 0, "answers": [
                {"id": item["id"], "label": truth[item["file"]], "seconds": 1.0}]})
            assert status == 200
        _kill(server)
        assert [r["id"] for r in _saved(path)] == [it["id"] for it in items[:3]]

        server = start_server(path, port, "--sync")
        state = wait_for_batch(port, 0)
        resumed = state["batch"]["items"]
        assert [it["id"] for it in resumed] == [it["id"] for it in items]  # the same batch
        assert [it["label"] for it in resumed[:3]] == [truth[it["file"]] for it in items[:3]]
        assert all(it["label"] is None for it in resumed[3:])
        for item in resumed[3:]:
            status, _ = post_json(port, "/api/answers", {"round": 0, "answers": [
                {"id": item["id"], "label": truth[item["file"]]}]})
            assert status == 200
        assert post_json(port, "/api/submit", {"round": 0})[0] == 202
        state = wait_for_batch(port, 1)
        assert state["model_version"] == 1
        weights = path / "model" / "v0001.pt"
        mtime = weights.stat().st_mtime_ns

        # Kill again mid-batch 1: the restarted server loads model 1, no retraining.
        first = state["batch"]["items"][0]
        assert post_json(port, "/api/answers", {"round": 1, "answers": [
            {"id": first["id"], "skip": True}]})[0] == 200
        _kill(server)
        server = start_server(path, port, "--sync")
        state = wait_for_batch(port, 1)
        assert state["model_version"] == 1 and state["worker"]["stage"] == "idle"
        assert weights.stat().st_mtime_ns == mtime
        assert state["batch"]["items"][0]["skipped"] is True
        assert [it["id"] for it in state["batch"]["items"]] == \
            [it["id"] for it in wait_for_batch(port, 1)["batch"]["items"]]

        # Kill during training: the restart trains again and queries the next batch.
        for item in state["batch"]["items"][1:]:
            assert post_json(port, "/api/answers", {"round": 1, "answers": [
                {"id": item["id"], "label": truth[item["file"]]}]})[0] == 200
        assert post_json(port, "/api/submit", {"round": 1})[0] == 202
        _kill(server)
        server = start_server(path, port, "--sync")
        state = wait_for_batch(port, 2)
        assert state["model_version"] == 2 and state["submitted_rounds"] == 2
        assert len(_saved(path)) == 3 + 3 + 1 + 5  # every answer given, none lost
        assert state["counts"]["labeled"] == 11 and state["counts"]["skipped"] == 1
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=10)


def _check_files(path, given):
    """After a kill: every answer whose reply came is on disk, and no image is in two batches."""
    answers = {r["id"]: r["label"] for r in _saved(path)}
    assert {i: answers.get(i) for i in given} == given
    project = Project(path)
    picked = [i for b in project.batches for i in b["ids"]]
    assert len(picked) == len(set(picked))  # nothing is skipped here, so nothing is re-queried
    assert len(project.unsubmitted_batches()) <= 2
    return project


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="SIGKILL is POSIX-only")
def test_sigkill_at_any_moment_of_the_background_work_loses_nothing(tmp_path):
    """The default mode: killed while labeling, right after a submit, training, choosing ahead."""
    project, truth = make_project(tmp_path, n=80, epochs=3)
    path, port = project.path, free_port()
    del project
    given = {}  # id -> label of every answer the server acknowledged
    server = start_server(path, port)
    try:
        # Killed mid-batch (the next batch may be being chosen): same batch, same answers.
        state = wait_for_batch(port, 0)
        items = state["batch"]["items"]
        for item in items[:2]:
            assert post_json(port, "/api/answers", {"round": 0, "answers": [
                {"id": item["id"], "label": truth[item["file"]]}]})[0] == 200
            given[item["id"]] = truth[item["file"]]
        _kill(server)
        _check_files(path, given)
        server = start_server(path, port)
        assert [it["id"] for it in wait_for_batch(port, 0)["batch"]["items"]] == \
            [it["id"] for it in items]
        # Killed at several moments after a submit: training, choosing ahead, or idle.
        for round_, delay in enumerate((0.0, 0.3, 1.0, 2.5)):
            state = wait_for_batch(port, round_)
            ahead = state["next_batch"]
            answers = [{"id": it["id"], "label": truth[it["file"]]}
                       for it in state["batch"]["items"] if it["label"] is None]
            assert post_json(port, "/api/answers", {"round": round_, "answers": answers})[0] \
                == 200
            given.update((a["id"], a["label"]) for a in answers)
            status, reply = post_json(port, "/api/submit", {"round": round_})
            assert status == 202
            if ahead is not None:  # chosen ahead: open at once
                assert reply["open"] == round_ + 1
            time.sleep(delay)
            _kill(server)
            project = _check_files(path, given)
            assert project.submitted_rounds == round_ + 1
            server = start_server(path, port)
        state = wait_for_batch(port, 4)
        assert state["counts"]["labeled"] == len(given) == 6 * 4
    finally:
        if server.poll() is None:
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=10)


def test_serve_prints_its_url_and_holds_the_project(tmp_path):
    project, _ = make_project(tmp_path)
    port = free_port()
    server = start_server(project.path, port)
    try:
        line = server.stdout.readline()
        assert f"at http://127.0.0.1:{port}/" in line and "token" not in line
        wait_for(lambda: get_json(port, "/api/state"), what="server")
        second = start_server(project.path, free_port())
        out, _ = second.communicate(timeout=60)
        assert second.returncode == 2 and "open in another process" in out
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)


def test_serve_on_another_address_prints_a_token(tmp_path):
    project, _ = make_project(tmp_path)
    port = free_port()
    server = start_server(project.path, port, "--host", "0.0.0.0")
    try:
        line = server.stdout.readline()
        assert f":{port}/?token=" in line
        token = line.split("?token=")[1].split()[0]
        urls = [line.split(" at ")[1].split()[0]]
        while f"127.0.0.1:{port}" not in urls[-1]:  # loopback is listed last
            urls.append(server.stdout.readline().split("also at ")[1].strip())
        assert all(url.endswith(f":{port}/?token={token}") for url in urls)
        wait_for(lambda: get_json(port, f"/api/state?token={token}"), what="server")
        with pytest.raises(Exception, match="403"):
            get_json(port, "/api/state")
        # Every printed URL's host name passes the server's Host check.
        for url in urls:
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/api/state?token={token}",
                headers={"Host": url.split("//")[1].split("/")[0]})
            with urllib.request.urlopen(request, timeout=5) as r:
                assert r.status == 200, url
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait(timeout=10)
