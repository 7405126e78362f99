"""One meaning of random_state everywhere (skal._random)."""

import numpy as np
import pytest
import torch
from sklearn.utils._param_validation import InvalidParameterError

from skal._random import check_generator, check_legacy_rng, check_seed
from skal.estimator import torch_seeded
from skal.kernels import badge_kmeanspp, k_center_greedy
from skal.query import random_sampling

HELPERS = [check_generator, check_legacy_rng, check_seed]


def test_a_query_reads_random_state_by_the_same_rule():
    pool = np.zeros((50, 3))
    # An int seeds numpy's default Generator, as check_generator does...
    expected = np.random.default_rng(7).choice(50, 5, replace=False).tolist()
    assert random_sampling(None, pool, 5, random_state=7).tolist() == expected
    # ...a Generator is used as given (and advances)...
    g = np.random.default_rng(7)
    assert random_sampling(None, pool, 5, random_state=g).tolist() == expected
    assert random_sampling(None, pool, 5, random_state=g).tolist() != expected
    # ...and None is fresh entropy, never numpy's global state.
    np.random.seed(0)
    after_seed = np.random.random(3)
    np.random.seed(0)
    picks = [random_sampling(None, pool, 5).tolist() for _ in range(3)]
    np.testing.assert_array_equal(np.random.random(3), after_seed)
    assert len({tuple(p) for p in picks}) > 1
    with pytest.raises(InvalidParameterError, match="random_state must be"):
        random_sampling(None, pool, 5, random_state=-1)


@pytest.mark.parametrize("helper", HELPERS)
def test_none_is_fresh_entropy_and_never_numpys_global_state(helper):
    np.random.seed(0)
    expected = np.random.random(3)
    np.random.seed(0)
    draws = [helper(None) for _ in range(2)]
    np.testing.assert_array_equal(np.random.random(3), expected)  # global state untouched
    if helper is check_seed:
        assert draws[0] != draws[1]
    else:
        assert draws[0].random() != draws[1].random()


def test_int_seeds_give_the_same_streams_as_before():
    assert check_generator(3).random() == np.random.default_rng(3).random()
    assert check_legacy_rng(3).random() == np.random.RandomState(3).random()  # the kernels' stream
    assert check_seed(3) == 3 and check_seed(np.int64(3)) == 3


def test_generators_are_used_as_given_and_random_states_advance():
    g = np.random.default_rng(0)
    assert check_generator(g) is g and check_legacy_rng(g) is g
    rs = np.random.RandomState(0)
    assert check_legacy_rng(rs) is rs
    first, second = check_seed(rs), check_seed(rs)
    assert first != second
    assert first == np.random.RandomState(0).randint(np.iinfo(np.int32).max)


@pytest.mark.parametrize("helper", HELPERS)
@pytest.mark.parametrize("bad", [-1, True, 1.5, "0"])
def test_one_error_type_for_a_bad_random_state(helper, bad):
    with pytest.raises(InvalidParameterError, match="random_state must be") as info:
        helper(bad)
    assert isinstance(info.value, ValueError) and isinstance(info.value, TypeError)


def test_kernels_and_queries_raise_the_same_error_for_a_bad_random_state():
    pool = np.random.default_rng(0).normal(size=(20, 3))
    probs = np.full((20, 2), 0.5)
    for call in (lambda: k_center_greedy(pool, None, 3, random_state="x"),
                 lambda: badge_kmeanspp(probs, pool, 3, random_state=-2),
                 lambda: random_sampling(None, pool, 3, random_state=1.5)):
        with pytest.raises(InvalidParameterError, match="random_state must be"):
            call()


def test_a_non_integer_n_select_is_the_same_error_type_as_a_bad_n_instances():
    pool = np.random.default_rng(0).normal(size=(20, 3))
    with pytest.raises(ValueError, match="n_select must be an int"):
        k_center_greedy(pool, None, 2.5, random_state=0)


def test_torch_seeded_none_is_fresh_and_leaves_torchs_generator_alone():
    torch.manual_seed(0)
    expected = torch.rand(2)
    torch.manual_seed(0)
    with torch_seeded(None):
        a = torch.rand(4)
    with torch_seeded(None):
        b = torch.rand(4)
    assert not torch.equal(a, b)
    assert torch.equal(torch.rand(2), expected)
    with torch_seeded(7):
        c = torch.rand(4)
    with torch_seeded(np.random.default_rng(1)):
        torch.rand(1)
    with torch_seeded(7):
        assert torch.equal(torch.rand(4), c)
