"""The labeling page and its JSON API (FastAPI), and the background worker that retrains.

Endpoints
---------
``GET /``                       the page (plain HTML/JS/CSS from ``static/``, no build step)
``GET /static/{name}``          the page's script and style sheet (a fixed set, held in memory)
``GET /favicon.ico``            the page's icon (a small PNG drawn once)
``GET /api/state``              batch, answers, counts, progress, worker status, accuracy
``GET /api/items/{id}/image``   one image as PNG, by item id only
``POST /api/answers``           save answers to the open batch (durable before the reply)
``POST /api/submit``            close the batch; the worker retrains and queries the next one
``POST /api/retry``             start the worker again after it failed
``GET /api/labeled``            submitted answers, newest first (``offset``, ``limit``): review
``POST /api/correct``           change a submitted label; the log keeps the old one
``GET /api/curve.svg``          the held-out learning curve
``GET /api/export.csv``, ``GET /api/export.jsonl``   every current answer with provenance

Safety
------
Every request's ``Host`` header must name this server (DNS rebinding): a
name it was told (loopback, this machine's names for a wildcard bind,
``--allow-host``) or the very address the request arrived on, which a
colleague opening the machine's own address uses. A
server bound to a non-loopback address needs its token on every request
(``?token=`` in the printed URL, then a SameSite=Strict cookie, or the
``X-Skal-Token`` header). Every write needs the token header or a
same-origin ``Origin``. Writes serialize on ``Project.lock`` (two tabs);
``serve`` also holds the project's file lock (two processes).
"""

from __future__ import annotations

import contextlib
import functools
import io
import ipaddress
import logging
import secrets
import socket
import threading
import time
import traceback
from importlib import resources

from fastapi import FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from skal.label.loop import advance
from skal.label.project import CURVE_PLOT, LabelError

__all__ = ["create_app", "Worker", "LOOPBACK", "allowed_hostnames", "server_urls", "new_token"]

log = logging.getLogger("skal.label")

#: Names of the loopback interface a Host header may use.
LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})
_STATIC = {"app.js": "text/javascript", "app.css": "text/css"}
_WILDCARD = ("0.0.0.0", "::", "")
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


def new_token():
    """A random token for the server's URL (as Jupyter prints one)."""
    return secrets.token_urlsafe(24)


def machine_names():
    """This machine's host name, full name and the addresses they and its default route use.

    Returns
    -------
    list of str
        Names first, then addresses; loopback ones left out; no duplicates.
    """
    names = []
    for name in (socket.gethostname(), socket.getfqdn()):
        names.append(name)
        try:
            names.extend(info[4][0] for info in socket.getaddrinfo(name, None))
        except OSError:
            pass
    # The address of the default route's interface: a UDP "connect" sends nothing.
    with contextlib.suppress(OSError), socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.connect(("192.0.2.1", 9))  # TEST-NET-1, never routed anywhere real
        names.append(s.getsockname()[0])
    seen = []
    for name in names:
        if name and name.lower() not in seen and not _is_loopback(name):
            seen.append(name.lower())
    return seen


def _is_loopback(name):
    if name in LOOPBACK:
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def allowed_hostnames(host, extra=()):
    """The host names a request's Host header may carry for a server bound to ``host``.

    Loopback binds accept the loopback names; a wildcard bind (``0.0.0.0``,
    ``::``) accepts those plus this machine's names and addresses
    (:func:`machine_names`); any other address accepts itself. ``extra``
    adds names (``serve --allow-host``). The guard also accepts the address
    a request arrived on (see :func:`create_app`).
    """
    names = set(LOOPBACK) if host in LOOPBACK or host in _WILDCARD else {host}
    if host in _WILDCARD:
        names.update(machine_names())
    names.update(extra)
    return {n.lower() for n in names}


