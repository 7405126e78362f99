"""Command line: ``skal run ...`` and the study's ``python main.py ...``.

Only parsing, messages and exit codes live here; the trials are run by
:mod:`skal.runner` (which the benchmark grid uses too), and the result files'
schema is :mod:`skal.results`. Nothing heavy (torch, skorch, modAL,
medmnist) is imported before the arguments are parsed, so ``skal --help``
answers at once: the choices come from :mod:`skal.registry`, whose names
the tests check against the registries.

Output layout, under ``--out`` (default ``runs/``)::

    <out>/<preset>/<dataset>/<method>/results.csv                   all trials
    <out>/<preset>/<dataset>/<method>/trial_<seed>/results.csv      this trial's rows
    <out>/<preset>/<dataset>/<method>/trial_<seed>/labeled.csv
    <out>/<preset>/<dataset>/<method>/trial_<seed>/checkpoint/checkpoint.pkl

(``<dataset>`` is ``<dataset>_<size>`` with ``--size`` other than 28.) Running
the same command again resumes every unfinished trial from its last completed
cycle; a finished trial is loaded, not recomputed.

Exit status: 0 on success, 2 for bad options or settings (unknown method,
dataset or preset; a budget larger than the pool; a query size of 0; a
strategy the estimator cannot serve; a checkpoint of another run; a
``--root`` that is not an existing folder), 1 when the data cannot be loaded
(missing offline, corrupt, an unreadable image without ``--skip-bad``).
"""

from __future__ import annotations

import argparse
import sys

from skal import registry
from skal.exceptions import CheckpointMismatchError, ExperimentConfigError

__all__ = ["main", "run_main", "build_parser", "build_run_parser"]

_EXIT_USAGE, _EXIT_DATA = 2, 1


# ----------------------------------------------------------------------------
# Options
# ----------------------------------------------------------------------------


def _add_run_arguments(parser):
    # The registries' names (skal.registry: checked against the registries by the tests).
    methods, flags = list(registry.METHODS), list(registry.DATASETS)
    presets, models = list(registry.PRESETS), list(registry.MODELS)
    parser.add_argument("--method", required=True, choices=methods, metavar="METHOD",
                        help=f"query strategy, one of: {', '.join(methods)}")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--dataset", choices=flags, metavar="DATASET",
                        help=f"MedMNIST 2D dataset, one of: {', '.join(flags)}")
    source.add_argument("--images", metavar="DIR",
                        help="your own folder of PNG/JPEG images instead of a MedMNIST "
                             "dataset (needs --labels); 20%% are held out, stratified, as "
                             "the test split")
    parser.add_argument("--labels", metavar="CSV",
                        help="with --images: a file,label CSV naming every image's class")
    parser.add_argument("--color", default="auto", choices=registry.COLORS,
                        help="with --images: 'auto' (default) keeps the folder's kind, all "
                             "grayscale or all colour; the others convert every image")
    parser.add_argument("--skip-bad", action="store_true",
                        help="with --images: leave out unreadable images (and, with --color "
                             "auto, images of the folder's minority kind), printing how many")
    parser.add_argument("--initial", default="random", choices=registry.INITIALS,
                        metavar="NAME",
                        help="how the first batch is chosen, with no labels: "
                             f"{', '.join(registry.INITIALS)} (default random, the study's; "
                             "the others embed the pool self-supervised first, cached)")
    parser.add_argument("--preset", default="paper", choices=presets,
                        help="protocol: 'paper' reproduces the study (ResNet-18, 50 epochs a "
                             "cycle; default), 'fast' is CPU-sized (small CNN, 8 epochs of "
                             ">= 400 images)")
    parser.add_argument("--trials", type=int, metavar="N",
                        help="number of trials (default: the preset's; paper 5, fast 1)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the first trial; trial t uses seed + t (default 0)")
    parser.add_argument("--cycles", type=int, metavar="N",
                        help="trainings per trial (default: the preset's, 10)")
    parser.add_argument("--budget", type=int, metavar="N",
                        help="items labeled per cycle, also the initial set's size "
                             "(default: the study's budget for the dataset)")
    parser.add_argument("--epochs", type=int, metavar="N",
                        help="epochs per cycle (default: the preset's); the LR milestone "
                             "and LL4AL's epoch_loss scale with it")
    parser.add_argument("--model", choices=models,
                        help="backbone (default: the preset's: paper resnet18, fast small_cnn)")
    parser.add_argument("--dropout", type=float, metavar="P",
                        help="dropout before the head (default 0, the study's network; "
                             "methods needing MC dropout get the preset's 0.3)")
    parser.add_argument("--size", type=int, default=28, choices=registry.SIZES,
                        help="image side: 28 (MedMNIST, the study's; default) or MedMNIST+'s "
                             "64, 128, 224 (files DATASET_SIZE.npz); runs at another size go "
                             "to OUT/PRESET/DATASET_SIZE/")
    parser.add_argument("--weight", dest="loss_weight", type=float, metavar="W",
                        help="weight of LL4AL's and SCAL's ranking loss against the "
                             "classification loss (default: the preset's, 1.0, the study's "
                             "--weight); other methods ignore it")
    parser.add_argument("--device", default="auto",
                        help="'auto' (CUDA when available, else CPU), 'cpu', 'cuda', 'cuda:1'...")
    parser.add_argument("--root", metavar="DIR",
                        help="folder of the MedMNIST .npz files (default: $MEDMNIST_ROOT, "
                             "then medmnist's ~/.medmnist)")
    parser.add_argument("--out", default="runs", metavar="DIR",
                        help="output folder (default runs/)")
    parser.add_argument("--no-verify", dest="verify", action="store_false",
                        help="skip the MD5 check of the data file (for files you made "
                             "yourself in MedMNIST's format)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or summary")
    return parser


