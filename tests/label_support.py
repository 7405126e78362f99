"""Helpers shared by the tests of skal.label: a tiny image folder, a tiny project, a live server."""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
from PIL import Image

from skal.label.project import create_project

REPO = Path(__file__).resolve().parents[1]
CLASSES = ["dark", "bright"]


def make_image_folder(root, n=40, size=12, seed=0):
    """``n`` grayscale PNGs in two nested folders; 'bright' ones are much brighter.

    Returns
    -------
    folder : pathlib.Path
    truth : dict of str to str
        File name (relative, as the project stores it) to class name.
    """
    rng = np.random.default_rng(seed)
    folder = Path(root) / "images"
    truth = {}
    for i in range(n):
        cls = CLASSES[i % 2]
        pixels = rng.integers(0, 60, (size, size)) + (170 if cls == "bright" else 0)
        rel = f"{'a' if i < n // 2 else 'b/c'}/img{i:03d}.png"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / rel)
        truth[rel] = cls
    return folder, truth


def make_project(root, n=40, **settings):
    """A project on :func:`make_image_folder`'s images: batch 6, 1 epoch, 12x12."""
    folder, truth = make_image_folder(root, n=n)
    options = dict(size=12, batch=6, epochs=1, min_holdout=2, holdout=0.2, seed=0)
    options.update(settings)
    project, _ = create_project(Path(root) / "project", images=folder, classes=CLASSES, **options)
    return project, truth


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(project_path, port, *extra):
    """``python -m skal.label serve`` in a subprocess (its own process group)."""
    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-m", "skal.label", "serve", str(project_path), "--port", str(port),
         "--annotator", "tester", *extra],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def get_json(port, path, timeout=5):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as r:
        return json.loads(r.read())


def post_json(port, path, body, timeout=10):
    """POST as the page does (same-origin ``Origin``); returns (status, json)."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", "Origin": f"http://127.0.0.1:{port}"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_for(predicate, timeout=90, interval=0.2, what="condition"):
    """Poll ``predicate()`` until it returns a truthy value; return that value."""
    deadline = time.monotonic() + timeout
    last_error = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except (OSError, ValueError) as exc:  # server not up yet
            last_error = exc
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what} (last error: {last_error})")


def wait_for_batch(port, round_, timeout=120):
    """The state once batch ``round_`` is open."""
    def ready():
        state = get_json(port, "/api/state")
        return state if state["batch"] and state["batch"]["round"] == round_ else None

    return wait_for(ready, timeout, what=f"batch {round_}")
