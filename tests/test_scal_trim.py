"""SCAL's trim knows the earlier fit's rows by their content, not their position (issue 16.6).

The trim left out the lowest-loss half of ``trim_size`` among the rows seen in
the previous fit and half among the new ones, taking "seen" to mean "the first
``n`` rows" -- true only in modAL's append order.
"""

import numpy as np
import pytest

from skal.estimator import LossPredictionClassifier, _seen_before, row_digests

TRIM = 8
HALF = TRIM // 2


def images(n, seed):
    """Images whose class (of 3) shows in their brightness; distinct rows."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % 3
    X = rng.integers(0, 90, (n, 28, 28)) + (y * 80)[:, None, None]
    return X.astype(np.uint8), y


def lossnet():
    return LossPredictionClassifier("small_cnn", n_classes=3, n_channels=1, max_epochs=1,
                                    batch_size=16, random_state=0, device="cpu",
                                    trim_size=TRIM, warm_start=True)


def lowest(losses, rows, k=HALF):
    """The k lowest-loss rows among ``rows``."""
    rows = np.asarray(rows)
    return set(rows[np.argsort(losses[rows], kind="stable")[:k]].tolist())


@pytest.fixture(scope="module")
def data():
    (XA, yA), (XB, yB) = images(32, 0), images(16, 1)
    return XA, yA, np.concatenate([XA, XB]), np.concatenate([yA, yB])


def test_in_modals_order_half_the_trim_comes_from_the_old_rows_and_half_from_the_new(data):
    XA, yA, X, y = data
    clf = lossnet().fit(XA, yA)
    assert clf.trimmed_indices_.tolist() == list(range(32 - TRIM, 32))  # first fit: the last rows
    losses = clf.true_loss(X, y)  # the model that ranks the rows at the next fit's start
    clf.fit(X, y)
    assert set(clf.trimmed_indices_.tolist()) == lowest(losses, range(32)) | lowest(
        losses, range(32, 48))


def test_shuffled_rows_leave_out_the_same_rows(data):
    XA, yA, X, y = data
    ordered = lossnet().fit(XA, yA)
    losses = ordered.true_loss(X, y)
    ordered.fit(X, y)
    expected = set(ordered.trimmed_indices_.tolist())

    perm = np.random.default_rng(3).permutation(len(X))
    shuffled = lossnet().fit(XA, yA)  # the same model as `ordered` had (same seed, same rows)
    shuffled.fit(X[perm], y[perm])
    assert set(perm[shuffled.trimmed_indices_].tolist()) == expected
    # The position rule ("the first 32 rows are the old ones") picks other rows here.
    by_position = lowest(losses[perm], range(32)) | lowest(losses[perm], range(32, 48))
    assert {int(perm[i]) for i in by_position} != expected


def test_a_warm_fit_on_fresh_data_treats_every_row_as_new(data):
    XA, yA, _, _ = data
    XC, yC = images(48, 2)
    clf = lossnet().fit(XA, yA)
    losses = clf.true_loss(XC, yC)
    clf.fit(XC, yC)
    # Only the new rows' half of the trim: no row was seen (the position rule
    # took the first 32 as seen and left out 8).
    assert set(clf.trimmed_indices_.tolist()) == lowest(losses, range(48))


def test_seen_rows_are_counted_as_multisets():
    X, _ = images(3, 4)
    earlier = row_digests(X[[0, 1, 1]])
    now = row_digests(X[[1, 2, 1, 1, 0]])
    assert _seen_before(now, earlier).tolist() == [True, False, True, False, True]
    assert row_digests(X).dtype == np.dtype("S16")
    assert len(set(row_digests(X).tolist())) == 3
