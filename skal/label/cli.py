"""``skal label ...``: create a labeling project, serve its page, query, teach, status, export.

``skal.cli`` hooks these in with :func:`add_label_commands` and
:func:`run_label`; ``python -m skal.label`` runs them on their own.

Exit status: 0 on success; 1 when ``teach`` found conflicts (the other
labels were imported); 2 for bad options, files or a busy project.
"""

from __future__ import annotations

import argparse
import csv
import getpass
import io
import sys
from pathlib import Path

__all__ = ["add_label_commands", "run_label", "main"]

_EXIT_CONFLICT = 1
_EXIT_USAGE = 2


def _default_annotator():
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "annotator"


def _add_commands(commands):
    """Add init, serve, query, teach, status and export to a sub-command group."""
    from skal.label.project import DEFAULTS, FORECAST_LABELS
    from skal.registry import COLORS, INITIALS, METHODS, MODELS  # names: `skal --help` stays fast

    init = commands.add_parser(
        "init", help="create a labeling project from a folder of images (or a MedMNIST split)",
        description="Create a labeling project folder: the images at the model's size, the "
                    "classes and the active-learning settings.")
    init.add_argument("project", type=Path, help="the new project folder")
    source = init.add_mutually_exclusive_group(required=True)
    source.add_argument("--images", type=Path, metavar="DIR",
                        help="folder of PNG/JPEG images (nested folders are read too)")
    source.add_argument("--medmnist", metavar="FLAG",
                        help="try it without your own data: a MedMNIST split, labels hidden")
    init.add_argument("--classes", nargs="+", metavar="NAME",
                      help="class names (digits 1, 2, ... pick them in this order); "
                           "taken from MedMNIST with --medmnist")
    init.add_argument("--labels", type=Path, metavar="CSV",
                      help="labels you already have: a CSV with columns file,label")
    init.add_argument("--method", default=DEFAULTS["method"], choices=sorted(METHODS),
                      help="query method (default: %(default)s)")
    init.add_argument("--initial", default=DEFAULTS["initial"], choices=list(INITIALS),
                      metavar="NAME",
                      help=f"how the first batch is chosen, before any label: "
                           f"{', '.join(INITIALS)} (default: %(default)s; the others embed the "
                           f"images self-supervised first, a few minutes, cached in the project)")
    init.add_argument("--batch", type=int, default=DEFAULTS["batch"],
                      help="images per batch (default: %(default)s)")
    init.add_argument("--model", default=DEFAULTS["model"], choices=sorted(MODELS),
                      help="network (default: %(default)s)")
    init.add_argument("--size", type=int, default=None,
                      help=f"image side the model sees, in pixels (default: {DEFAULTS['size']}; "
                           f"28 with --medmnist)")
    init.add_argument("--epochs", type=int, default=DEFAULTS["epochs"],
                      help="training epochs after each batch, warm-started (default: %(default)s)")
    init.add_argument("--lr", type=float, default=DEFAULTS["lr"],
                      help="learning rate (default: %(default)s)")
    init.add_argument("--holdout", type=float, default=DEFAULTS["holdout"],
                      help="fraction of your labels held out to measure accuracy, never "
                           "trained on (default: %(default)s)")
    init.add_argument("--min-holdout", type=int, default=DEFAULTS["min_holdout"],
                      help="held-out labels needed before accuracy is shown (default: %(default)s)")
    init.add_argument("--skip-cooldown", type=int, default=DEFAULTS["skip_cooldown"],
                      help="rounds before an image answered unsure/skip may be queried again "
                           "(default: %(default)s)")
    init.add_argument("--seed", type=int, default=DEFAULTS["seed"])
    init.add_argument("--device", default=DEFAULTS["device"], help="auto, cpu or cuda")
    init.add_argument("--split", default="train", choices=["train", "val", "test"],
                      help="MedMNIST split with --medmnist (default: %(default)s)")
    init.add_argument("--root", type=Path, help="folder of the MedMNIST files "
                                                "(default: $MEDMNIST_ROOT, then ~/.medmnist)")
    init.add_argument("--color", default="auto", choices=COLORS,
                      help="convert every image to grayscale or RGB (default: keep the folder's)")
    init.add_argument("--skip-bad", action="store_true",
                      help="leave out unreadable images (and, with --color auto, images of the "
                           "folder's minority colour mode) instead of stopping; they are counted")

    serve = commands.add_parser(
        "serve", help="serve the labeling page",
        description="Serve the project's labeling page. Binds to 127.0.0.1 unless told "
                    "otherwise; on any other address the printed URL carries a token that "
                    "every request needs.")
    serve.add_argument("project", type=Path)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument("--port", type=int, default=8765, help="port (default: %(default)s)")
    serve.add_argument("--annotator", default=_default_annotator(),
                       help="your name, recorded with every label (default: the login name)")
    serve.add_argument("--token", help="use this token instead of a random one")
    serve.add_argument("--allow-host", action="append", default=[], metavar="NAME",
                       help="another host name the browser may use to reach this server")
    serve.add_argument("--sync", action="store_true",
                       help="train and query after each submit while the page waits, so every "
                            "batch comes from a model that has seen every label (default: the "
                            "next batch is chosen while you label and opens at once)")

    query = commands.add_parser(
        "query", help="the next batch as file names, for other annotation tools",
        description="Train on the labels if they changed, query the next batch with the "
                    "project's method, and write it as a CSV (file, id, sha256, score, rank). "
                    "An open batch is written again, not replaced.")
    query.add_argument("project", type=Path)
    query.add_argument("--out", type=Path, help="CSV to write (default: standard output)")

    teach = commands.add_parser(
        "teach", help="import labels made elsewhere (a CSV with columns file,label)",
        description="Import labels from a CSV with columns file,label. File names not in the "
                    "project refuse the whole import; a label that differs from an earlier one "
                    "is reported and left as it was unless --overwrite.")
    teach.add_argument("project", type=Path)
    teach.add_argument("labels", type=Path, help="CSV with columns file,label")
    teach.add_argument("--annotator", default=_default_annotator())
    teach.add_argument("--overwrite", action="store_true",
                       help="replace earlier labels that differ (still reported)")

    status = commands.add_parser("status", help="counts per class, rounds, held-out accuracy, "
                                                "whether to stop")
    status.add_argument("project", type=Path)
    status.add_argument("--next", type=int, default=FORECAST_LABELS, metavar="N",
                        help="labels the forecast looks ahead (default: %(default)s)")

    export = commands.add_parser("export", help="every label with its provenance, as CSV or "
                                                "JSON Lines")
    export.add_argument("project", type=Path)
    export.add_argument("--format", choices=["csv", "jsonl"], default="csv")
    export.add_argument("--out", type=Path, help="file to write (default: standard output)")


