"""Make docs/label-page.png: the labeling page on BreastMNIST, in headless Chromium.

A project on BreastMNIST's training split gets a few rounds of labels from
the split's own labels (standing in for a person, so that the page has a
model, scores, guesses and a learning curve to show), is served, and a few
tiles of the open batch are labeled with the keyboard before the screenshot.

Usage::

    MEDMNIST_ROOT=... python docs/make_label_screenshot.py [--out docs/label-page.png]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from skal.data import load_medmnist  # noqa: E402
from skal.label.loop import advance  # noqa: E402
from skal.label.project import create_project  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "label-page.png")
    parser.add_argument("--port", type=int, default=8793)
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    _, y = load_medmnist("breastmnist", "train")
    with tempfile.TemporaryDirectory() as tmp:
        project, _ = create_project(Path(tmp) / "breast-demo", medmnist="breastmnist",
                                    batch=12, epochs=10, method="entropy")
        truth = {f: project.classes[int(y[i])] for i, f in enumerate(project.files)}
        rng = np.random.default_rng(0)
        start = rng.choice(project.n_items, 200, replace=False)
        project.teach({project.files[i]: truth[project.files[i]] for i in start}, "radiologist")
        for _ in range(3):  # a few rounds of labels, as a person would have given them
            batch = advance(project)
            project.record_answers([{"id": i, "label": truth[project.files[i]], "seconds": 2.0}
                                    for i in batch["ids"]], "radiologist")
            project.submit(batch["round"], "radiologist")
        advance(project)
        path = project.path
        del project
        env = dict(os.environ, PYTHONPATH=str(REPO))
        server = subprocess.Popen([sys.executable, "-m", "skal.label", "serve", str(path),
                                   "--port", str(args.port), "--annotator", "radiologist"],
                                  env=env, stdout=subprocess.DEVNULL)
        try:
            for _ in range(200):
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{args.port}/api/state", timeout=2)
                    break
                except OSError:
                    time.sleep(0.2)
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=shutil.which("chromium") or shutil.which("chromium-browser"),
                    args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1360, "height": 900})
                page.goto(f"http://127.0.0.1:{args.port}/")
                page.wait_for_selector(".tile >> nth=11")
                page.locator("#zoom").fill("176")
                page.locator("#brightness").fill("1.15")
                page.locator("#contrast").fill("1.3")
                page.locator("#show-guess").check()
                page.locator(".tile").first.click()
                classes = ["malignant", "normal, benign"]
                for k in range(5):
                    file = page.locator(".tile").nth(k).get_attribute("title")
                    page.keyboard.press(str(classes.index(truth[file]) + 1))
                page.keyboard.press("0")
                page.keyboard.press("ArrowRight")
                page.keyboard.press("Shift+ArrowRight")
                expect(page.locator(".saved.ok")).to_have_count(12)
                page.wait_for_timeout(500)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out), full_page=True)
                browser.close()
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
