"""The labeling page in a real headless Chromium, driven by keyboard and mouse.

Drives the operating system's Chromium (Debian's ``chromium``, installed by
``.ci/run``) with Playwright; nothing is downloaded. Under ``CI=true`` a
missing browser fails the test instead of skipping it.

Every check is a known answer: which tile (by id) holds the focus, which
label the project's ``labels.jsonl`` holds for which file, where the header's
and the first row's boxes lie.
"""

import json
import os
import re
import shutil
import signal
import time

import pytest

from label_support import (CLASSES, free_port, get_json, make_project, start_server, wait_for,
                           wait_for_batch)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: The worker's line on the page: stage, percentage, and the time left once known.
PROGRESS = re.compile(r"^(training|querying) \d{1,3}%"
                      r"( · about (\d+ s|\d+ min \d\d s|\d+ h \d\d min) left)?$")


def _browser_or_skip():
    in_ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if in_ci:
            raise
        pytest.skip("playwright is not installed (pip install -e '.[dev]')")
    if CHROMIUM is None:
        if in_ci:
            pytest.fail("CI=true but no chromium executable: .ci/run installs Debian's chromium")
        pytest.skip("no chromium executable (apt-get install chromium)")
    return sync_playwright


@pytest.fixture(scope="module")
def browser():
    sync_playwright = _browser_or_skip()
    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield chromium
        finally:
            chromium.close()


class Live:
    """A served project: its folder, port, the images' true classes and the server process."""

    def __init__(self, tmp_path, serve_args=(), **settings):
        self.project, self.truth = make_project(tmp_path, n=30, batch=4, **settings)
        self.serve_args = serve_args
        self.path = self.project.path
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.start()

    def start(self):
        self.server = start_server(self.path, self.port, *self.serve_args)
        wait_for_batch(self.port, self.project.round)

    def kill(self):
        self.server.send_signal(signal.SIGKILL)
        self.server.wait(timeout=10)

    def labels(self):
        """File name to its last record in labels.jsonl (what the project holds)."""
        path = self.path / "labels.jsonl"
        lines = path.read_text().splitlines() if path.exists() else []
        final = {}
        for record in map(json.loads, lines):
            final[record["file"]] = record
        return final

    def records_of(self, file):
        lines = (self.path / "labels.jsonl").read_text().splitlines()
        return [r for r in map(json.loads, lines) if r["file"] == file]


@pytest.fixture
def live(tmp_path):
    served = Live(tmp_path)
    try:
        yield served
    finally:
        served.kill()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.errors, page.failed = [], []
    page.on("pageerror", lambda exc: page.errors.append(str(exc)))
    page.on("response", lambda r: r.status >= 400 and page.failed.append(f"{r.status} {r.url}"))
    try:
        yield page
    finally:
        context.close()


def _open(page, live, n=4):
    page.goto(live.url)
    page.wait_for_selector(f".tile >> nth={n - 1}")
    return [page.locator(".tile").nth(k).get_attribute("title") for k in range(n)]


def _focused(page):
    """The data-index of the focused tile (exactly one tile has the focus)."""
    focused = page.locator(".tile.focused")
    assert focused.count() == 1
    return int(focused.get_attribute("data-index"))


def _digit(live, file, wrong=False):
    """The key that labels ``file`` with its true class (or the other class)."""
    k = CLASSES.index(live.truth[file])
    return str((1 - k if wrong else k) + 1)


def _wait_js(page, expression, arg=None, timeout=120, what="the page"):
    """Poll ``page.evaluate(expression, arg)`` until truthy.

    Not ``page.wait_for_function``: older Playwright (1.45, CI's lower bound) polls a string
    predicate through eval(), which the page's Content-Security-Policy (script-src 'self')
    refuses; ``evaluate`` goes through the DevTools protocol, which CSP does not govern.
    """
    return wait_for(lambda: page.evaluate(expression, arg), timeout=timeout, interval=0.05,
                    what=what)


def _wait_batch(page, round_, timeout=120):
    """Wait until the page shows the tiles of batch ``round_``."""
    _wait_js(page, "r => view.round === r && document.querySelectorAll('.tile').length > 0",
             round_, timeout=timeout, what=f"batch {round_} on the page")


def _wait_saved(page, n):
    from playwright.sync_api import expect

    expect(page.locator(".tile .saved.ok", has_text="saved ✓")).to_have_count(n)