def add_label_commands(subparsers):
    """Add the ``label`` command and its sub-commands to a parser's sub-command group.

    Parameters
    ----------
    subparsers : argparse._SubParsersAction
        From ``parser.add_subparsers(dest='command')`` of the ``skal`` parser.

    Returns
    -------
    argparse.ArgumentParser
        The ``label`` parser.
    """
    label = subparsers.add_parser(
        "label", help="label your own images in the browser, chosen by active learning",
        description="Active learning with a person in the loop: a project folder, a "
                    "labeling page, and the model retrained after every batch.")
    _add_commands(label.add_subparsers(dest="label_command", required=True, metavar="COMMAND"))
    return label


def _write(text, out):
    if out is None:
        sys.stdout.write(text)
    else:
        Path(out).write_text(text, encoding="utf-8")


def _sync(project):
    """Follow changes of the images folder and say what changed (see Project.sync_images)."""
    report = project.sync_images()
    if report["renamed"]:
        print(f"{len(report['renamed'])} renamed or moved file(s) keep their labels (matched "
              f"by content), e.g. {report['renamed'][0][0]} -> {report['renamed'][0][1]}",
              file=sys.stderr)
    if report["added"]:
        print(f"{len(report['added'])} new image(s) added to the project", file=sys.stderr)
    if report["skipped"]:
        print(f"{len(report['skipped'])} new file(s) could not be read and were left out, e.g. "
              f"{report['skipped'][0]}", file=sys.stderr)
    if report["missing"]:
        print(f"{len(report['missing'])} file(s) are gone from the images folder; their stored "
              f"pixels are used, e.g. {report['missing'][0]}", file=sys.stderr)


