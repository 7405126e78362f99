"""skal.stopping and the StoppingRules callback: known answers on scripted models and exact curves."""

import numpy as np
import pytest

from skal.callbacks import StoppingRules
from skal.stopping import (agreement, assess, describe, fit_power_law, forecast_gain, forecast_stop,
                           kappa, kappas, plateau_stop, power_law, stabilizing_predictions)


def scripted_models():
    """Predictions of 6 models on a 10-item stop set: the 3rd model onwards changes one item,
    then none."""
    base = np.array([0, 1, 0, 1, 0, 1, 0, 1, 0, 1])
    flipped = base.copy()
    flipped[0] = 1
    return [base[::-1].copy(), base, flipped, flipped, flipped, flipped]


def test_kappa_known_values():
    a = np.array([0, 0, 1, 1])
    assert kappa(a, a) == 1.0
    assert kappa(a, 1 - a) == pytest.approx(-1.0)
    # observed agreement 3/4, chance agreement 1/2: (0.75 - 0.5) / 0.5
    assert kappa(a, np.array([0, 1, 1, 1])) == pytest.approx(0.5)
    # both constant: kappa is 0/0, yet the models agree on everything
    assert kappa(np.zeros(5), np.zeros(5)) == 1.0
    with pytest.raises(ValueError, match="fixed stop set"):
        kappa(a, a[:3])


def test_stabilizing_predictions_on_scripted_models():
    preds = scripted_models()
    values = kappas(preds)
    # reversed alternating pattern disagrees everywhere, one flip out of 10 gives 0.8
    assert values[0] == pytest.approx(-1.0)
    assert values[1] == pytest.approx(0.8)
    np.testing.assert_allclose(values[2:], 1.0)
    # last 3 kappas average >= 0.99 first for kappas 2, 3, 4: i.e. at model 5 (0-based)
    assert stabilizing_predictions(preds, threshold=0.99, window=3) == 5
    assert stabilizing_predictions(preds, threshold=0.99, window=2) == 4
    # a lower threshold fires earlier: kappas 1..3 average (0.8 + 1 + 1) / 3 = 0.933
    assert stabilizing_predictions(preds, threshold=0.93, window=3) == 4
    assert stabilizing_predictions(preds[:4], threshold=0.99, window=3) is None


def test_agreement():
    preds = scripted_models()
    assert agreement(preds[2:5]) == 1.0
    assert agreement(preds[1:3]) == pytest.approx(0.9)


def test_forecast_on_an_exact_power_law():
    n = np.arange(1, 9) * 50
    acc = power_law(n, 0.9, 1.5, 0.6)
    params, _ = fit_power_law(n, acc)
    np.testing.assert_allclose(params, [0.9, 1.5, 0.6], rtol=1e-5)
    f = forecast_gain(n, acc, 100)
    truth = power_law(500, 0.9, 1.5, 0.6) - power_law(400, 0.9, 1.5, 0.6)
    assert f.n_now == 400 and f.n_next == 500
    assert f.gain == pytest.approx(truth, rel=1e-5)
    # an exact curve leaves no uncertainty: the interval closes on the forecast
    assert f.low == pytest.approx(truth, rel=1e-3) and f.high == pytest.approx(truth, rel=1e-3)
    assert f.accuracy_next == pytest.approx(power_law(500, 0.9, 1.5, 0.6), rel=1e-6)


def test_forecast_interval_covers_noisy_truth():
    rng = np.random.default_rng(0)
    n = np.arange(1, 11) * 100
    acc = power_law(n, 0.85, 2.0, 0.7) + rng.normal(0, 0.003, len(n))
    f = forecast_gain(n, acc, 200)
    assert f.low <= f.gain <= f.high
    assert f.high - f.low > 0


def test_forecast_needs_three_points():
    with pytest.raises(ValueError, match="at least 3"):
        fit_power_law([10, 20], [0.5, 0.6])
    with pytest.raises(ValueError, match="increasing"):
        fit_power_law([10, 30, 20], [0.5, 0.6, 0.7])


def test_forecast_stop_fires_where_the_exact_gain_drops_below_the_threshold():
    n = np.arange(1, 11) * 100
    acc = power_law(n, 0.9, 3.0, 0.8)
    gains = power_law(n + 200, 0.9, 3.0, 0.8) - acc
    expected = next(i for i in range(3, 10) if gains[i] < 0.01)  # min_points=4: from i=3
    assert forecast_stop(n, acc, 200, min_gain=0.01) == expected
    assert forecast_stop(n, acc, 200, min_gain=1e-9) is None
    with pytest.raises(ValueError, match="bound"):
        forecast_stop(n, acc, 200, bound="low")


