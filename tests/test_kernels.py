"""skal.kernels: k-center greedy and BADGE k-means++ against brute-force references.

The references below are deliberately naive: a full float64 distance matrix
for k-center and the materialised N x C*D gradient matrix for BADGE, with the
same random calls as the kernels.
"""

import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from scipy.stats import chisquare
from sklearn.utils import check_random_state

import skal.kernels as K
from skal.kernels import (
    badge_kmeanspp,
    gradient_embedding_factors,
    gradient_embedding_sqdist,
    k_center_greedy,
)


# --------------------------------------------------------------------------
# references
# --------------------------------------------------------------------------
def ref_k_center(pool, labeled, k, random_state=None):
    """Farthest-first with the full (N, N + L) squared-distance matrix."""
    pool = np.asarray(pool, dtype=np.float64)
    n = len(pool)
    full = cdist(pool, pool, "sqeuclidean")  # direct differences, no expansion
    picks = []
    if labeled is not None and len(labeled):
        mind = cdist(pool, np.asarray(labeled, dtype=np.float64), "sqeuclidean").min(1)
    else:
        picks.append(int(check_random_state(random_state).random() * n))
        mind = full[picks[0]].copy()
    mind[picks] = -np.inf
    while len(picks) < k:
        i = int(np.argmax(mind))
        picks.append(i)
        mind = np.minimum(mind, full[i])
        mind[picks] = -np.inf
    return np.array(picks)