def server_urls(host, port, token, extra=()):
    """Every URL that reaches a server bound to ``host``, the most useful first.

    A wildcard bind lists this machine's names and addresses, then loopback;
    off loopback each URL carries the token.

    Returns
    -------
    list of str
    """
    if host in LOOPBACK:
        shown = [host]
    elif host in _WILDCARD:
        shown = machine_names() + ["127.0.0.1"]
    else:
        shown = [host]
    shown += [name for name in extra if name not in shown]
    suffix = "" if host in LOOPBACK else f"?token={token}"
    return [f"http://{f'[{name}]' if ':' in name else name}:{port}/{suffix}" for name in shown]


def _same_address(name, scope):
    """Whether ``name`` is an IP literal equal to the local address the request arrived on.

    Such a Host header cannot come from DNS rebinding (the browser's origin
    is the address itself), so a colleague may open the machine's own
    address without ``--allow-host``.
    """
    server = scope.get("server")
    if not server:
        return False
    try:
        return ipaddress.ip_address(name) == ipaddress.ip_address(server[0])
    except ValueError:
        return False


def _split_host(header):
    """(hostname, port) of a Host header; port None when absent; None when malformed."""
    header = (header or "").strip().lower()
    if not header:
        return None
    if header.startswith("["):  # [::1]:8765
        end = header.find("]")
        if end < 0:
            return None
        name, rest = header[1:end], header[end + 1:]
        port = rest[1:] if rest.startswith(":") else None
    else:
        name, _, port = header.partition(":")
        port = port or None
    if port is not None and not port.isdigit():
        return None
    return name, None if port is None else int(port)


class Answer(BaseModel):
    """One answer: a class, or ``skip``, or neither (clears it: undo)."""

    id: int
    label: str | None = None
    skip: bool = False
    seconds: float | None = Field(default=None, ge=0, le=86400, allow_inf_nan=False)
    guess_shown: bool = False


class AnswersIn(BaseModel):
    round: int
    answers: list[Answer] = Field(min_length=1, max_length=10000)


class SubmitIn(BaseModel):
    round: int


class CorrectionIn(BaseModel):
    """A new class for an item whose answer was submitted."""

    id: int
    label: str


class Worker:
    """Runs :func:`skal.label.loop.advance` in a background thread, one run at a time.

    ``status()`` is what the page shows: ``stage`` ('idle', 'training',
    'querying', 'error'), ``fraction`` of the stage done (0 to 1),
    ``eta_seconds`` (the stage's time left at its pace so far; None until
    it has made progress) and an error ``message``.

    Parameters
    ----------
    project : Project
    ahead : bool, default=True
        Choose the next batch while the person labels (see
        :func:`skal.label.loop.advance`); False: train and query after each
        submit, while the page waits.
    """

    def __init__(self, project, ahead=True):
        self.project, self.ahead = project, ahead
        self._running = False
        self._again = False  # a start() came while running: run once more
        self._thread = None
        self._guard = threading.Lock()
        self._set("idle")

    def _set(self, stage, fraction=None, message=None):
        now = time.monotonic()
        if stage != getattr(self, "_stage", None):
            self._stage_start = now
        self._stage = stage
        # One dict swapped in whole: status() reads it from other threads without a lock.
        self._status = {"stage": stage, "fraction": None if fraction is None
                        else round(min(max(float(fraction), 0.0), 1.0), 3),
                        "message": message, "reported": now, "start": self._stage_start}

    def _progress(self, stage, fraction):
        self._set(stage, fraction)

    def _run(self):
        while True:
            with self._guard:
                self._again = False
            try:
                advance(self.project, self._progress, ahead=self.ahead)
                failed = False
            except Exception as exc:  # shown on the page; the labels on disk are untouched
                log.error("retraining failed:\n%s", traceback.format_exc())
                self._set("error", message=f"{type(exc).__name__}: {exc}")
                failed = True
            with self._guard:
                if failed or not self._again:
                    if not failed:
                        self._set("idle")
                    self._running = False
                    return

    def start(self):
        """Start a run, or have the running one go round again; returns whether one started.

        A submit or correction that comes while a run is going is picked up
        by that run (the labels it sees are re-read until nothing changed).
        """
        with self._guard:
            if self._running:
                self._again = True
                return False
            self._running = True
            self._set("training", 0.0)
            self._thread = threading.Thread(target=self._run, name="skal-label-worker",
                                            daemon=True)
            self._thread.start()
            return True

    @property
    def busy(self):
        return self._running

    def join(self, timeout=None):
        if self._thread is not None:
            self._thread.join(timeout)

    def status(self):
        """``stage``, ``fraction``, ``eta_seconds`` and ``message`` (a new dict)."""
        status = self._status
        fraction, eta = status["fraction"], None
        if fraction and status["stage"] in ("training", "querying"):
            # Time left at the pace so far, counted down since the last report.
            pace = (status["reported"] - status["start"]) / fraction
            eta = max(pace * (1 - fraction) - (time.monotonic() - status["reported"]), 0.0)
            eta = round(eta, 1)
        return {"stage": status["stage"], "fraction": fraction, "eta_seconds": eta,
                "message": status["message"]}