def test_plateau_stop():
    acc = [0.5, 0.6, 0.7, 0.705, 0.702, 0.71]
    # at position 4 the last two (0.705, 0.702) do not beat 0.70 + 0.01
    assert plateau_stop(acc, min_gain=0.01, window=2) == 4
    assert plateau_stop([0.5, 0.6, 0.7, 0.8], 0.01, 2) is None


def test_describe_sentence():
    preds = scripted_models()
    n = np.arange(1, 9) * 50
    acc = power_law(n, 0.9, 1.5, 0.6)
    text = describe(preds, n, acc, n_more=100)
    gain = 100 * (power_law(500, 0.9, 1.5, 0.6) - power_law(400, 0.9, 1.5, 0.6))
    assert text.startswith("the last 3 models agree on 100.0 % of the stop set; ")
    assert f"the next 100 labels are forecast to add {gain:.1f} points" in text
    assert describe(preds[:1], n[:2], acc[:2]) == (
        "stop-set agreement needs 3 models (1 so far); the forecast needs 3 evaluated "
        "models (2 so far)")


def test_assess_numbers_and_the_stable_flag():
    # Three models on 4 items: the last changes its mind on one item of each class.
    a = np.array([0, 0, 1, 1])
    b = np.array([0, 1, 1, 0])
    verdict = assess([a, a, b], window=3, threshold=0.99)
    # kappa(a, a) = 1; kappa(a, b): p_o = 0.5, p_e = 0.5 -> 0. Mean 0.5.
    assert verdict["agreement"] == 0.5 and verdict["kappa"] == 0.5
    assert verdict["stable"] is False and verdict["forecast"] is None
    assert verdict["n_models"] == 3 and verdict["n_points"] == 0
    assert verdict["sentence"].startswith("the last 3 models agree on 50.0 % of the stop set; ")
    # The same models unchanged: the stabilizing-predictions rule fires on them.
    same = assess([a, a, a], window=3)
    assert same["agreement"] == 1.0 and same["kappa"] == 1.0 and same["stable"] is True
    # Only the last `window` models count.
    assert assess([b, a, a, a], window=3)["stable"] is True
    n = np.arange(1, 9) * 50
    f = assess(n_labeled=n, accuracy=power_law(n, 0.9, 1.5, 0.6), n_more=100)["forecast"]
    assert f["n_more"] == 100
    assert f["gain"] == pytest.approx(power_law(500, 0.9, 1.5, 0.6) - power_law(400, 0.9, 1.5, 0.6))


class ScriptedExperiment:
    """Stands in for a fitted experiment: each cycle's model predicts the next scripted row."""

    query_size = 50

    def __init__(self, predictions):
        self.predictions = predictions
        self.cycle = 0

    def predict(self, X):
        assert len(X) == 10
        return self.predictions[self.cycle]


def test_stopping_callback_records_when_each_rule_fires():
    preds = scripted_models()
    experiment = ScriptedExperiment(preds)
    callback = StoppingRules(stop_set=np.zeros((10, 4, 4), np.uint8), min_gain=0.01)
    callback.on_fit_begin(experiment, X=np.zeros((30, 4, 4), np.uint8))
    n = np.arange(1, 7) * 50
    acc = power_law(n, 0.9, 3.0, 0.8)
    for cycle in range(6):
        experiment.cycle = cycle
        callback.on_cycle_end(experiment, {"cycle": cycle + 1, "n_labeled": int(n[cycle]),
                                           "acc": float(acc[cycle])})
    # kappa: the rule fires at model 5, trained on 300 labels
    assert callback.stops_["stabilizing_predictions"] == 300
    assert np.isnan(callback.history_[0]["kappa"])
    assert callback.history_[1]["kappa"] == pytest.approx(-1.0)
    assert callback.history_[4]["agreement"] == 1.0
    # forecast with the default horizon, two queries (100 labels)
    gains = power_law(n + 100, 0.9, 3.0, 0.8) - acc
    assert gains[3] > 0.01 > gains[4]  # the exact curve's gain drops below 1 point at 250
    assert callback.stops_["forecast"] == 250
    assert callback.history_[5]["forecast_gain"] == pytest.approx(gains[5], rel=1e-4)
    assert np.isnan(callback.history_[1]["forecast_gain"])


def test_stopping_callback_draws_its_stop_set_from_the_pool():
    callback = StoppingRules(stop_set_size=5, random_state=0)
    X = np.arange(20 * 4).reshape(20, 2, 2)
    callback.on_fit_begin(None, X=X)
    assert callback.stop_set_.shape == (5, 2, 2)
    again = StoppingRules(stop_set_size=5, random_state=0)
    again.on_fit_begin(None, X=X)
    np.testing.assert_array_equal(callback.stop_set_, again.stop_set_)