def materialised_gradients(probs, h):
    probs = np.asarray(probs, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    a = probs - np.eye(probs.shape[1])[probs.argmax(1)]
    return (a[:, :, None] * h[:, None, :]).reshape(len(h), -1)


def ref_badge(probs, h, k, random_state=None):
    """k-means++ on the materialised gradient embeddings, same RNG calls."""
    rng = random_state if isinstance(random_state, np.random.Generator) else check_random_state(random_state)
    g = materialised_gradients(probs, h)
    n = len(g)
    j = int(np.argmax((g**2).sum(1)))
    picks = [j]
    d2 = ((g - g[j]) ** 2).sum(1)
    d2[j] = 0
    while len(picks) < k:
        u = rng.random()
        cum = np.cumsum(d2)
        if cum[-1] > 0:
            j = int(np.searchsorted(cum, u * cum[-1], side="right"))
            if j >= n or d2[j] <= 0:
                j = int(np.flatnonzero(d2 > 0)[-1])
        else:
            free = np.setdiff1d(np.arange(n), picks)
            j = int(free[int(u * len(free))])
        picks.append(j)
        d2 = np.minimum(d2, ((g - g[j]) ** 2).sum(1))
        d2[picks] = 0
    return np.array(picks)


# --------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------
def make_points(kind, n, d, seed):
    rng = np.random.default_rng(seed)
    if kind == "gauss":
        return rng.standard_normal((n, d))
    if kind == "clustered":  # well-separated groups, like trained embeddings
        means = rng.standard_normal((6, d)) * 6
        return means[rng.integers(0, 6, n)] + rng.standard_normal((n, d))
    if kind == "plane":  # low-dimensional: many points surface per pick
        return rng.random((n, 2))
    raise ValueError(kind)


def make_probs(n, c, seed, temperature=1.0):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((n, c)) * 2.5 / temperature
    p = np.exp(logits - logits.max(1, keepdims=True))
    return p / p.sum(1, keepdims=True)


# --------------------------------------------------------------------------
# k-center greedy
# --------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["lazy", "naive"])
def test_k_center_hand_made_order(method):
    # Squared distances to the labeled origin: 1, 16, 9, 100, 200, 50. By
    # hand: (10,10) first; then (10,0) at 100; (5,5) at 50; (4,0) at 16;
    # (0,3) at 9; (1,0) at 1.
    pool = np.array([[1, 0], [4, 0], [0, 3], [10, 0], [10, 10], [5, 5]], dtype=np.float64)
    picks = k_center_greedy(pool, np.zeros((1, 2)), 6, method=method)
    assert picks.dtype == np.int64
    assert picks.tolist() == [4, 3, 5, 1, 2, 0]
    assert k_center_greedy(pool, np.zeros((1, 2)), 2, method=method).tolist() == [4, 3]


@pytest.mark.parametrize("method", ["lazy", "naive"])
def test_k_center_ties_go_to_lowest_index(method):
    # All three at squared distance 4; after (0,2): (2,0) and (0,-2) both at 4.
    pool = np.array([[0, 2], [2, 0], [0, -2]], dtype=np.float32)
    assert k_center_greedy(pool, np.zeros((1, 2)), 3, method=method).tolist() == [0, 1, 2]


@pytest.mark.parametrize("method", ["lazy", "naive"])
def test_k_center_without_labeled_set_starts_at_random(method):
    pool = make_points("gauss", 50, 3, 0)
    for seed in range(3):
        picks = k_center_greedy(pool, None, 10, random_state=seed, method=method)
        assert picks[0] == int(np.random.RandomState(seed).random() * 50)
        np.testing.assert_array_equal(picks, ref_k_center(pool, None, 10, seed))
    empty = np.empty((0, 3))
    np.testing.assert_array_equal(
        k_center_greedy(pool, empty, 10, random_state=7, method=method),
        k_center_greedy(pool, None, 10, random_state=7, method=method),
    )


@pytest.mark.parametrize("kind", ["gauss", "clustered", "plane"])
@pytest.mark.parametrize("with_labeled", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_k_center_equals_brute_force(kind, with_labeled, seed):
    pts = make_points(kind, 700, 16, seed)
    pool, labeled = pts[:600], (pts[600:] if with_labeled else None)
    ref = ref_k_center(pool, labeled, 120, random_state=seed)
    for method in ("lazy", "naive"):
        got = k_center_greedy(pool, labeled, 120, method=method, random_state=seed)
        np.testing.assert_array_equal(got, ref, err_msg=method)


@pytest.mark.parametrize("kind", ["gauss", "clustered", "plane"])
def test_k_center_lazy_paths_equal_brute_force(kind, monkeypatch):
    # Exercise every branch of the lazy loop: a tiny eager labeled block
    # (the rest found lazily, with masked columns), big refresh batches, and
    # the full-pool flush on every stale pick.
    pts = make_points(kind, 500, 8, 3)
    pool, labeled = pts[:450], pts[450:]
    ref = ref_k_center(pool, labeled, 150)
    monkeypatch.setattr(K, "_LAZY_INIT_LABELED", 2)
    for batch in (1, 5):
        monkeypatch.setattr(K, "_LAZY_BATCH", batch)
        np.testing.assert_array_equal(k_center_greedy(pool, labeled, 150), ref)
    monkeypatch.setattr(K, "_lazy_flush_at", lambda n: 1)
    np.testing.assert_array_equal(k_center_greedy(pool, labeled, 150, chunk_size=64), ref)


def test_k_center_lazy_reads_few_rows(monkeypatch):
    # The point of "lazy": on clustered data in 64-d, far fewer distances are
    # computed than the naive N * L + N * k. The first call is the eager
    # block of the first 256 labeled rows; all later ones are refreshes.
    pts = make_points("clustered", 4300, 64, 5)
    pool, labeled = pts[:4000], pts[4000:]
    work = []
    real = K._min_sqdist_block

    def counting(x, x_sq, y, y_sq, **kw):
        work.append(x.shape[0] * y.shape[0])
        return real(x, x_sq, y, y_sq, **kw)

    monkeypatch.setattr(K, "_min_sqdist_block", counting)
    picks = k_center_greedy(pool, labeled, 400)
    np.testing.assert_array_equal(picks, ref_k_center(pool, labeled, 400))
    assert work[0] == 4000 * 256
    assert sum(work[1:]) < 0.1 * 4000 * (300 - 256 + 400), sum(work[1:])
    assert sum(work) < 0.5 * 4000 * (300 + 400)


@pytest.mark.parametrize("method", ["lazy", "naive"])
def test_k_center_never_repeats_even_with_duplicates(method):
    rng = np.random.default_rng(0)
    base = rng.standard_normal((5, 4))
    pool = np.repeat(base, 8, axis=0)  # 40 items, 5 distinct
    picks = k_center_greedy(pool, base[:1], 40, method=method)
    assert sorted(picks.tolist()) == list(range(40))
    # The 4 distinct points away from the labeled one come first, in the
    # reference's order; after them every distance is 0 up to the rounding of
    # ||a||^2 + ||b||^2 - 2ab, so the order of the copies is unspecified.
    np.testing.assert_array_equal(picks[:4], ref_k_center(pool, base[:1], 4))
    # Exact zeros (integer coordinates) do go to the lowest index.
    grid = np.repeat(np.array([[0.0, 0.0], [3.0, 4.0]]), 3, axis=0)
    assert k_center_greedy(grid, np.zeros((1, 2)), 6, method=method).tolist() == [3, 0, 1, 2, 4, 5]


def test_k_center_validation():
    pool = np.zeros((5, 3))
    with pytest.raises(ValueError, match="larger than the pool"):
        k_center_greedy(pool, None, 6)
    with pytest.raises(ValueError):
        k_center_greedy(pool, np.zeros((2, 4)), 2)
    with pytest.raises(ValueError):
        k_center_greedy(pool, None, -1)
    with pytest.raises(ValueError, match="NaN"):
        k_center_greedy(np.full((5, 3), np.nan), None, 2)
    with pytest.raises(ValueError):
        k_center_greedy(pool, None, 2, method="fast")
    assert k_center_greedy(pool, None, 0).shape == (0,)


def test_k_center_torch_and_numpy_inputs_agree():
    pts = make_points("clustered", 300, 8, 4)
    a = k_center_greedy(pts[:250], pts[250:], 40)
    b = k_center_greedy(torch.from_numpy(pts[:250]), torch.from_numpy(pts[250:]), 40)
    np.testing.assert_array_equal(a, b)
    # float32 on its own: the same picks on this well-spread data.
    c = k_center_greedy(pts[:250].astype(np.float32), pts[250:].astype(np.float32), 40)
    np.testing.assert_array_equal(a, c)


def test_k_center_restores_thread_count():
    before = torch.get_num_threads()
    k_center_greedy(make_points("gauss", 100, 4, 0), None, 10, random_state=0)
    assert torch.get_num_threads() == before


# --------------------------------------------------------------------------
# BADGE
# --------------------------------------------------------------------------
def test_gradient_embedding_factors_known_values():
    a = gradient_embedding_factors(np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]]))
    np.testing.assert_allclose(a.numpy(), [[-0.3, 0.2, 0.1], [0.1, 0.3, -0.4]], atol=1e-12)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-10), (np.float32, 2e-4)])