def test_label_a_batch_in_chromium(live, page):
    from playwright.sync_api import expect

    files = _open(page, live)
    tiles = page.locator(".tile")
    assert "round 0" in page.locator("#round").inner_text()
    assert page.locator(".tile img").first.evaluate(
        "img => getComputedStyle(img).imageRendering") == "pixelated"

    # Label tiles 0-2 with digits (focus moves on by itself), tile 3 unsure/skip.
    for file in files[:3]:
        page.keyboard.press(_digit(live, file))
    assert _focused(page) == 3
    page.keyboard.press("0")
    _wait_saved(page, 4)
    answers = [tiles.nth(k).locator(".answer").inner_text() for k in range(4)]
    assert answers == [live.truth[f] for f in files[:3]] + ["unsure / skip"]
    # Brightness carries over to every tile.
    page.locator("#brightness").fill("1.5")
    assert page.locator(".tile img").nth(2).evaluate(
        "img => getComputedStyle(img).filter") == "brightness(1.5) contrast(1)"

    page.locator("#grid").focus()
    page.keyboard.press("Enter")
    _wait_batch(page, 1)
    assert "round 1" in page.locator("#round").inner_text()
    new_files = [tiles.nth(k).get_attribute("title") for k in range(4)]
    assert not set(new_files) & set(files)
    assert _focused(page) == 0  # a new batch: the first tile without an answer
    expect(page.locator("#message")).to_be_hidden()  # "Batch submitted…" went with the new batch
    # Batch 1 was chosen while batch 0 was labeled, before any model: a random draw. Once
    # the model trained on batch 0 has chosen batch 2, the tiles say why it picked them.
    first_why = page.locator(".tile .why").first
    assert first_why.locator(".sentence").inner_text() == "picked at random: there is no model yet"
    for file in new_files:
        page.keyboard.press(_digit(live, file))
    _wait_saved(page, 4)
    wait_for(lambda: (get_json(live.port, "/api/state")["next_batch"] or {}).get("model_version"),
             timeout=120, what="batch 2 chosen by a trained model")
    page.keyboard.press("Enter")
    _wait_batch(page, 2)
    assert "batch picked by model v1" in page.locator("#round").inner_text()
    # The strategy's plain-words sentence is the tile's text (the query's own utilities
    # worded by skal.label.why), and its number and rank are one click away.
    state = get_json(live.port, "/api/state")["batch"]
    why = page.locator(".tile .why").first
    assert why.locator(".sentence").inner_text() == state["items"][0]["sentence"]
    assert why.locator(".numbers").is_hidden()  # inside a closed <details>
    why.locator("summary").click()
    expect(why.locator(".numbers")).to_be_visible()
    assert re.fullmatch(r"\S.* · rank 1 of \d+", why.locator(".numbers").inner_text())
    # The stopping verdict stored with the model, in its own words.
    stopping = get_json(live.port, "/api/state")["stopping"]
    expect(page.locator("#stopping")).to_have_text(f"When to stop: {stopping['sentence']}.")
    assert page.errors == [] and page.failed == []

    final = live.labels()
    assert {f: final[f]["label"] for f in files[:3]} == {f: live.truth[f] for f in files[:3]}
    assert final[files[3]]["skipped"] is True and final[files[3]]["label"] is None
    assert all(r["annotator"] == "tester" and r["guess_shown"] is False for r in final.values())
    assert all(r["seconds"] is not None and r["seconds"] >= 0 for r in final.values())
    wait_for(lambda: (live.path / "model" / "model.json").exists(), what="model")