_EPILOG = ("Results go to OUT/PRESET/DATASET/METHOD/: results.csv (one row per trial and "
           "cycle; a trial is named by its seed), trial_SEED/results.csv (that trial's rows) "
           "and trial_SEED/labeled.csv (the cycle in which each training-split index was "
           "first trained on), rewritten after every cycle; DATASET is DATASET_SIZE with "
           "--size other than 28. Running the same command again "
           "resumes unfinished trials after their last completed cycle; finished ones are not "
           "recomputed. Exit status: 2 for bad options or settings, 1 when the data cannot be "
           "loaded.")


def build_parser(prog="skal"):
    """The ``skal`` parser, with its ``run`` sub-command."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Active learning for MedMNIST with skorch and modAL.")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    run = commands.add_parser(
        "run", help="run a simulated active-learning experiment",
        description="Run a simulated active-learning experiment (default preset: paper, "
                    "the study's protocol).", epilog=_EPILOG)
    _add_run_arguments(run)
    from skal.label.cli import add_label_commands  # skal label init/serve/query/teach/status

    add_label_commands(commands)
    return parser


def build_run_parser(prog="main.py"):
    """The parser of ``main.py``: the ``run`` options at the top level, as the study's script."""
    parser = argparse.ArgumentParser(
        prog=prog, epilog=_EPILOG,
        description="Reproduce the MedMNIST active-learning study, e.g. "
                    "`python main.py --method random --dataset organamnist` "
                    "(default preset: paper).")
    return _add_run_arguments(parser)


# ----------------------------------------------------------------------------
# Running
# ----------------------------------------------------------------------------


def _check_args(args, check_settings):
    check_settings(trials=args.trials, epochs=args.epochs, budget=args.budget,
                   cycles=args.cycles, dropout=args.dropout, device=args.device, seed=args.seed,
                   loss_weight=args.loss_weight, size=args.size)
    if args.trials is not None:
        check_settings(seed=args.seed + args.trials - 1)