def test_factorised_distances_equal_materialised(dtype, rtol):
    probs = make_probs(60, 5, 0).astype(dtype)
    h = make_points("gauss", 60, 7, 1).astype(dtype)
    g = materialised_gradients(probs, h)
    a = gradient_embedding_factors(probs)
    centers = [0, 17, 59]
    want = ((g[:, None, :] - g[None, centers, :]) ** 2).sum(-1)
    got = gradient_embedding_sqdist(a, h, centers).double().numpy()
    scale = (g**2).sum(1)[:, None] + (g[centers] ** 2).sum(1)[None, :]
    np.testing.assert_array_less(np.abs(got - want), rtol * scale + 1e-30)
    np.testing.assert_allclose(gradient_embedding_sqdist(a, h, 17).double().numpy(), want[:, 1],
                               rtol=0, atol=rtol * scale[:, 1].max())
    assert gradient_embedding_sqdist(a, h, 17)[17] == pytest.approx(0, abs=rtol * scale[17, 1])


@pytest.mark.parametrize("method", ["pruned", "naive"])
def test_badge_first_pick_is_largest_gradient_norm(method):
    probs = make_probs(200, 4, 2)
    h = make_points("gauss", 200, 6, 3)
    norms = (materialised_gradients(probs, h) ** 2).sum(1)
    assert badge_kmeanspp(probs, h, 1, method=method)[0] == int(np.argmax(norms))