def test_a_key_never_silently_overwrites_a_saved_label(live, page):
    """Reload and restart focus the first unanswered tile; undo focuses the undone one;
    a digit on an answered tile changes it only when pressed twice."""
    from playwright.sync_api import expect

    files = _open(page, live)
    tiles = page.locator(".tile")
    assert _focused(page) == 0
    page.keyboard.press(_digit(live, files[0]))
    page.keyboard.press(_digit(live, files[1]))
    _wait_saved(page, 2)
    assert _focused(page) == 2

    # Reload: the focus is on tile 2, the first without an answer, not on tile 0.
    page.reload()
    page.wait_for_selector(".tile >> nth=3")
    assert _focused(page) == 2
    page.keyboard.press(_digit(live, files[2]))
    _wait_saved(page, 3)
    assert _focused(page) == 3
    # Undo: the answer goes and the focus is on the undone tile, so the next digit relabels it.
    page.keyboard.press("u")
    expect(tiles.nth(2).locator(".answer")).to_have_text("no answer")
    assert _focused(page) == 2
    wait_for(lambda: live.labels()[files[2]]["label"] is None, what="undo on disk")
    page.keyboard.press(_digit(live, files[2], wrong=True))
    _wait_saved(page, 3)
    other = CLASSES[1 - CLASSES.index(live.truth[files[2]])]
    assert live.labels()[files[2]]["label"] == other
    assert live.labels().get(files[3]) is None  # tile 3 untouched

    # A digit on an answered tile asks first: nothing is written until the same key again.
    tiles.nth(0).click()
    n_records = len(live.records_of(files[0]))
    wrong = _digit(live, files[0], wrong=True)
    page.keyboard.press(wrong)
    expect(tiles.nth(0)).to_have_class(re.compile(r"\bconfirming\b"))
    old, new = live.truth[files[0]], CLASSES[int(wrong) - 1]
    expect(tiles.nth(0).locator(".answer")).to_have_text(
        f"{old} → {new}? press “{wrong}” again")
    expect(page.locator("#message")).to_contain_text(f"Tile 1 is saved as “{old}”")
    page.keyboard.press("Escape")  # keeps it
    expect(tiles.nth(0).locator(".answer")).to_have_text(old)
    page.keyboard.press(wrong)
    page.keyboard.press(wrong)  # deliberate: the same key twice
    expect(tiles.nth(0).locator(".answer")).to_have_text(f"{new} (changed from {old})")
    wait_for(lambda: live.labels()[files[0]]["label"] == new, what="the change on disk")
    assert len(live.records_of(files[0])) == n_records + 1  # the old answer stays in the log
    assert _focused(page) == 3  # on to the next tile without an answer

    # Server restart (SIGKILL), then a reload: the focus is again on the first unanswered tile.
    live.kill()
    live.start()
    page.reload()
    page.wait_for_selector(".tile >> nth=3")
    assert _focused(page) == 3
    page.keyboard.press(_digit(live, files[3]))
    wait_for(lambda: files[3] in live.labels(), what="tile 3 on disk")
    final = live.labels()
    expected = [new, live.truth[files[1]], other, live.truth[files[3]]]
    assert [final[f]["label"] for f in files] == expected

    # Select all, then a class: the tiles it would change ask first; nothing is written.
    lines = (live.path / "labels.jsonl").read_text()
    page.keyboard.press("a")
    page.keyboard.press("1")
    changing = [k for k in range(4) if expected[k] != CLASSES[0]]
    assert changing  # the project's seed fixes the batch: some tiles are not "dark"
    expect(page.locator(".tile.confirming")).to_have_count(len(changing))
    assert [int(t.get_attribute("data-index")) for t in
            page.locator(".tile.confirming").all()] == changing
    expect(page.locator("#message")).to_contain_text(
        f"{len(changing)} of the selected tiles are saved as" if len(changing) > 1 else
        f"Tile {changing[0] + 1} is saved as")
    page.keyboard.press("Escape")
    expect(page.locator(".tile.confirming")).to_have_count(0)
    assert (live.path / "labels.jsonl").read_text() == lines
    assert page.errors == []


