"""When have I labeled enough? Stopping rules and a learning-curve forecast.

Two kinds of evidence, usable during a simulated experiment
(:class:`skal.callbacks.StoppingRules`) and while a person labels
(``skal label status``):

Stabilizing predictions (Bloodgood & Vijay-Shanker 2009)
    Cohen's kappa (``sklearn.metrics.cohen_kappa_score``) between the
    predictions of successive models on a fixed *stop set* of unlabeled
    images. Needs no labels: once the last ``window`` kappas average at least
    ``threshold`` (the paper: 3 and 0.99), the model has stopped changing its
    mind and labeling can stop (:func:`stabilizing_predictions`).
A learning-curve forecast
    Held-out accuracy against the number of labels, fitted with an inverse
    power law ``acc(n) = a - b * n**(-c)`` (``scipy.optimize.curve_fit``),
    predicts what the next N labels will add, with an interval from the
    fit's parameter covariance (:func:`forecast_gain`).
    :func:`forecast_stop` stops when that gain falls below a threshold;
    :func:`plateau_stop` is the simplest accuracy-based rule, for comparison.

Each rule returns the position (0-based cycle) at which it would stop, or
None while it would go on.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import OptimizeWarning, curve_fit
from sklearn.metrics import cohen_kappa_score

__all__ = ["kappa", "kappas", "agreement", "stabilizing_predictions", "power_law",
           "fit_power_law", "Forecast", "forecast_gain", "forecast_says_stop", "forecast_stop",
           "plateau_stop", "assess", "describe"]


# ----------------------------------------------------------------------------
# Stabilizing predictions
# ----------------------------------------------------------------------------


def kappa(previous, current):
    """Cohen's kappa between two models' predictions on the stop set.

    Parameters
    ----------
    previous, current : array-like of shape (S,)
        Predicted labels of the same S items.

    Returns
    -------
    float
        ``sklearn.metrics.cohen_kappa_score``; 1.0 when the two agree on
        every item (kappa is 0/0 when both predict one class throughout, yet
        such models have not changed at all).
    """
    previous, current = np.asarray(previous).reshape(-1), np.asarray(current).reshape(-1)
    if previous.shape != current.shape:
        raise ValueError(f"Predictions of different stop sets: {previous.shape} and "
                         f"{current.shape}; use one fixed stop set for every model.")
    if np.array_equal(previous, current):
        return 1.0
    return float(cohen_kappa_score(previous, current))


def kappas(predictions):
    """Kappa between each model and the one before: ``len(predictions) - 1`` values.

    Parameters
    ----------
    predictions : sequence of array-like of shape (S,)
        One per model, in order.

    Returns
    -------
    ndarray of shape (len(predictions) - 1,), float64
    """
    return np.array([kappa(a, b) for a, b in zip(predictions[:-1], predictions[1:])],
                    dtype=np.float64)


def agreement(predictions):
    """The fraction of stop-set items on which all the given models agree.

    Parameters
    ----------
    predictions : sequence of array-like of shape (S,)

    Returns
    -------
    float in [0, 1]
    """
    stacked = np.stack([np.asarray(p).reshape(-1) for p in predictions])
    return float(np.mean(np.all(stacked == stacked[0], axis=0)))


def stabilizing_predictions(predictions, threshold=0.99, window=3):
    """Where the stabilizing-predictions rule stops: the first model after which the
    last ``window`` kappas average at least ``threshold``.

    Parameters
    ----------
    predictions : sequence of array-like of shape (S,)
        Each successive model's predictions on one fixed stop set.
    threshold : float, default=0.99
    window : int, default=3
        The rule needs ``window + 1`` models.

    Returns
    -------
    int or None
        Position in ``predictions`` of the model at which to stop; None
        when the rule has not fired.
    """
    values = kappas(predictions)
    window = int(window)
    for end in range(window, len(values) + 1):
        if values[end - window:end].mean() >= threshold:
            return end  # kappa k compares models k and k + 1: `end` is a model position
    return None


# ----------------------------------------------------------------------------
# The learning-curve forecast
# ----------------------------------------------------------------------------


def power_law(n, a, b, c):
    """The inverse power law of learning curves: ``a - b * n**(-c)``.

    ``a`` is the accuracy the curve tends to, ``b`` how far below it the
    curve starts (at n = 1), ``c`` how fast it closes the gap.
    """
    return a - b * np.power(np.asarray(n, dtype=np.float64), -c)


def fit_power_law(n_labeled, accuracy):
    """Fit :func:`power_law` to a learning curve.

    Parameters
    ----------
    n_labeled : array-like of shape (K,), K >= 3
        Labels each model was trained on, increasing.
    accuracy : array-like of shape (K,)
        Held-out accuracy of each model, in [0, 1].

    Returns
    -------
    params : ndarray of shape (3,)
        ``(a, b, c)``, with ``0 <= a <= 1``, ``b >= 0``, ``0 < c <= 3``.
    covariance : ndarray of shape (3, 3)
        ``curve_fit``'s; infinite entries when the points cannot determine it
        (three points).
    """
    n = np.asarray(n_labeled, dtype=np.float64)
    acc = np.asarray(accuracy, dtype=np.float64)
    if n.ndim != 1 or n.shape != acc.shape or len(n) < 3:
        raise ValueError(f"A power-law fit needs at least 3 (n_labeled, accuracy) points; "
                         f"got {len(n)}.")
    if np.any(np.diff(n) <= 0) or n[0] <= 0:
        raise ValueError("n_labeled must be positive and increasing.")
    a0 = min(max(acc.max() + 0.01, 0.0), 1.0)
    b0 = max((a0 - acc[0]) * n[0] ** 0.5, 1e-6)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", OptimizeWarning)  # covariance not estimable: inf
        params, covariance = curve_fit(power_law, n, acc, p0=(a0, b0, 0.5),
                                       bounds=([0.0, 0.0, 1e-3], [1.0, np.inf, 3.0]),
                                       maxfev=20000)
    return params, covariance


@dataclass(frozen=True)
class Forecast:
    """What the next labels are forecast to add to the held-out accuracy.

    Attributes
    ----------
    n_now, n_next : int
        Labels now, and after the next ``n_next - n_now``.
    gain : float
        Forecast accuracy at ``n_next`` minus at ``n_now`` (fraction, not points).
    low, high : float
        The interval's ends (``level`` central mass of the gain under the
        fit's parameter covariance); NaN when the fit cannot give one.
    accuracy_next : float
        Forecast accuracy at ``n_next``.
    params : tuple of float
        The fitted ``(a, b, c)``.
    level : float
    """

    n_now: int
    n_next: int
    gain: float
    low: float
    high: float
    accuracy_next: float
    params: tuple
    level: float = 0.8


def forecast_gain(n_labeled, accuracy, n_more, level=0.8, n_draws=2000, random_state=0,
                  noise=True):
    """Forecast the held-out accuracy gained by ``n_more`` labels beyond the last point.

    Fits :func:`fit_power_law`, evaluates it at the last point's labels and
    ``n_more`` more, and takes the interval from ``n_draws`` parameter draws
    from the fit's normal approximation (mean the fit, the fit's covariance),
    plus, with ``noise``, the scatter of a measured accuracy around the curve
    (normal, the fit's residual variance ``sum(r**2) / (K - 3)``, once for each
    of the two accuracies a measured gain subtracts). Without it the interval
    is that of the curve's mean only, which on the committed grid held the
    measured gain two cycles ahead in 8 % of cases for an 80 % interval
    (``benchmarks/results/stopping/``).

    Parameters
    ----------
    n_labeled, accuracy : array-like of shape (K,), K >= 3
    n_more : int
        Labels to come.
    level : float, default=0.8
        Central mass of the interval.
    n_draws : int, default=2000
    random_state : None or int, default=0
    noise : bool, default=True
        Interval of the gain as measured (curve and measurement scatter), or
        of the curve's mean gain only.

    Returns
    -------
    Forecast
    """
    params, covariance = fit_power_law(n_labeled, accuracy)
    n_now = float(np.asarray(n_labeled)[-1])
    n_next = n_now + float(n_more)
    gain = float(power_law(n_next, *params) - power_law(n_now, *params))
    low = high = float("nan")
    if np.all(np.isfinite(covariance)):
        rng = np.random.default_rng(random_state)
        draws = rng.multivariate_normal(params, covariance, size=int(n_draws),
                                        check_valid="ignore")
        draws[:, 2] = np.clip(draws[:, 2], 1e-3, None)  # c > 0: the law's shape
        draws[:, 1] = np.clip(draws[:, 1], 0.0, None)
        gains = power_law(n_next, *draws.T) - power_law(n_now, *draws.T)
        n, acc = np.asarray(n_labeled, dtype=np.float64), np.asarray(accuracy, dtype=np.float64)
        if noise and len(n) > 3:
            sigma = np.sqrt(np.sum((acc - power_law(n, *params)) ** 2) / (len(n) - 3))
            gains = gains + rng.normal(0.0, sigma * np.sqrt(2.0), size=len(gains))
        low, high = (float(v) for v in np.quantile(gains, [(1 - level) / 2, (1 + level) / 2]))
    return Forecast(int(n_now), int(n_next), gain, low, high,
                    float(power_law(n_next, *params)), tuple(float(p) for p in params),
                    float(level))


def forecast_says_stop(forecast, n_points, min_gain=0.01, bound="point", min_points=4):
    """The forecast rule, declared once: stop when the forecast gain is below ``min_gain``.

    Parameters
    ----------
    forecast : Forecast
        Of a curve of ``n_points`` points.
    n_points : int
    min_gain : float, default=0.01
    bound : {'point', 'high'}, default='point'
        Compare the forecast itself, or the interval's upper end (stops
        later; never fires without an interval).
    min_points : int, default=4
        Points needed before the rule may fire (a 3-point fit interpolates).

    Returns
    -------
    bool
    """
    if bound not in ("point", "high"):
        raise ValueError(f"bound must be 'point' or 'high', got {bound!r}.")
    value = forecast.gain if bound == "point" else forecast.high
    return bool(n_points >= min_points and np.isfinite(value) and value < min_gain)


def forecast_stop(n_labeled, accuracy, n_more, min_gain=0.01, bound="point", min_points=4):
    """Where the forecast rule stops: the first cycle whose forecast gain for the next
    ``n_more`` labels is below ``min_gain``.

    Parameters
    ----------
    n_labeled, accuracy : array-like of shape (K,)
        The learning curve so far (each prefix is fitted on its own).
    n_more : int
        The horizon, e.g. two cycles' labels.
    min_gain, bound, min_points
        See :func:`forecast_says_stop` (1 point; the forecast itself; 4).

    Returns
    -------
    int or None
        Position (0-based cycle) at which to stop; None when it never fires.
    """
    n_labeled, accuracy = np.asarray(n_labeled), np.asarray(accuracy)
    for end in range(max(int(min_points), 3), len(n_labeled) + 1):
        f = forecast_gain(n_labeled[:end], accuracy[:end], n_more)
        if forecast_says_stop(f, end, min_gain, bound, min_points):
            return end - 1
    return None


def plateau_stop(accuracy, min_gain=0.01, window=2):
    """Where the plateau rule stops: the first cycle at which accuracy has not risen by
    ``min_gain`` over the best of the cycles before the last ``window``.

    Parameters
    ----------
    accuracy : array-like of shape (K,)
    min_gain : float, default=0.01
    window : int, default=2

    Returns
    -------
    int or None
    """
    accuracy = np.asarray(accuracy, dtype=np.float64)
    window = int(window)
    for end in range(window + 1, len(accuracy) + 1):
        before = accuracy[:end - window].max()
        if accuracy[end - window:end].max() < before + min_gain:
            return end - 1
    return None


def assess(predictions=None, n_labeled=None, accuracy=None, n_more=100, window=3,
           threshold=0.99):
    """What the rules say now, for a person labeling: the numbers and one sentence.

    Parameters
    ----------
    predictions : sequence of array-like of shape (S,), optional
        Successive models' predictions on one fixed stop set, oldest first.
    n_labeled, accuracy : array-like of shape (K,), optional
        The held-out learning curve (labels, accuracy as a fraction).
    n_more : int, default=100
        Labels the forecast looks ahead.
    window : int, default=3
        Models compared by the agreement.
    threshold : float, default=0.99
        :func:`stabilizing_predictions`' threshold, applied to the
        ``window - 1`` kappas of the last ``window`` models.

    Returns
    -------
    dict
        JSON-ready: ``agreement`` (fraction of the stop set on which the last
        ``window`` models agree, or None), ``kappa`` (mean kappa of their
        successive pairs, or None), ``stable`` (the stabilizing-predictions
        rule fires on them),
        ``n_models``, ``window``; ``forecast``: ``n_more``, ``gain``, ``low``,
        ``high`` (fractions; the interval ends None when the fit cannot give
        one) or None before 3 curve points, ``n_points``; and ``sentence``,
        e.g. ``'the last 3 models agree on 99.2 % of the stop set; the next
        100 labels are forecast to add 0.4 points (0.1-0.9)'``, whose parts
        that lack data say what they wait for.
    """
    window = int(window)
    n_models = 0 if predictions is None else len(predictions)
    result = {"n_models": n_models, "window": window, "agreement": None, "kappa": None,
              "stable": False, "forecast": None,
              "n_points": 0 if n_labeled is None else len(n_labeled)}
    parts = []
    if n_models >= window:
        last = list(predictions[-window:])
        result["agreement"] = agreement(last)
        result["kappa"] = float(kappas(last).mean())
        # The stabilizing-predictions rule itself, on these models' kappas only.
        result["stable"] = stabilizing_predictions(last, threshold, window - 1) is not None
        parts.append(f"the last {window} models agree on "
                     f"{100 * result['agreement']:.1f} % of the stop set")
    else:
        parts.append(f"stop-set agreement needs {window} models ({n_models} so far)")
    if result["n_points"] >= 3:
        f = forecast_gain(n_labeled, accuracy, n_more)
        bounded = bool(np.isfinite(f.low))
        result["forecast"] = {"n_more": int(n_more), "gain": f.gain,
                              "low": f.low if bounded else None,
                              "high": f.high if bounded else None}
        interval = (f" ({100 * f.low:.1f}-{100 * f.high:.1f})" if bounded
                    else " (no interval yet: too few points)")
        parts.append(f"the next {int(n_more)} labels are forecast to add "
                     f"{100 * f.gain:.1f} points{interval}")
    else:
        parts.append(f"the forecast needs 3 evaluated models ({result['n_points']} so far)")
    result["sentence"] = "; ".join(parts)
    return result


def describe(predictions=None, n_labeled=None, accuracy=None, n_more=100, window=3):
    """One sentence of what the rules say now: :func:`assess`'s ``sentence``.

    Returns
    -------
    str
    """
    return assess(predictions, n_labeled, accuracy, n_more=n_more, window=window)["sentence"]