def _init(args):
    from skal.label.project import create_project

    project, skipped = create_project(
        args.project, classes=args.classes, images=args.images, medmnist=args.medmnist,
        split=args.split, labels=args.labels, root=args.root, color=args.color,
        skip_bad=args.skip_bad, annotator=f"import:{args.labels.name}" if args.labels else "import",
        method=args.method, initial=args.initial, batch=args.batch, model=args.model, size=args.size,
        epochs=args.epochs, lr=args.lr, holdout=args.holdout, min_holdout=args.min_holdout,
        skip_cooldown=args.skip_cooldown, seed=args.seed, device=args.device)
    counts = project.counts()
    print(f"created {project.path}: {project.n_items} images, classes "
          f"{', '.join(project.classes)}; {counts['labeled']} labels imported")
    if skipped:
        print(f"skipped {len(skipped)} file(s) (--skip-bad):")
        for name, why in skipped[:20]:
            print(f"  {name}: {why}")
        if len(skipped) > 20:
            print(f"  ... and {len(skipped) - 20} more")
    print(f"next: skal label serve {project.path}")
    return 0


def _serve(args):
    from skal.label.project import LabelError, Project

    try:
        import uvicorn

        from skal.label.server import create_app, new_token, server_urls
    except ImportError as exc:
        raise LabelError(f"serving the page needs the label extra ({exc.name} is missing): "
                         f"pip install 'skal[label]'.") from None

    project = Project(args.project)
    project.process_lock()  # held until the process ends
    _sync(project)
    token = args.token or new_token()
    app = create_app(project, annotator=args.annotator, host=args.host, port=args.port,
                     token=token, allow_hosts=args.allow_host, sync=args.sync)
    urls = server_urls(args.host, args.port, token, args.allow_host)
    print(f"skal label: serving {project.path} at {urls[0]}  (Ctrl-C to stop)", flush=True)
    for url in urls[1:]:
        print(f"  also at {url}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0


def _query(args):
    from skal.label.loop import advance
    from skal.label.project import Project

    project = Project(args.project)
    with project.process_lock():
        _sync(project)

        def progress(stage, fraction, _seen=set()):
            if stage not in _seen:
                _seen.add(stage)
                print(f"{stage}...", file=sys.stderr, flush=True)

        batch = advance(project, progress)
    if batch is None:
        print("every image has an answer: nothing left to query.", file=sys.stderr)
        return 0
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["file", "id", "sha256", "score", "rank"])
    scores = batch.get("scores") or [None] * len(batch["ids"])
    for item_id, score, rank in zip(batch["ids"], scores, batch["ranks"]):
        writer.writerow([project.files[item_id], item_id, project.sha256[item_id],
                         "" if score is None else score, rank])
    _write(out.getvalue(), args.out)
    print(f"round {batch['round']}: {len(batch['ids'])} images picked by {batch['method']} "
          f"({batch['score_name']}); label them (columns file,label) and run "
          f"`skal label teach {project.path} LABELS.csv`", file=sys.stderr)
    return 0


