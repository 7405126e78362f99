"""Training speed of ``ImageClassifier.fit`` against a plain PyTorch loop.

Both build a fresh network of the same architecture inside their timed span
(skal's ``fit`` builds its own) and train it on the same uint8 images with the
same batch size, optimiser and number of epochs; both convert each batch to
normalised float on the device. The initial weights are different random
draws, which does not change the cost of a step. The runs alternate (plain, skal,
plain, skal, ...) so that drift in the machine's speed hits both, and the
median over repeats is reported as images per second and as the ratio
skal / plain (1.0 means no overhead).

Usage::

    python benchmarks/train_speed.py                       # both models, CPU or GPU
    python benchmarks/train_speed.py --models small_cnn --n-images 4096 --repeats 5
    python benchmarks/train_speed.py --device cuda --n-images 20000
    python benchmarks/train_speed.py --models resnet18 --size 64   # MedMNIST+ 64x64 images
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import numpy as np
import torch

from skal.estimator import ImageClassifier, images_to_float, resolve_device
from skal.models import get_model_class


def plain_fit(module, X, y, *, epochs, batch_size, lr, device, seed):
    """The loop a PyTorch user would write by hand: shuffle, slice, step."""
    module.to(device).train()
    optimizer = torch.optim.SGD(module.parameters(), lr=lr, momentum=0.9, weight_decay=5e-4)
    criterion = torch.nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        order = torch.randperm(len(X), generator=generator).numpy()
        for start in range(0, len(X), batch_size):
            idx = order[start:start + batch_size]
            xb = images_to_float(torch.from_numpy(X[idx]).to(device), 3)
            yb = torch.from_numpy(y[idx]).to(device)
            optimizer.zero_grad()
            loss = criterion(module(xb), yb)
            loss.backward()
            optimizer.step()
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def skal_fit(model, X, y, *, epochs, batch_size, lr, device, seed):
    net = ImageClassifier(model, n_classes=int(y.max()) + 1, max_epochs=epochs,
                          batch_size=batch_size, lr=lr, device=device, random_state=seed)
    net.fit(X, y)
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def measure(model, X, y, *, epochs, batch_size, device, repeats):
    n_classes = int(y.max()) + 1
    times = {"plain": [], "skal": []}
    for repeat in range(repeats + 1):  # the first round warms up both paths
        torch.manual_seed(repeat)
        start = time.perf_counter()
        module = get_model_class(model)(n_classes=n_classes, in_channels=3)
        plain_fit(module, X, y, epochs=epochs, batch_size=batch_size, lr=1e-3,
                  device=device, seed=repeat)
        plain = time.perf_counter() - start
        start = time.perf_counter()
        skal_fit(model, X, y, epochs=epochs, batch_size=batch_size, lr=1e-3,
                 device=device, seed=repeat)
        skal = time.perf_counter() - start
        if repeat:
            times["plain"].append(plain)
            times["skal"].append(skal)
    images = len(X) * epochs
    plain_ips = images / statistics.median(times["plain"])
    skal_ips = images / statistics.median(times["skal"])
    return plain_ips, skal_ips


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["resnet18", "small_cnn"])
    parser.add_argument("--n-images", type=int, default=None,
                        help="training images (default: 512 for resnet18 and 4096 "
                             "for small_cnn on CPU, 20000 on CUDA)")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=32, help="the study's 32 by default")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--size", type=int, default=28,
                        help="image side (default 28, the study's; 64, 128, 224: MedMNIST+)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--json", metavar="PATH",
                        help="also write the measurements there, one record per model "
                             "(benchmarks/study_time.py reads them)")
    args = parser.parse_args(argv)

    device = resolve_device(args.device)
    print(f"device={device} torch={torch.__version__} threads={torch.get_num_threads()} "
          f"batch={args.batch_size} epochs={args.epochs} repeats={args.repeats} (median) "
          f"size={args.size}")
    print(f"{'model':<10} {'images':>7} {'plain img/s':>12} {'skal img/s':>11} {'ratio':>6}")
    records = []
    for model in args.models:
        n = args.n_images or (20000 if device.startswith("cuda") else
                              512 if model == "resnet18" else 4096)
        rng = np.random.default_rng(0)
        X = rng.integers(0, 256, (n, args.size, args.size), dtype=np.uint8)
        y = rng.integers(0, 9, n).astype(np.int64)
        plain_ips, skal_ips = measure(model, X, y, epochs=args.epochs, batch_size=args.batch_size,
                                      device=device, repeats=args.repeats)
        print(f"{model:<10} {n:>7} {plain_ips:>12.1f} {skal_ips:>11.1f} {skal_ips / plain_ips:>6.3f}")
        records.append({"model": model, "size": args.size, "device": str(device),
                        "batch_size": args.batch_size, "n_images": n,
                        "plain_images_per_second": plain_ips, "skal_images_per_second": skal_ips})
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(records, fh, indent=1)


if __name__ == "__main__":
    main()
