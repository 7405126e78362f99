"""The page's small learning-curve plot: held-out accuracy against training labels."""

from __future__ import annotations

import io

__all__ = ["learning_curve_svg"]


def learning_curve_svg(curve):
    """An SVG plot of held-out accuracy after each training.

    Parameters
    ----------
    curve : list of dict
        ``curve.csv`` rows: ``n_train``, ``n_holdout``, ``accuracy`` (empty
        while the held-out slice is too small).

    Returns
    -------
    str
        A small SVG document (about 320 x 200 px).
    """
    from matplotlib.figure import Figure  # no pyplot: safe in the server's worker thread

    points = [(int(r["n_train"]), float(r["accuracy"]), int(r["n_holdout"]))
              for r in curve if r.get("accuracy") not in (None, "")]
    fig = Figure(figsize=(3.4, 2.1), dpi=96)
    ax = fig.add_subplot()
    if points:
        xs, ys, ns = zip(*points)
        ax.plot(xs, ys, marker="o", markersize=3, color="#1f6feb")
        ax.set_title(f"held-out accuracy ({ns[-1]} labels held out)", fontsize=8)
    else:
        ax.set_title("held-out accuracy: not enough labels yet", fontsize=8)
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("training labels", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg")
    return out.getvalue()
