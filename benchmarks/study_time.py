"""How long the whole study takes, estimated from a measured training speed.

The study is 9 datasets (those of :data:`skal.protocols.PAPER_BUDGETS`) x 4
methods (random, core-set, LL4AL, SCAL) x 5 trials of the ``paper`` preset:
ResNet-18, 50 epochs a cycle, 10 cycles, the study's budget per cycle. One
cell's work, counted in images through the network:

- training (forward and backward): ``epochs * budget * (1 + 2 + ... + cycles)``,
  since cycle ``c`` trains on ``c * budget`` labeled images;
- forward passes only: the test split after every cycle; after every cycle
  but the last, the query's scored pool (the study's subsample rule,
  :func:`skal.query.subsample_size`; SCAL scores the whole pool, random
  nothing); SCAL's loss-head fine-tuning (``scal_finetune_epochs`` passes
  over the labeled set, the backbone frozen).

A forward pass is counted as :data:`FORWARD_SHARE` (1/3) of a training image:
the backward pass costs about twice the forward one. Divided by the images
per second that ``benchmarks/train_speed.py`` measured for ResNet-18 at the
study's batch size, this gives the study's time with one cell at a time;
with the summed speed of N such measurements run at once (N processes on
one GPU, as ``run_all.py --jobs N`` runs cells), the time with N cells at
once. Data loading, checkpoints and the query's own arithmetic (distances,
k-means) are not counted, so read it as a lower bound within some tens of
percent.

Usage (``benchmarks/gpu_check.sh`` runs it last)::

    python benchmarks/train_speed.py --models resnet18 --device cuda --json one.json
    python benchmarks/study_time.py one.json
    python benchmarks/study_time.py one.json --concurrent a.json b.json c.json d.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from skal.data import dataset_info  # noqa: E402
from skal.protocols import PAPER_BUDGETS, get_preset  # noqa: E402
from skal.query import subsample_size  # noqa: E402

__all__ = ["STUDY_METHODS", "STUDY_TRIALS", "FORWARD_SHARE", "cell_images", "study_seconds",
           "read_speed", "main"]

#: The study's four methods.
STUDY_METHODS = ("random", "coreset", "ll4al", "scal")
#: Trials per (dataset, method).
STUDY_TRIALS = 5
#: A forward-only image's cost, as a share of a training (forward + backward) image.
FORWARD_SHARE = 1 / 3


def cell_images(flag, method, preset="paper", epochs=None, cycles=None):
    """Images one cell of the study passes through the network.

    Parameters
    ----------
    flag : str
        A MedMNIST 2D flag.
    method : str
        ``'random'``, ``'scal'`` or another scoring method (its query
        scores the preset's subsample of the pool).
    preset : str, default='paper'
    epochs, cycles : int, optional
        The preset's by default.

    Returns
    -------
    train : int
        Images trained on (forward and backward), over all cycles.
    forward : int
        Images only passed forward: evaluations, queries, SCAL's fine-tuning.
    """
    preset = get_preset(preset)
    info = dataset_info(flag)
    epochs = preset.epochs if epochs is None else int(epochs)
    cycles = preset.n_cycles if cycles is None else int(cycles)
    budget = preset.budget(info)
    labeled = [budget * c for c in range(1, cycles + 1)]  # trained on in each cycle
    train = epochs * sum(labeled)
    forward = cycles * info.n_samples["test"]
    if method != "random":
        subsample = None if method == "scal" else preset.subsample
        forward += sum(subsample_size(info.n_samples["train"] - n, budget, subsample)
                       for n in labeled[:-1])  # no query after the last training
    if method == "scal":
        forward += preset.scal_finetune_epochs * sum(labeled)
    return int(train), int(forward)


def study_seconds(images_per_second, datasets=tuple(PAPER_BUDGETS), methods=STUDY_METHODS,
                  trials=STUDY_TRIALS, preset="paper"):
    """Seconds the study needs at a given training speed.

    Parameters
    ----------
    images_per_second : float
        Training images per second (forward + backward) of the preset's
        network; the summed speed of N processes for N cells at once.
    datasets, methods : sequence of str
        By default the study's 9 datasets and 4 methods.
    trials : int, default=5
    preset : str, default='paper'

    Returns
    -------
    dict of str to float
        Seconds per dataset (all its methods and trials), in ``datasets``'
        order, and ``'total'``.
    """
    if not images_per_second > 0:
        raise ValueError(f"images_per_second must be positive, got {images_per_second}.")
    seconds = {}
    for flag in datasets:
        work = 0.0
        for method in methods:
            train, forward = cell_images(flag, method, preset)
            work += trials * (train + FORWARD_SHARE * forward)
        seconds[flag] = work / images_per_second
    seconds["total"] = sum(seconds.values())
    return seconds


def read_speed(paths, model="resnet18"):
    """Summed skal training speed of ``model`` over train_speed.py's ``--json`` files.

    Several files are processes that ran at the same time: their speeds add up.

    Returns
    -------
    float or None
        Images per second; None when no file measured ``model``.
    """
    total, found = 0.0, False
    for path in paths:
        for record in json.loads(Path(path).read_text()):
            if record["model"] == model:
                total += float(record["skal_images_per_second"])
                found = True
    return total if found else None


def _hours(seconds):
    return f"{seconds / 3600:8.1f} h"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("speed", nargs="+", help="train_speed.py --json file(s) of one process")
    parser.add_argument("--concurrent", nargs="+", metavar="JSON",
                        help="train_speed.py --json files of N processes run at the same time "
                             "on the same device (for the estimate with --jobs N)")
    args = parser.parse_args(argv)
    try:
        single = read_speed(args.speed)
        together = read_speed(args.concurrent) if args.concurrent else None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        parser.exit(2, f"study_time.py: error: cannot read the speed files ({exc}); give the "
                       f"files train_speed.py --json writes.\n")
    if single is None:
        print("study_time.py: no resnet18 measurement in " + ", ".join(args.speed)
              + "; run train_speed.py --models resnet18 for the study's estimate.")
        return 0
    rates = [("1 cell at a time", single)]
    if together is not None:
        n = len(args.concurrent)
        rates.append((f"{n} cells at once (--jobs {n})", together))
    n_cells = len(PAPER_BUDGETS) * len(STUDY_METHODS) * STUDY_TRIALS
    print(f"The study: {len(PAPER_BUDGETS)} datasets x {len(STUDY_METHODS)} methods "
          f"({', '.join(STUDY_METHODS)}) x {STUDY_TRIALS} trials = {n_cells} cells, paper "
          f"preset; forward-only images counted as {FORWARD_SHARE:.2f} of a training image.")
    for label, rate in rates:
        seconds = study_seconds(rate)
        print(f"at {rate:.0f} training images/s ({label}): {_hours(seconds['total'])} in all")
        for flag in PAPER_BUDGETS:
            print(f"  {flag:<15} {_hours(seconds[flag])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