def test_enlarge_header_favicon_and_progress(tmp_path, page):
    """Enlarge (key and button, arrows, digits, Escape), the sticky header never over row 1,
    the favicon, and the worker's progress line."""
    from playwright.sync_api import expect

    live = Live(tmp_path, epochs=60)  # a training long enough to watch its progress
    try:
        page.set_viewport_size({"width": 1000, "height": 560})
        files = _open(page, live)
        tiles = page.locator(".tile")
        ids = [int(tiles.nth(k).get_attribute("data-id")) for k in range(4)]
        page.locator("#brightness").fill("1.5")
        page.locator("#grid").focus()

        # z opens tile 0 full size, with the grid's brightness/contrast, unsmoothed.
        page.keyboard.press("z")
        big = page.locator("#enlarged")
        expect(big).to_be_visible()
        assert int(big.get_attribute("data-id")) == ids[0]
        img = page.locator("#enlarged-img")
        expect(img).to_have_attribute("data-scale", re.compile(r"^\d+$"))
        natural, width, height, scale = img.evaluate(
            "i => [i.naturalWidth, i.getBoundingClientRect().width, "
            "i.getBoundingClientRect().height, Number(i.dataset.scale)]")
        assert natural == 12 and scale >= 10  # every image pixel a whole number of screen pixels
        assert (width, height) == (pytest.approx(12 * scale), pytest.approx(12 * scale))
        bar = page.locator(".enlarged-bar").bounding_box()
        assert img.bounding_box()["y"] >= bar["y"] + bar["height"] - 0.5  # all of it in view
        assert img.bounding_box()["y"] + height <= 560 + 0.5
        style = img.evaluate(
            "i => [getComputedStyle(i).imageRendering, getComputedStyle(i).filter]")
        assert style == ["pixelated", "brightness(1.5) contrast(1)"]
        # Arrows move on; a digit labels the tile shown and moves to the next unanswered one.
        page.keyboard.press("ArrowRight")
        assert int(big.get_attribute("data-id")) == ids[1]
        page.keyboard.press("ArrowLeft")
        page.keyboard.press("ArrowDown")
        assert int(big.get_attribute("data-id")) == ids[1]
        page.keyboard.press(_digit(live, files[1]))
        expect(big).to_have_attribute("data-id", str(ids[2]))
        wait_for(lambda: live.labels().get(files[1], {}).get("label") == live.truth[files[1]],
                 what="label from the enlarged view")
        page.keyboard.press("Escape")
        expect(big).to_be_hidden()
        assert _focused(page) == 2
        # The tile's ⤢ button opens that tile.
        tiles.nth(3).locator(".enlarge").click()
        expect(big).to_be_visible()
        assert int(big.get_attribute("data-id")) == ids[3]
        page.locator("#enlarged-close").click()
        expect(big).to_be_hidden()

        # The header never covers row 1: scrolled to the bottom, then back to tile 0 by keys.
        def header_clear():
            header = page.locator("header").bounding_box()
            bottom = header["y"] + header["height"]
            return (tiles.nth(0).bounding_box()["y"] >= bottom - 0.5,
                    page.locator("#brightness").bounding_box()["y"] >= bottom - 0.5)

        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        assert page.evaluate("window.scrollY") > 100  # the test's window does scroll
        assert _focused(page) == 3 and page.evaluate("columns()") == 3
        page.keyboard.press("ArrowUp")  # from row 2 (tile 3) up to tile 0, scrolled into view
        assert _focused(page) == 0
        assert header_clear()[0]
        header = page.locator("header").bounding_box()
        gap = tiles.nth(0).bounding_box()["y"] - (header["y"] + header["height"])
        assert 0 <= gap <= 8.5  # just below the header (app.css: its height + 8 px), not lower
        for k in (0, 2, 3):  # the focus moves on to the next unanswered tile by itself
            page.keyboard.press(_digit(live, files[k]))
        _wait_saved(page, 4)
        # No wait: the next batch was chosen while this one was labeled (a 60-epoch model
        # trains for seconds here), so it is on the page the moment the batch is submitted.
        ready = wait_for(lambda: get_json(live.port, "/api/state")["next_batch"], timeout=120,
                         what="the next batch chosen ahead")
        expect(page.locator("#next-batch")).to_have_text(
            f"next batch ready (picked by model v{ready['model_version']})")
        page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
        start = time.perf_counter()
        page.keyboard.press("Enter")
        _wait_batch(page, 1)
        seconds = time.perf_counter() - start
        print(f"submit -> next batch on the page: {seconds:.2f} s")
        assert seconds < 2.0, f"submit -> next batch on the page took {seconds:.2f} s"
        assert f"batch picked by model v{ready['model_version']}" in \
            page.locator("#round").inner_text()
        assert header_clear() == (True, True)  # on a new batch: row 1 and Brightness in view
        assert page.locator(".tile.focused").get_attribute("data-index") == "0"
        expect(page.locator("#message")).to_be_hidden()

        # The model catches up in the background: a percentage and the time left.
        seen = []
        wait_for(lambda: seen.append(page.locator("#worker").inner_text()) or
                 PROGRESS.match(seen[-1]) and " left" in seen[-1],
                 timeout=120, interval=0.05, what="a progress line with the time left")
        assert all(PROGRESS.match(t) for t in set(seen) if t)
        known = page.evaluate("""[
            formatWorker({stage: "training", fraction: 0.423, eta_seconds: 75.2}),
            formatWorker({stage: "querying", fraction: 0.5, eta_seconds: null}),
            formatWorker({stage: "training", fraction: 0.999, eta_seconds: 3725}),
            formatWorker({stage: "idle", fraction: null, eta_seconds: null})]""")
        assert known == ["training 42% · about 1 min 15 s left", "querying 50%",
                         "training 99% · about 1 h 02 min left", ""]
        assert all(PROGRESS.match(t) for t in known[:3])

        # The favicon: linked, served, and no request of the page failed.
        assert page.locator("link[rel=icon]").get_attribute("href") == "/favicon.ico"
        icon = page.request.get(live.url + "favicon.ico")
        assert icon.status == 200 and icon.headers["content-type"].startswith("image/")
        assert page.errors == [] and page.failed == []
    finally:
        live.kill()


