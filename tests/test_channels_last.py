"""The fast preset's optional channels-last training: same network, other memory order."""

import dataclasses

import numpy as np
import torch

from skal.estimator import ChannelsLast, memory_format_of
from skal.protocols import PRESETS, build_estimator, get_preset


def _net(channels_last):
    preset = dataclasses.replace(get_preset("fast"), channels_last=channels_last, epochs=1,
                                 min_epoch_size=0)
    return build_estimator(preset, "margin", "breastmnist", seed=0)


def test_on_in_the_fast_preset_only():
    # The committed grid was run with it (tests/test_first_cycle.py reads that grid).
    assert {name for name, p in PRESETS.items() if p.channels_last} == {"fast"}
    assert "channels_last" not in dict(_net(False).callbacks)
    assert isinstance(dict(_net(True).callbacks)["channels_last"], ChannelsLast)


def test_same_function_in_channels_last_order():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 256, (40, 28, 28), dtype=np.uint8)
    y = np.arange(40) % 2
    net = _net(True).initialize()
    before = net.predict_proba(X)
    ChannelsLast().on_train_begin(net)
    conv = net.module_.stage1[0].weight
    assert conv.is_contiguous(memory_format=torch.channels_last) and not conv.is_contiguous()
    # The same weights, reordered in memory: the same outputs up to float rounding.
    np.testing.assert_allclose(net.predict_proba(X), before, atol=1e-5)
    # The input follows the weights' order (no reorder before each convolution).
    assert memory_format_of(net.module_) is torch.channels_last
    assert net._prepare(X[:4]).is_contiguous(memory_format=torch.channels_last)
    plain = _net(False).initialize()
    assert memory_format_of(plain.module_) is torch.contiguous_format
    assert plain._prepare(X[:4]).is_contiguous()
    fitted = _net(True).fit(X, y)
    assert fitted.module_.stage1[0].weight.is_contiguous(memory_format=torch.channels_last)
    assert not _net(False).fit(X, y).module_.stage1[0].weight.is_contiguous(
        memory_format=torch.channels_last)