def _teach(args):
    from skal.image_folder import read_labels_csv
    from skal.label.project import Project

    project = Project(args.project)
    labels = read_labels_csv(args.labels, project.classes)
    with project.process_lock():
        _sync(project)
        with project.lock:
            report = project.teach(labels, annotator=args.annotator, overwrite=args.overwrite)
    print(f"imported {report['added']} new label(s); {report['unchanged']} unchanged"
          + (f"; {report['overwritten']} overwritten" if report["overwritten"] else ""))
    if report["submitted"] is not None:
        print(f"round {report['submitted']} is complete; `skal label query` trains and picks "
              f"the next batch")
    if report["conflicts"]:
        verb = "replaced (--overwrite)" if args.overwrite else "kept (use --overwrite to replace)"
        print(f"{len(report['conflicts'])} conflict(s) with earlier labels, {verb}:",
              file=sys.stderr)
        for file, old, new in report["conflicts"][:20]:
            print(f"  {file}: earlier {old!r}, this file {new!r}", file=sys.stderr)
        return 0 if args.overwrite else _EXIT_CONFLICT
    return 0


def _status(args):
    from skal.label.project import Project

    project = Project(args.project)
    config, counts = project.config, project.counts()
    print(f"{project.path}: {project.n_items} images; method {config['method']}, batch "
          f"{config['batch']}, {config['model']} at {config['size']}x{config['size']}")
    per_class = ", ".join(f"{c} {n}" for c, n in counts["per_class"].items())
    print(f"labels: {per_class} ({counts['labeled']} labeled, {counts['skipped']} unsure/skip, "
          f"{counts['held_out']} held out)")
    batch = project.open_batch()
    line = f"rounds: {project.submitted_rounds} submitted"
    if batch is not None:
        line += (f"; round {batch['round']} open, {len(batch['ids']) - len(project.unanswered())}"
                 f" of {len(batch['ids'])} answered")
    print(line)
    accuracy, n_holdout = project.accuracy()
    if project.model_meta is None:
        print("model: not trained yet")
    else:
        meta = project.model_meta
        acc = (f"held-out accuracy {accuracy:.3f} on {n_holdout} labels" if accuracy is not None
               else f"held-out accuracy after {config['min_holdout']} held-out labels "
                    f"({n_holdout} so far)")
        print(f"model: version {meta['version']}, trained on {meta['n_train']} labels; {acc}")
    print(f"stop? {_stopping_sentence(project, args.next)}")
    return 0


def _stopping_sentence(project, n_more):
    """What skal.stopping says now: the verdict stored with the model when it was trained
    (as the page shows it), recomputed only for another ``--next``."""
    from skal.label.loop import stopping_verdict
    from skal.label.project import FORECAST_LABELS

    meta = project.model_meta or {}
    if "stopping" in meta and int(n_more) == FORECAST_LABELS:
        return meta["stopping"]["sentence"]
    return stopping_verdict(project, project.kept_model_paths(), n_more=n_more)["sentence"]


def _export(args):
    from skal.label.project import Project

    project = Project(args.project)
    _write(project.export_csv() if args.format == "csv" else project.export_jsonl(), args.out)
    return 0


_COMMANDS = {"init": _init, "serve": _serve, "query": _query, "teach": _teach,
             "status": _status, "export": _export}


def run_label(args, prog="skal label"):
    """Run a parsed ``skal label`` command.

    Parameters
    ----------
    args : argparse.Namespace
        From a parser built with :func:`add_label_commands`.

    Returns
    -------
    int
        Exit status (see the module docstring).
    """
    from skal.data import DatasetError
    from skal.image_folder import ImageFolderError
    from skal.label.project import LabelError, ProjectBusyError

    try:
        return _COMMANDS[args.label_command](args)
    except (LabelError, ImageFolderError, ProjectBusyError, DatasetError, FileNotFoundError,
            ValueError) as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return _EXIT_USAGE
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; every saved label is on disk.", file=sys.stderr)
        return 130


def main(argv=None):
    """``python -m skal.label COMMAND ...`` (the same as ``skal label COMMAND ...``)."""
    parser = argparse.ArgumentParser(prog="python -m skal.label",
                                     description="Label your own images in the browser.")
    _add_commands(parser.add_subparsers(dest="label_command", required=True, metavar="COMMAND"))
    return run_label(parser.parse_args(argv), prog="python -m skal.label")