def test_review_and_correct_submitted_labels(live, page):
    """The Review tab lists submitted answers newest first, paged, with thumbnails; a digit
    twice or a click on a row's class button corrects one through /api/correct."""
    from playwright.sync_api import expect

    files = _open(page, live)
    for file in files:
        page.keyboard.press(_digit(live, file))
    _wait_saved(page, 4)
    page.keyboard.press("Enter")
    _wait_batch(page, 1)

    page.keyboard.press("r")
    review = page.locator("#review")
    expect(review).to_be_visible()
    expect(page.locator("#grid")).to_be_hidden()
    rows = page.locator("#review-rows tr")
    expect(rows).to_have_count(4)
    shown = [rows.nth(k).locator("td").nth(1).inner_text() for k in range(4)]
    # Newest first: the reverse of the order the answers reached the disk (the page saves
    # each key press as it comes, so two quick presses may land in either order).
    saved = list(dict.fromkeys(r["file"] for r in map(
        json.loads, (live.path / "labels.jsonl").read_text().splitlines())))
    assert sorted(saved) == sorted(files) and shown == saved[::-1]
    assert [rows.nth(k).locator("td.answer").inner_text() for k in range(4)] == \
        [live.truth[f] for f in shown]
    _wait_js(page, "() => [...document.querySelectorAll('#review .thumb')]"
             ".every(i => i.complete && i.naturalWidth === 12)", what="the thumbnails")
    expect(page.locator("#review-range")).to_have_text("1–4 of 4 submitted answers, newest first")

    # Keyboard: row 2; a digit once asks, the same digit again corrects.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")
    row = rows.nth(2)
    expect(row).to_have_class(re.compile(r"\bfocused\b"))
    target, old = shown[2], live.truth[shown[2]]
    wrong = _digit(live, target, wrong=True)
    new = CLASSES[int(wrong) - 1]
    page.keyboard.press(wrong)
    expect(row).to_have_class(re.compile(r"\bconfirming\b"))
    assert live.labels()[target]["label"] == old  # nothing written yet
    page.keyboard.press(wrong)
    expect(row.locator(".note")).to_have_text(f"corrected ✓ (was {old})")
    expect(row.locator("td.answer")).to_contain_text(new)
    record = live.labels()[target]
    assert record["label"] == new and record["source"] == "correction"
    assert record["previous"]["label"] == old  # the old answer stays in the log

    # Mouse: the class button in row 0 corrects at once.
    target, old = shown[0], live.truth[shown[0]]
    new = CLASSES[1 - CLASSES.index(old)]
    rows.nth(0).locator(f"button[data-cls='{new}']").click()
    expect(rows.nth(0).locator(".note")).to_have_text(f"corrected ✓ (was {old})")
    assert live.labels()[target]["label"] == new

    # Paging: three rows a page.
    page.evaluate("view.review.limit = 3; view.review.offset = 0; loadReview()")
    expect(rows).to_have_count(3)
    expect(page.locator("#review-range")).to_have_text("1–3 of 4 submitted answers, newest first")
    page.locator("#review-older").click()
    expect(rows).to_have_count(1)
    expect(page.locator("#review-range")).to_have_text("4–4 of 4 submitted answers, newest first")

    # Escape: back to the batch, the focus where it was.
    page.keyboard.press("Escape")
    expect(review).to_be_hidden()
    expect(page.locator("#grid")).to_be_visible()
    assert _focused(page) == 0
    assert page.errors == [] and page.failed == []


def test_sync_mode_says_it_waits_until_the_next_batch_is_there(tmp_path, page):
    """``serve --sync``: after a submit the page says the model is picking the next batch;
    the message goes when that batch is on the page."""
    from playwright.sync_api import expect

    live = Live(tmp_path, serve_args=("--sync",), epochs=20)
    try:
        files = _open(page, live)
        for file in files:
            page.keyboard.press(_digit(live, file))
        _wait_saved(page, 4)
        assert get_json(live.port, "/api/state")["next_batch"] is None  # nothing chosen ahead
        page.keyboard.press("Enter")
        message = page.locator("#message")
        expect(message).to_have_text(
            "Batch submitted. The model is picking the next batch; it appears here.")
        expect(page.locator(".grid.empty")).to_have_text("Waiting for the next batch…")
        _wait_batch(page, 1)
        expect(message).to_be_hidden()
        assert "batch picked by model v1" in page.locator("#round").inner_text()
        assert _focused(page) == 0
        assert page.errors == [] and page.failed == []
    finally:
        live.kill()
