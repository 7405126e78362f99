"""Both argument checks run: skal's declared constraints and skorch's own (issue 16.3).

skal's ``_validate_params`` used to replace skorch's, so a misspelt skorch
argument (``optimizer_momentum`` for ``optimizer__momentum``) trained as if
it had not been given.
"""

import numpy as np
import pytest
from skorch.callbacks import LRScheduler
from sklearn.utils._param_validation import InvalidParameterError

from skal.estimator import ImageClassifier, LossPredictionClassifier

TYPO = "Got an unexpected argument optimizer_momentum, did you mean optimizer__momentum?"
CLASSES = [ImageClassifier, LossPredictionClassifier]


def data(n=16):
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (n, 28, 28), dtype=np.uint8), np.arange(n) % 2


def net(cls, **kwargs):
    params = dict(n_classes=2, n_channels=1, max_epochs=1, batch_size=8, random_state=0,
                  device="cpu")
    params.update(kwargs)
    return cls("small_cnn", **params)


@pytest.mark.parametrize("cls", CLASSES)
def test_a_misspelt_skorch_argument_is_refused_as_skorch_refuses_it(cls):
    with pytest.raises(ValueError, match=TYPO):
        net(cls, optimizer_momentum=0.5).fit(*data())


@pytest.mark.parametrize("cls", CLASSES)
def test_an_unknown_argument_is_refused(cls):
    # A typo of one of skal's own parameters lands in skorch's **kwargs.
    with pytest.raises(ValueError, match=r"unexpected argument\(s\) loss_weigth"):
        net(cls, loss_weigth=2.0).fit(*data())


@pytest.mark.parametrize("cls", CLASSES)
def test_skals_declared_constraints_still_run_first(cls):
    with pytest.raises(InvalidParameterError, match="'batch_size' parameter"):
        net(cls, batch_size=0, optimizer_momentum=0.5).fit(*data())


@pytest.mark.parametrize("cls", CLASSES)
def test_a_warm_continued_fit_checks_both_too(cls):
    clf = net(cls, warm_start=True).fit(*data())
    clf.batch_size = -1  # as a careless attribute write would (set_params is checked too)
    with pytest.raises(InvalidParameterError, match="'batch_size' parameter"):
        clf.fit(*data())
    clf.batch_size = 8
    with pytest.raises(ValueError, match=TYPO):
        clf.set_params(optimizer_momentum=0.5)


@pytest.mark.parametrize("cls", CLASSES)
def test_valid_dunder_arguments_still_reach_their_component(cls):
    scheduler = LRScheduler(policy="StepLR", step_size=1, gamma=0.5)
    clf = net(cls, optimizer__momentum=0.5, module__dropout=0.25, iterator_train__shuffle=False,
              callbacks=[("schedule", scheduler)], callbacks__schedule__gamma=0.25,
              max_epochs=2).fit(*data())
    assert clf.optimizer_.param_groups[0]["momentum"] == 0.5
    assert clf.module_.dropout_rate == 0.25  # the small CNN's default is 0
    assert dict(clf.callbacks_)["schedule"].gamma == 0.25
    # StepLR multiplies the default lr 0.001 by the set gamma after each epoch.
    assert clf.history[:, "event_lr"] == pytest.approx([0.001, 0.00025])