def _static_files():
    """The page's files, read once from the package (requests never name a file)."""
    folder = resources.files("skal.label") / "static"
    files = {name: (folder / name).read_bytes() for name in _STATIC}
    files["index.html"] = (folder / "index.html").read_bytes()
    files["favicon.ico"] = _favicon()
    return files


def _favicon():
    """A 32x32 PNG (browsers take PNG at /favicon.ico): four grey tiles, one labeled green."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (32, 32), (38, 50, 56))
    draw = ImageDraw.Draw(image)
    for k, (x, y) in enumerate([(3, 3), (17, 3), (3, 17), (17, 17)]):
        draw.rectangle([x, y, x + 11, y + 11], fill=(76, 175, 80) if k == 3 else (176, 190, 197))
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


def create_app(project, *, annotator, host="127.0.0.1", port=8765, token=None,
               require_token=None, allow_hosts=(), start_worker=True, sync=False):
    """The FastAPI application serving one project.

    Parameters
    ----------
    project : Project
    annotator : str
        Recorded with every answer.
    host, port : str, int
        Where the server listens; the Host header must name it.
    token : str, optional
        The server's token (a new one when None).
    require_token : bool, optional
        Whether reads need the token too; default: when ``host`` is not loopback.
    allow_hosts : sequence of str
        More host names to accept in the Host header (e.g. a DNS name).
    start_worker : bool, default=True
        Start the worker now: the first batch, resuming after a restart that
        found the last batch submitted, or (not ``sync``) choosing the next
        batch ahead.
    sync : bool, default=False
        Train and query after each submit while the page waits, so every
        batch comes from a model that has seen every label; by default the
        next batch is chosen while the person labels and opens at once.

    Returns
    -------
    fastapi.FastAPI
        ``app.state.project``, ``app.state.worker`` and ``app.state.token`` are set.
    """
    token = token or new_token()
    if require_token is None:
        require_token = host not in LOOPBACK
    hostnames = allowed_hostnames(host, allow_hosts)
    files = _static_files()
    worker = Worker(project, ahead=not sync)
    app = FastAPI(title="skal label", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.project, app.state.worker, app.state.token = project, worker, token

    cookie = f"skal_token_{port}"  # cookies ignore ports: one name per server

    def token_ok(value):
        return bool(value) and secrets.compare_digest(str(value), token)

    @app.middleware("http")
    async def guard(request: Request, call_next):
        parsed = _split_host(request.headers.get("host"))
        if parsed is None or (parsed[1] or 80) != port or not (
                parsed[0] in hostnames or _same_address(parsed[0], request.scope)):
            return PlainTextResponse(
                f"refused: Host {request.headers.get('host')!r} is not this server's; open the "
                f"URL printed by `skal label serve` (or add --allow-host NAME).", status_code=403)
        query_token = request.query_params.get("token")
        header_token = request.headers.get("x-skal-token")
        authorised = (token_ok(query_token) or token_ok(header_token)
                      or token_ok(request.cookies.get(cookie)))
        if require_token and not authorised:
            return PlainTextResponse(
                "this server needs its token: open the URL printed by `skal label serve` "
                "(it ends in ?token=...).", status_code=403)
        if request.method not in ("GET", "HEAD"):
            origin = request.headers.get("origin")
            same_origin = origin is not None and origin.lower() == \
                f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
            if not (token_ok(header_token) or same_origin):
                return PlainTextResponse(
                    "refused: a write needs the X-Skal-Token header or a same-origin request.",
                    status_code=403)
        response = await call_next(request)
        if require_token and token_ok(query_token):
            response.set_cookie(cookie, token, httponly=True, samesite="strict")
        response.headers.setdefault("Content-Security-Policy", _CSP)
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
        response.headers.setdefault("Cache-Control", "no-store")
        return response

    @app.exception_handler(LabelError)
    async def label_error(request, exc):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request, exc):
        # FastAPI's own reply echoes the input, and JSON cannot carry NaN or
        # Infinity: a request with "seconds": NaN would become a 500.
        return JSONResponse({"detail": [{k: e[k] for k in ("type", "loc", "msg") if k in e}
                                        for e in exc.errors()]}, status_code=422)

    @app.get("/", response_class=HTMLResponse)
    def page():
        return HTMLResponse(files["index.html"])

    @app.get("/favicon.ico")
    def favicon():
        return Response(files["favicon.ico"], media_type="image/png",
                        headers={"Cache-Control": "max-age=86400"})

    @app.get("/static/{name}")
    def static(name: str):
        if name not in _STATIC:
            raise HTTPException(404, f"no static file {name!r}")
        return Response(files[name], media_type=_STATIC[name])

    @app.get("/api/state")
    def state(guesses: bool = False):
        with project.lock:
            return _state(project, worker, annotator, guesses)

    @functools.lru_cache(maxsize=256)
    def png(item_id):
        return _display_png(project, item_id)

    @app.get("/api/items/{item_id}/image")
    def image(item_id: int):
        project.check_id(item_id)
        return Response(png(item_id), media_type="image/png",
                        headers={"Cache-Control": "private, max-age=3600"})

    @app.post("/api/answers")
    def answers(body: AnswersIn):
        with project.lock:
            saved = project.record_answers([a.model_dump() for a in body.answers], annotator,
                                           round_=body.round)
            return {"saved": [{k: r[k] for k in ("id", "label", "skipped", "time")}
                              for r in saved],
                    "counts": project.counts(), "unanswered": len(project.unanswered())}

    @app.post("/api/submit", status_code=202)
    def submit(body: SubmitIn):
        with project.lock:
            batch = project.submit(body.round, annotator)
            opened = project.open_batch()
        worker.start()
        return {"submitted": batch["round"], "open": None if opened is None else opened["round"],
                "worker": worker.status()}

    @app.post("/api/retry", status_code=202)
    def retry():
        """Start training and querying again after a failure (the page's Retry button)."""
        if worker.status()["stage"] != "error":
            raise LabelError("nothing failed, so there is nothing to retry.", status=409)
        if not worker.start():
            raise LabelError("the model is already training or querying.", status=409)
        return {"worker": worker.status()}

    @app.get("/api/labeled")
    def labeled(offset: int = Query(0, ge=0), limit: int = Query(100, ge=1, le=1000)):
        """Submitted answers, newest first, for review."""
        with project.lock:
            ids = project.submitted_ids()
            items = [{"id": i, "file": project.files[i], **{
                k: project.answers[i].get(k)
                for k in ("label", "skipped", "round", "annotator", "time", "source")}}
                for i in ids[offset:offset + limit]]
        return {"total": len(ids), "offset": offset, "items": items}

    @app.post("/api/correct")
    def correct(body: CorrectionIn):
        """Change a submitted label; it trains the next model like any other."""
        with project.lock:
            record = project.correct(body.id, body.label, annotator)
            counts = project.counts()
        if not sync:  # the model catches up now; in sync mode at the next submit
            worker.start()
        return {"corrected": {k: record[k] for k in ("id", "label", "time", "previous")},
                "counts": counts}

    @app.get("/api/curve.svg")
    def curve():
        path = project.path / CURVE_PLOT
        if not path.is_file():
            raise HTTPException(404, "no learning curve yet: it appears after the first training")
        # matplotlib's SVG styles itself inline; it runs no script.
        return Response(path.read_bytes(), media_type="image/svg+xml", headers={
            "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})

    @app.get("/api/export.csv")
    def export_csv():
        with project.lock:
            body = project.export_csv()
        return Response(body, media_type="text/csv", headers={
            "Content-Disposition": 'attachment; filename="labels.csv"'})

    @app.get("/api/export.jsonl")
    def export_jsonl():
        with project.lock:
            body = project.export_jsonl()
        return Response(body, media_type="application/x-ndjson", headers={
            "Content-Disposition": 'attachment; filename="labels.jsonl"'})

    if start_worker and (not sync or project.open_batch() is None):
        worker.start()
    return app


def _state(project, worker, annotator, guesses):
    """The page's view of the project (called under the lock)."""
    batch, ahead = project.open_batch(), project.next_batch()
    items = []
    if batch is not None:
        for k, item_id in enumerate(batch["ids"]):
            record = project.answers.get(item_id) or {}
            item = {"id": item_id, "file": project.files[item_id],
                    "label": record.get("label"), "skipped": bool(record.get("skipped")),
                    "score": None if batch.get("scores") is None else batch["scores"][k],
                    "rank": batch["ranks"][k]}
            if batch.get("sentences") is not None:
                item["sentence"] = batch["sentences"][k]
            if guesses and batch.get("guesses") is not None:
                item.update(guess=batch["guesses"][k], confidence=batch["confidences"][k])
            items.append(item)
    accuracy, n_holdout = project.accuracy()
    return {
        "project": project.path.name, "classes": project.classes, "annotator": annotator,
        "round": project.round, "model_version": project.model_version,
        "submitted_rounds": project.submitted_rounds,
        "batch": None if batch is None else {
            "round": batch["round"], "method": batch["method"],
            "score_name": batch.get("score_name"), "description": batch.get("description"),
            "pool_size": batch.get("pool_size"), "model_version": batch["model_version"],
            "items": items, "unanswered": len(project.unanswered(batch))},
        "next_batch": None if ahead is None else {"round": ahead["round"],
                                                  "model_version": ahead["model_version"]},
        "counts": project.counts(),
        "worker": worker.status(),
        "sync": not worker.ahead,
        "accuracy": {"value": accuracy, "n_holdout": n_holdout,
                     "min_holdout": int(project.config["min_holdout"])},
        "curve_points": len(project.curve),
        "done": batch is None and not worker.busy and len(project.pool_ids()) == 0,
    }


def _display_png(project, item_id):
    """PNG bytes of an item: its original file when it is still there, else the stored pixels.

    The path comes from ``items.csv`` (never from the request), joined to
    the project's images folder and checked to stay inside it.
    """
    from PIL import Image

    from skal.image_folder import to_8bit

    image = None
    source = project.config.get("source", {})
    if "images" in source:
        from pathlib import Path

        root = Path(source["images"]).resolve()
        path = (root / project.files[item_id]).resolve()
        if path.is_relative_to(root) and path.is_file():
            try:
                with Image.open(path) as img:
                    img.load()
                    image = to_8bit(img)[0]
                image = image.convert("RGB" if int(project.config["channels"]) == 3 else "L")
                image.thumbnail((1024, 1024))
            except (OSError, ValueError, SyntaxError):
                image = None
    if image is None:
        image = Image.fromarray(project.images[item_id])
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()
