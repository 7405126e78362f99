"""The labeling page and its JSON API (FastAPI).

Read top-down: :func:`create_app` puts one :class:`Served` (the project,
its :class:`~skal.label.worker.Worker`, the annotator and the access
rules) on the app; :func:`guard` checks every request against
:mod:`skal.label.access`; each route below is a small function that
receives the ``Served`` and calls one :class:`~skal.label.project.Project`
method under its lock.

Endpoints
---------
``GET /``                       the page (plain HTML/JS/CSS from ``static/``, no build step)
``GET /static/{name}``          the page's script and style sheet (a fixed set, held in memory)
``GET /favicon.ico``            the page's icon (a small PNG drawn once)
``GET /api/state``              batch, answers, counts, progress, worker status, accuracy,
                                 stopping verdict
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

import functools
import io
import secrets
from dataclasses import dataclass, field
from importlib import resources
from typing import Annotated, Callable

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field

from skal.label.access import (LOOPBACK, allowed_hostnames, machine_names, new_token,
                               same_address, server_urls, split_host)
from skal.label.project import CURVE_PLOT, LabelError, Project
from skal.label.worker import Worker

__all__ = ["create_app", "Served", "Worker", "LOOPBACK", "allowed_hostnames", "machine_names",
           "server_urls", "new_token"]

_STATIC = {"app.js": "text/javascript", "app.css": "text/css"}
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


# -- the application --------------------------------------------------------------
@dataclass
class Served:
    """One project served to one annotator: what every route and the guard need.

    Attributes
    ----------
    project : Project
    worker : Worker
        Trains and queries in the background.
    annotator : str
        Recorded with every answer.
    token : str
    require_token : bool
        Whether reads need the token too (writes always need it or a same origin).
    hostnames : set of str
        Names the Host header may carry (:func:`skal.label.access.allowed_hostnames`).
    port : int
    files : dict of str to bytes
        The page's files, read once.
    """

    project: Project
    worker: Worker
    annotator: str
    token: str
    require_token: bool
    hostnames: set
    port: int
    files: dict
    png: Callable = field(init=False, repr=False)

    def __post_init__(self):
        # Display PNGs of recently shown items, per served project.
        self.png = functools.lru_cache(maxsize=256)(functools.partial(_display_png, self.project))

    @property
    def cookie(self):
        return f"skal_token_{self.port}"  # cookies ignore ports: one name per server

    def token_ok(self, value):
        return bool(value) and secrets.compare_digest(str(value), self.token)


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
        ``app.state.served`` is the :class:`Served`; ``app.state.project``,
        ``app.state.worker`` and ``app.state.token`` name its parts.
    """
    served = Served(project=project, worker=Worker(project, ahead=not sync), annotator=annotator,
                    token=token or new_token(),
                    require_token=host not in LOOPBACK if require_token is None
                    else require_token,
                    hostnames=allowed_hostnames(host, allow_hosts), port=port,
                    files=_static_files())
    app = FastAPI(title="skal label", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.served = served
    app.state.project, app.state.worker, app.state.token = project, served.worker, served.token
    app.middleware("http")(guard)
    app.add_exception_handler(LabelError, label_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.include_router(router)
    if start_worker and (not sync or project.open_batch() is None):
        served.worker.start()
    return app


def _served(request: Request) -> Served:
    return request.app.state.served


#: A route's parameter of this type receives the app's :class:`Served` (a FastAPI dependency).
ServedDep = Annotated[Served, Depends(_served)]


# -- every request: Host, token, origin; errors -------------------------------------
async def guard(request: Request, call_next):
    """Refuse a foreign Host (DNS rebinding), a missing token, a cross-site write."""
    served = request.app.state.served
    parsed = split_host(request.headers.get("host"))
    if parsed is None or (parsed[1] or 80) != served.port or not (
            parsed[0] in served.hostnames or same_address(parsed[0], request.scope)):
        return PlainTextResponse(
            f"refused: Host {request.headers.get('host')!r} is not this server's; open the "
            f"URL printed by `skal label serve` (or add --allow-host NAME).", status_code=403)
    query_token = request.query_params.get("token")
    header_token = request.headers.get("x-skal-token")
    authorised = (served.token_ok(query_token) or served.token_ok(header_token)
                  or served.token_ok(request.cookies.get(served.cookie)))
    if served.require_token and not authorised:
        return PlainTextResponse(
            "this server needs its token: open the URL printed by `skal label serve` "
            "(it ends in ?token=...).", status_code=403)
    if request.method not in ("GET", "HEAD"):
        origin = request.headers.get("origin")
        same_origin = origin is not None and origin.lower() == \
            f"{request.url.scheme}://{request.headers.get('host', '')}".lower()
        if not (served.token_ok(header_token) or same_origin):
            return PlainTextResponse(
                "refused: a write needs the X-Skal-Token header or a same-origin request.",
                status_code=403)
    response = await call_next(request)
    if served.require_token and served.token_ok(query_token):
        response.set_cookie(served.cookie, served.token, httponly=True, samesite="strict")
    response.headers.setdefault("Content-Security-Policy", _CSP)
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # the token is in the URL
    response.headers.setdefault("Cache-Control", "no-store")
    return response


async def label_error(request, exc):
    """A request the project refused: its message, with the status it names."""
    return JSONResponse({"detail": str(exc)}, status_code=exc.status)


async def invalid_request(request, exc):
    """A malformed request body or query: 422 with each error's place and message."""
    # FastAPI's own reply echoes the input, and JSON cannot carry NaN or
    # Infinity: a request with "seconds": NaN would become a 500.
    return JSONResponse({"detail": [{k: e[k] for k in ("type", "loc", "msg") if k in e}
                                    for e in exc.errors()]}, status_code=422)


# -- request bodies -------------------------------------------------------------
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


# -- routes -----------------------------------------------------------------------
router = APIRouter()


@router.get("/", response_class=HTMLResponse)
def page(served: ServedDep):
    return HTMLResponse(served.files["index.html"])


@router.get("/favicon.ico")
def favicon(served: ServedDep):
    return Response(served.files["favicon.ico"], media_type="image/png",
                    headers={"Cache-Control": "max-age=86400"})


@router.get("/static/{name}")
def static(name: str, served: ServedDep):
    if name not in _STATIC:
        raise HTTPException(404, f"no static file {name!r}")
    return Response(served.files[name], media_type=_STATIC[name])


@router.get("/api/state")
def state(served: ServedDep, guesses: bool = False):
    """The page's view of the project (see :func:`_state`)."""
    with served.project.lock:
        return _state(served.project, served.worker, served.annotator, guesses)


@router.get("/api/items/{item_id}/image")
def image(item_id: int, served: ServedDep):
    served.project.check_id(item_id)
    return Response(served.png(item_id), media_type="image/png",
                    headers={"Cache-Control": "private, max-age=3600"})


@router.post("/api/answers")
def answers(body: AnswersIn, served: ServedDep):
    """Save answers to the open batch; on disk before the reply."""
    project = served.project
    with project.lock:
        saved = project.record_answers([a.model_dump() for a in body.answers], served.annotator,
                                       round_=body.round)
        return {"saved": [{k: r[k] for k in ("id", "label", "skipped", "time")} for r in saved],
                "counts": project.counts(), "unanswered": len(project.unanswered())}


@router.post("/api/submit", status_code=202)
def submit(body: SubmitIn, served: ServedDep):
    """Close the open batch; the next one opens (chosen ahead) or the worker queries it."""
    with served.project.lock:
        batch = served.project.submit(body.round, served.annotator)
        opened = served.project.open_batch()
    served.worker.start()
    return {"submitted": batch["round"], "open": None if opened is None else opened["round"],
            "worker": served.worker.status()}


@router.post("/api/retry", status_code=202)
def retry(served: ServedDep):
    """Start training and querying again after a failure (the page's Retry button)."""
    if served.worker.status()["stage"] != "error":
        raise LabelError("nothing failed, so there is nothing to retry.", status=409)
    if not served.worker.start():
        raise LabelError("the model is already training or querying.", status=409)
    return {"worker": served.worker.status()}


@router.get("/api/labeled")
def labeled(served: ServedDep, offset: int = Query(0, ge=0),
            limit: int = Query(100, ge=1, le=1000)):
    """Submitted answers, newest first, for review."""
    project = served.project
    with project.lock:
        ids = project.submitted_ids()
        items = [{"id": i, "file": project.files[i], **{
            k: project.answers[i].get(k)
            for k in ("label", "skipped", "round", "annotator", "time", "source")}}
            for i in ids[offset:offset + limit]]
    return {"total": len(ids), "offset": offset, "items": items}


@router.post("/api/correct")
def correct(body: CorrectionIn, served: ServedDep):
    """Change a submitted label; it trains the next model like any other."""
    with served.project.lock:
        record = served.project.correct(body.id, body.label, served.annotator)
        counts = served.project.counts()
    if served.worker.ahead:  # the model catches up now; in sync mode at the next submit
        served.worker.start()
    return {"corrected": {k: record[k] for k in ("id", "label", "time", "previous")},
            "counts": counts}


@router.get("/api/curve.svg")
def curve(served: ServedDep):
    path = served.project.path / CURVE_PLOT
    if not path.is_file():
        raise HTTPException(404, "no learning curve yet: it appears after the first training")
    # matplotlib's SVG styles itself inline; it runs no script.
    return Response(path.read_bytes(), media_type="image/svg+xml", headers={
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"})


@router.get("/api/export.csv")
def export_csv(served: ServedDep):
    with served.project.lock:
        body = served.project.export_csv()
    return Response(body, media_type="text/csv", headers={
        "Content-Disposition": 'attachment; filename="labels.csv"'})


@router.get("/api/export.jsonl")
def export_jsonl(served: ServedDep):
    with served.project.lock:
        body = served.project.export_jsonl()
    return Response(body, media_type="application/x-ndjson", headers={
        "Content-Disposition": 'attachment; filename="labels.jsonl"'})


# -- what the routes show -------------------------------------------------------------
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
            if batch.get("of") is not None:  # the candidates at that pick's step
                item["of"] = batch["of"][k]
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
        # skal.stopping's verdict, computed once when the model was trained
        "stopping": (project.model_meta or {}).get("stopping"),
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
