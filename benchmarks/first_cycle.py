"""How well the first cycle's model decides: ACC and balanced accuracy after cycle 1.

The fast preset's first model trains on one budget of labels (pneumoniamnist
100, breastmnist 10, retinamnist 22). This prints, per dataset, the test
split's majority rate and the first model's ACC and balanced accuracy (mean
± std over seeds, ddof=1 as in the report; ACC's minimum too), for the fast
preset as it is or with overrides of its fields, e.g. ``--set
min_epoch_size=0`` (one pass an epoch, as the preset trained before it
presented at least 400 images an epoch)::

    python benchmarks/first_cycle.py
    python benchmarks/first_cycle.py --set min_epoch_size=0 --seeds 0 1 2 3 4

Only cycle 1 is trained (it does not depend on later cycles), with the
``random`` strategy's network (LL4AL/SCAL and BALD build other networks).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import numpy as np
import torch
from sklearn.metrics import balanced_accuracy_score

from skal.data import dataset_info, load_medmnist
from skal.protocols import build_experiment, get_preset, trial_globals


def first_cycle(preset, flag, seeds, root=None):
    """Per seed: (ACC, balanced accuracy, seconds) of cycle 1; and the majority rate."""
    info = dataset_info(flag)
    X, y = load_medmnist(flag, "train", root=root)
    X_test, y_test = load_medmnist(flag, "test", root=root)
    majority = np.bincount(y_test).max() / len(y_test)
    rows = []
    for seed in seeds:
        al = build_experiment(preset, "random", info, seed, cycles=1, device="cpu")
        start = time.perf_counter()
        with trial_globals(seed):
            al.fit(X, y, X_eval=X_test, y_eval=y_test)
        rows.append((al.learning_curve_[0]["acc"],
                     balanced_accuracy_score(y_test, al.predict(X_test)),
                     time.perf_counter() - start))
    return majority, np.array(rows)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+",
                        default=["pneumoniamnist", "breastmnist", "retinamnist"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3, 4])
    parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                        help="override a field of the fast preset (VALUE as JSON)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--root", help="data root (default: $MEDMNIST_ROOT, then skal's)")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    overrides = {}
    for item in args.set:
        field, _, value = item.partition("=")
        overrides[field] = json.loads(value)
    preset = dataclasses.replace(get_preset("fast"), **overrides)
    print(f"fast preset{' with ' + json.dumps(overrides) if overrides else ''}, "
          f"seeds {args.seeds}, {args.threads} threads")
    for flag in args.datasets:
        majority, rows = first_cycle(preset, flag, args.seeds, root=args.root)
        acc, balanced, seconds = rows.T
        print(f"{flag:>15}: majority {majority:.3f} | cycle-1 ACC {acc.mean():.3f} ± "
              f"{acc.std(ddof=1):.3f} (min {acc.min():.3f}) | balanced {balanced.mean():.3f} ± "
              f"{balanced.std(ddof=1):.3f} | {seconds.mean():.1f} s a run")


if __name__ == "__main__":
    main()