def _run(args, err):
    # Imported here, after parsing, so that --help and bad options answer at once.
    from tqdm import tqdm

    from skal import runner
    from skal.data import dataset_info
    from skal.protocols import get_preset

    preset = get_preset(args.preset)
    _check_args(args, runner.check_settings)
    if (args.images is None) != (args.labels is None):
        raise runner.SettingsError("--images and --labels go together: a folder of images and "
                                   "the file,label CSV of their classes.")
    n_trials = preset.n_trials if args.trials is None else args.trials
    if args.images is not None:
        from skal.image_folder import load_image_folder

        folder = load_image_folder(args.images, size=args.size, color=args.color,
                                   on_error="skip" if args.skip_bad else "raise")
        if folder.skipped:
            shown = "; ".join(f"{file} ({why})" for file, why in folder.skipped[:5])
            print(f"skipped {len(folder.skipped)} of "
                  f"{len(folder.files) + len(folder.skipped)} image file(s) (--skip-bad): "
                  f"{shown}{'; ...' if len(folder.skipped) > 5 else ''}", file=err)
        info, data = runner.load_folder(folder, args.labels, size=args.size)
    else:
        info = dataset_info(args.dataset)
        data = runner.load_data(info.flag, root=args.root, verify=args.verify,
                                eval_split=preset.eval_split, size=args.size)
    folder = runner.RunFolder(args.out, preset.name, info.flag, args.method, size=args.size)
    seeds = [args.seed + t for t in range(n_trials)]
    quiet = args.quiet

    trial_bar = tqdm(seeds, desc="trials", position=0, disable=quiet, dynamic_ncols=True)
    loaded = 0
    for seed in trial_bar:
        experiment = runner.run_trial(
            args.method, info, seed, preset=preset, out=args.out, epochs=args.epochs,
            budget=args.budget, cycles=args.cycles, model=args.model, dropout=args.dropout,
            loss_weight=args.loss_weight, size=args.size, device=args.device, data=data,
            progress=not quiet, callbacks=[folder], initial=args.initial)
        folder.refresh()  # also covers cycles loaded from the checkpoint
        if experiment.n_resumed_cycles_ == experiment.n_cycles:
            loaded += 1
            if not quiet:
                tqdm.write(f"trial {seed}: already complete in {folder.trial_dir(seed)}; "
                           f"loaded, not recomputed", file=err)
        elif experiment.n_resumed_cycles_ and not quiet:
            tqdm.write(f"trial {seed}: resumed after cycle {experiment.n_resumed_cycles_}",
                       file=err)
    trial_bar.close()
    if not quiet:
        if loaded == len(seeds):
            print(f"All {loaded} trial(s) were already complete; nothing was recomputed.",
                  file=err)
        print(runner.summary(folder.rows, set(seeds)))
        print(f"results: {folder.csv_path}")
    return 0


def _execute(args, prog):
    # Imported here, not at the top: they bring torch and medmnist (see the module's docstring).
    from skal.data import ChecksumError, DatasetError, DatasetFormatError, DatasetNotFoundError
    from skal._remedy import command_line_text
    from skal.image_folder import ImageFolderError
    from skal.runner import SettingsError

    err = sys.stderr
    try:
        return _run(args, err)
    except KeyboardInterrupt:
        print(f"{prog}: interrupted; run the same command again to resume after the last "
              f"completed cycle.", file=err)
        return 130
    except CheckpointMismatchError as exc:
        folder = exc.path.parent.parent if exc.path is not None else args.out
        print(f"{prog}: error: {folder} holds a run made with other settings "
              f"({', '.join(exc.differing)} differ); rerun with the same options, use "
              f"another --out, or delete that folder to start over.", file=err)
        return _EXIT_USAGE
    # Messages name the flags that fix them, not the library's parameters (skal._remedy).
    except (DatasetNotFoundError, ChecksumError, DatasetFormatError, ImageFolderError) as exc:
        print(f"{prog}: error: {command_line_text(exc)}", file=err)
        return _EXIT_DATA
    except (SettingsError, ExperimentConfigError, DatasetError) as exc:
        print(f"{prog}: error: {command_line_text(exc)}", file=err)
        return _EXIT_USAGE


def main(argv=None):
    """Entry point of the ``skal`` command.

    Parameters
    ----------
    argv : list of str, optional
        Arguments after the program name, e.g. ``['run', '--method', 'random',
        '--dataset', 'breastmnist']``; ``sys.argv[1:]`` by default.

    Returns
    -------
    int
        Exit status (argparse exits with 2 itself for unknown options and choices).
    """
    args = build_parser("skal").parse_args(argv)
    if args.command == "label":
        from skal.label.cli import run_label

        return run_label(args)
    return _execute(args, "skal")


def run_main(argv=None, prog="main.py"):
    """Entry point of ``main.py``: the ``run`` options without the sub-command."""
    args = build_run_parser(prog).parse_args(argv)
    return _execute(args, prog)


def __getattr__(name):
    # Checkpoints written by skal before skal.runner existed pickle the progress
    # bar as skal.cli.EpochProgressBar: resolve it lazily (PEP 562), so that they
    # still load without making ``skal --help`` import skorch.
    if name == "EpochProgressBar":
        from skal.runner import EpochProgressBar

        return EpochProgressBar
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