@pytest.mark.parametrize("kind", ["gauss", "clustered"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_badge_equals_materialised_reference(kind, seed):
    probs = make_probs(300, 5, seed, temperature=0.5 if kind == "clustered" else 2.0)
    h = make_points(kind, 300, 12, seed + 10)
    ref = ref_badge(probs, h, 60, random_state=seed)
    for method in ("pruned", "naive"):
        np.testing.assert_array_equal(badge_kmeanspp(probs, h, 60, method=method, random_state=seed), ref)
    # A Generator is used as given; torch inputs give the same result.
    ref_g = ref_badge(probs, h, 60, random_state=np.random.default_rng(seed))
    got_g = badge_kmeanspp(torch.from_numpy(probs), torch.from_numpy(h), 60,
                           random_state=np.random.default_rng(seed))
    np.testing.assert_array_equal(got_g, ref_g)


def test_badge_second_pick_follows_d2():
    # 8 items, fixed first pick (largest norm); over 3000 seeds the second
    # pick's frequencies must match D^2 / sum(D^2).
    probs = make_probs(8, 3, 4, temperature=3.0)
    h = make_points("gauss", 8, 4, 5)
    g = materialised_gradients(probs, h)
    first = int(np.argmax((g**2).sum(1)))
    p = ((g - g[first]) ** 2).sum(1)
    p[first] = 0
    p /= p.sum()
    n_rep = 3000
    counts = np.zeros(8)
    for seed in range(n_rep):
        picks = badge_kmeanspp(probs, h, 2, random_state=seed)
        assert picks[0] == first
        counts[picks[1]] += 1
    assert counts[first] == 0
    keep = p > 0
    assert chisquare(counts[keep], n_rep * p[keep]).pvalue > 1e-3
    np.testing.assert_allclose(counts / n_rep, p, atol=0.035)


@pytest.mark.parametrize("method", ["pruned", "naive"])
def test_badge_never_repeats(method):
    # One-hot probabilities: every gradient is 0, so every D^2 is 0 and the
    # picks are uniform over the unpicked items -- but never repeated.
    probs = np.eye(4)[np.arange(30) % 4]
    h = make_points("gauss", 30, 5, 0)
    picks = badge_kmeanspp(probs, h, 30, method=method, random_state=0)
    assert sorted(picks.tolist()) == list(range(30))
    np.testing.assert_array_equal(picks, ref_badge(probs, h, 30, random_state=0))
    # Duplicated items: D^2 reaches 0 for copies of picked ones.
    probs2 = np.repeat(make_probs(6, 3, 1), 5, axis=0)
    h2 = np.repeat(make_points("gauss", 6, 4, 2), 5, axis=0)
    picks2 = badge_kmeanspp(probs2, h2, 30, method=method, random_state=1)
    assert sorted(picks2.tolist()) == list(range(30))


def test_badge_determinism_and_validation():
    probs = make_probs(120, 4, 7)
    h = make_points("clustered", 120, 6, 8)
    a = badge_kmeanspp(probs, h, 20, random_state=3)
    np.testing.assert_array_equal(a, badge_kmeanspp(probs, h, 20, random_state=3))
    np.testing.assert_array_equal(a, badge_kmeanspp(probs, h, 20, random_state=np.random.RandomState(3)))
    assert not np.array_equal(a, badge_kmeanspp(probs, h, 20, random_state=4))
    assert a.dtype == np.int64
    with pytest.raises(ValueError, match="larger than the pool"):
        badge_kmeanspp(probs, h, 121)
    with pytest.raises(ValueError):
        badge_kmeanspp(probs[:100], h, 5)
    with pytest.raises(ValueError, match="NaN"):
        badge_kmeanspp(probs, np.full_like(h, np.inf), 5)
    assert badge_kmeanspp(probs, h, 0).shape == (0,)
