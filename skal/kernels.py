"""The heavy math of the diversity-based query methods, in torch.

Two selection rules live here as functions of plain arrays, so that the query
functions in :mod:`skal.query` only collect embeddings and probabilities and
call them:

* :func:`k_center_greedy` -- greedy (farthest-first) k-center selection, the
  core-set method of Sener & Savarese (2018).
* :func:`badge_kmeanspp` -- k-means++ seeding on gradient embeddings, the
  selection of BADGE (Ash et al., 2020), with the gradient embeddings kept in
  factorised form (:func:`gradient_embedding_factors`,
  :func:`gradient_embedding_sqdist`).

Every function accepts numpy arrays or torch tensors and computes on the
device of its tensor inputs, or on ``device`` when given (CPU or CUDA).
Float64 inputs are computed in float64, everything else in float32. The
selections come back as ``numpy.ndarray`` of ``int64`` pool indices, in pick
order.

Neither selection forms an (N, N), (N, L) or (N, C*D) matrix: memory stays
O((N + L + k) d) plus fixed-size blocks.
"""

from __future__ import annotations

import contextlib
import heapq
import numbers
import warnings

import numpy as np
import torch
from sklearn.utils._param_validation import InvalidParameterError

from skal._random import check_legacy_rng

__all__ = [
    "k_center_greedy",
    "badge_kmeanspp",
    "gradient_embedding_factors",
    "gradient_embedding_sqdist",
    "pairwise_sqdist_min",
]

#: Rows per block in the blocked distance computations.
DEFAULT_CHUNK_SIZE = 4096

# Elements per distance block (16 MiB of float32): big enough for GEMM
# efficiency, small enough to keep memory O((N + L) d).
_BLOCK_ELEMENTS = 1 << 22

# Lazy k-center: how many labeled rows seed the upper bounds eagerly (the
# other labeled rows are only ever compared with points that reach the top
# of the heap), the first refresh batch (doubled while a pick keeps finding
# stale points at the top), its cap, and the number of refreshed points in a
# single pick above which the whole pool is refreshed in blocked GEMMs.
_LAZY_INIT_LABELED = 256
_LAZY_BATCH = 1
_LAZY_BATCH_MAX = 4096
_LAZY_FLUSH_MIN = 16384


# --------------------------------------------------------------------------
# input handling
# --------------------------------------------------------------------------
def _resolve_device(device, *arrays):
    if device is not None:
        return torch.device(device)
    for x in arrays:
        if isinstance(x, torch.Tensor):
            return x.device
    return torch.device("cpu")


def _as_float_tensor(x, name, device, dtype=None):
    """A contiguous 2-D float tensor on `device`; no copy when none is needed."""
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        with warnings.catch_warnings():
            # Read-only arrays (np.load with mmap_mode='r') are fine: nothing
            # here writes into the inputs.
            warnings.simplefilter("ignore", UserWarning)
            t = torch.as_tensor(np.ascontiguousarray(x))
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D, got shape {tuple(t.shape)}")
    if dtype is None:
        # float64 stays float64 (exact references); everything else,
        # float16/bfloat16 included (too coarse for argmax decisions), is
        # computed in float32.
        dtype = torch.float64 if t.dtype == torch.float64 else torch.float32
    return t.to(device=device, dtype=dtype).contiguous()


def _check_finite(values, name):
    # Checked on a reduction (squared norms, N values) rather than on the
    # (N, d) input: NaN and inf propagate, and a bool (N, d) temporary
    # costs more than the selection itself.
    if values.numel() and not bool(torch.isfinite(values).all()):
        raise ValueError(f"{name} contains NaN or infinity (or values whose squares overflow)")


def _check_n_select(n_select, n_available):
    if not isinstance(n_select, numbers.Integral) or isinstance(n_select, bool):
        raise InvalidParameterError(f"n_select must be an int, got {type(n_select).__name__}")
    n_select = int(n_select)
    if n_select < 0:
        raise ValueError(f"n_select must be >= 0, got {n_select}")
    if n_select > n_available:
        raise ValueError(f"n_select={n_select} is larger than the pool ({n_available} items)")
    return n_select


def _sqnorms(x):
    """Row-wise squared norms, (N,), dtype of `x`.

    ``vector_norm`` reduces without an (N, d) temporary (about 10x faster
    than ``(x * x).sum(1)`` on CPU); squaring it adds one rounding.
    """
    return torch.linalg.vector_norm(x, dim=1).square_()


_THREAD_CONTROLS = None


def _thread_controls():
    """This thread's intra-op thread controls: (OpenMP via threadpoolctl, MKL's or None).

    torch.set_num_threads would do what :class:`_SingleThreaded` needs but is
    process-wide: besides the calling thread's settings it sets the default
    every thread takes at its first parallel op, so a thread starting then
    keeps one thread for good. The two settings torch's CPU ops read are per
    thread: OpenMP's ``nthreads-var`` (``omp_set_num_threads``, which
    threadpoolctl, a scikit-learn dependency, calls on the OpenMP runtime
    torch loaded) and MKL's thread-local count (``mkl_set_num_threads_local``,
    in libtorch_cpu where torch links MKL; no library wraps it). Either is
    None where torch has none.
    """
    global _THREAD_CONTROLS
    if _THREAD_CONTROLS is None:
        import ctypes
        import os

        from threadpoolctl import ThreadpoolController

        openmp = ThreadpoolController().select(user_api="openmp")
        mkl = None
        folder = os.path.join(os.path.dirname(torch.__file__), "lib")
        for name in ("libtorch_cpu.so", "libtorch_cpu.dylib", "torch_cpu.dll"):
            try:
                # MKL's C interface (by value): mkl_service.h maps mkl_set_num_threads_local to it.
                mkl = ctypes.CDLL(os.path.join(folder, name)).MKL_Set_Num_Threads_Local
            except (OSError, AttributeError):
                continue
            mkl.restype, mkl.argtypes = ctypes.c_int, [ctypes.c_int]
            break
        _THREAD_CONTROLS = (openmp if openmp.lib_controllers else None, mkl)
    return _THREAD_CONTROLS


class _ThisThread:
    """Context: the calling thread's torch CPU ops use ``n`` threads; other threads unchanged."""

    def __init__(self, n):
        self.n = int(n)

    def __enter__(self):
        openmp, mkl = _thread_controls()
        # torch sets a thread's counts at the thread's first parallel op (to
        # its process-wide default): let that happen before ours.
        torch.get_num_threads()
        self.limiter = openmp.limit(limits=self.n) if openmp is not None else None
        self.mkl_before = mkl(self.n) if mkl is not None else None  # returns the previous
        return self

    def __exit__(self, *exc):
        mkl = _thread_controls()[1]
        if self.mkl_before is not None:
            mkl(self.mkl_before)
        if self.limiter is not None:
            self.limiter.restore_original_limits()
        return False


class _SingleThreaded:
    """Run a loop of small CPU ops on one intra-op thread, then restore.

    The lazy/pruned loops issue a few small ops per pick. With several
    intra-op threads each op opens a parallel region whose idle workers spin;
    on a busy machine (more runnable threads than cores) every region then
    waits for a scheduler time slice -- measured 10-50x slower on 2 shared
    cores. Big blocked GEMMs inside the loop use :meth:`all_threads`. Only
    the calling thread's count changes (:func:`_thread_controls` says why
    not ``torch.set_num_threads``), and it is restored on exit, also on error.
    """

    def __init__(self, device, enabled=True):
        self.active = enabled and device.type == "cpu"
        self.saved = None
        self._one = None

    def __enter__(self):
        if self.active:
            self.saved = torch.get_num_threads()
            self._one = _ThisThread(1).__enter__()
        return self

    def __exit__(self, *exc):
        if self._one is not None:
            self._one.__exit__(*exc)
            self._one = None
        return False

    def all_threads(self):
        """Within the loop: this thread's count as before the loop, for a big GEMM."""
        return _ThisThread(self.saved) if self._one is not None else contextlib.nullcontext()


# --------------------------------------------------------------------------
# blocked distances
# --------------------------------------------------------------------------
def _min_sqdist_block(x, x_sq, y, y_sq, mask_before=None, col_offset=0):
    """min_j ||x_i - y_j||^2 for one row block, column blocks of bounded size.

    `mask_before` (B,) int, optional: column j (numbered from `col_offset`)
    is ignored for row i when ``col_offset + j < mask_before[i]``.
    """
    b = x.shape[0]
    cols = max(64, _BLOCK_ELEMENTS // max(b, 1))
    best = None
    for s in range(0, y.shape[0], cols):
        # addmm writes ||y||^2 - 2 x y^T straight into the block buffer;
        # ||x||^2 is constant per row and added after the min.
        blk = torch.addmm(y_sq[None, s : s + cols], x, y[s : s + cols].T, alpha=-2)
        if mask_before is not None:
            j = torch.arange(col_offset + s, col_offset + s + blk.shape[1], device=x.device)
            blk.masked_fill_(j[None, :] < mask_before[:, None], float("inf"))
        m = blk.min(dim=1).values
        best = m if best is None else torch.minimum(best, m, out=best)
    return best.add_(x_sq).clamp_min_(0)


def pairwise_sqdist_min(x, y, *, x_sqnorms=None, y_sqnorms=None, chunk_size=DEFAULT_CHUNK_SIZE):
    """Squared Euclidean distance from every row of `x` to its nearest row of `y`.

    Computed block by block as ``||x||^2 + ||y||^2 - 2 x y^T`` (GEMMs,
    clamped at 0); no (N, M) matrix is formed.

    Parameters
    ----------
    x : torch.Tensor of shape (N, d), float32 or float64
    y : torch.Tensor of shape (M, d), same dtype and device as `x`, M >= 1
    x_sqnorms, y_sqnorms : torch.Tensor of shape (N,) and (M,), optional
        Precomputed squared row norms.
    chunk_size : int, default=4096
        Rows of `x` per block; a block holds at most
        ``max(chunk_size * 64, 4 Mi)`` distances.

    Returns
    -------
    torch.Tensor of shape (N,), dtype and device of `x`
    """
    if y.shape[0] == 0:
        raise ValueError("y must have at least one row")
    x_sq = _sqnorms(x) if x_sqnorms is None else x_sqnorms
    y_sq = _sqnorms(y) if y_sqnorms is None else y_sqnorms
    out = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    with torch.no_grad():
        for s in range(0, x.shape[0], chunk_size):
            e = s + chunk_size
            out[s:e] = _min_sqdist_block(x[s:e], x_sq[s:e], y, y_sq)
    return out


# --------------------------------------------------------------------------
# k-center greedy
# --------------------------------------------------------------------------
def k_center_greedy(
    pool,
    labeled,
    n_select,
    *,
    chunk_size=DEFAULT_CHUNK_SIZE,
    method="lazy",
    random_state=None,
    device=None,
):
    """Greedy k-center (farthest-first) selection: the core-set query rule.

    Repeatedly picks the pool item farthest (Euclidean) from its nearest
    center, the centers being the labeled items and the items picked so far
    (Sener & Savarese, 2018).

    Parameters
    ----------
    pool : array-like or torch.Tensor of shape (N, d), float
        Embeddings of the unlabeled candidates.
    labeled : array-like or torch.Tensor of shape (L, d), float, or None
        Embeddings of the labeled set. With ``None`` or ``L == 0`` the first
        center is drawn uniformly from the pool with `random_state` (one
        ``rng.random()`` call: item ``int(u * N)``); all later picks are
        deterministic.
    n_select : int
        Number of items to pick, ``0 <= n_select <= N``.
    chunk_size : int, default=4096
        Rows per block of the distance computations.
    method : {"lazy", "naive"}, default="lazy"
        ``"naive"`` updates a min-distance vector over the whole pool with one
        distance row per pick, reading the whole (N, d) pool every pick.
        ``"lazy"`` makes the same picks, much faster; see Notes.
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator
        Only used when there is no labeled set. A Generator or RandomState is
        used as given, an int seeds ``numpy.random.RandomState``, None is fresh
        OS entropy (:func:`skal._random.check_legacy_rng`).
    device : str or torch.device, optional
        Where to compute. Default: the device of `pool` (or `labeled`) if it
        is a tensor, else the CPU.

    Returns
    -------
    numpy.ndarray of shape (n_select,), int64
        Indices into `pool`, in pick order, all distinct.

    Raises
    ------
    ValueError
        If ``n_select > N``, the shapes disagree or the inputs are not finite.

    Notes
    -----
    Ties go to the lowest pool index, as ``numpy.argmax`` chooses. A picked
    item is never picked again, even when every remaining distance is 0:
    then the lowest unpicked index wins. (A copy of a center is at distance
    0 only up to the rounding of ``||a||^2 + ||b||^2 - 2 a.b``, so the order
    among copies is that of their rounding errors.)

    ``"naive"`` keeps one min-squared-distance vector over the pool,
    initialised from the labeled set by blocked ``||a||^2 + ||b||^2 - 2 a.b``
    GEMMs (clamped at 0), and lowers it with one distance row per pick.

    ``"lazy"`` is exact, and rests on that vector only ever going *down*:
    a value that was brought up to date some centers ago is an upper bound of
    the current one. Every point keeps its value and the number of centers
    it accounts for, in a max-heap keyed by value. A pick refreshes only the
    points that surface at the top of the heap -- against the centers they
    have not seen yet, in one small GEMM -- until the top point is up to
    date: it is then the exact argmax, since every other key can only
    overestimate. Even the labeled set is used lazily: the bounds start from
    its first 256 rows, and the rest is compared only with points that come
    near the top. A point that a new center cannot affect, or that is too
    close to some center to matter, is never read again, so the per-pick
    cost falls from a full (N, d) pass to a few rows. This works where
    triangle-inequality pruning cannot: in 512-d, distances concentrate and
    the triangle bounds rule out almost nothing. Should one pick surface very
    many points (low-dimensional or shadowed data), the whole pool is
    brought up to date in blocked GEMMs over all pending centers, which are
    compute- rather than memory-bound. On CPU the per-pick loop runs on one
    intra-op thread (restored afterwards), which keeps its small ops from
    stalling on a busy machine.

    Both methods agree with a brute-force full distance matrix up to the
    rounding of the distances: only candidates whose distances tie to within
    rounding (relative 1e-6 in float32, 1e-15 in float64) can come in another
    order.
    """
    if method not in ("lazy", "naive"):
        raise ValueError(f"method must be 'lazy' or 'naive', got {method!r}")
    device = _resolve_device(device, pool, labeled)
    x = _as_float_tensor(pool, "pool", device)
    n, d = x.shape
    if labeled is None:
        lab = x.new_empty((0, d))
    else:
        lab = _as_float_tensor(labeled, "labeled", device, dtype=x.dtype)
        if lab.shape[1] != d:
            raise ValueError(f"pool has {d} features but labeled has {lab.shape[1]}")
    n_select = _check_n_select(n_select, n)
    chunk_size = int(chunk_size)
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")

    with torch.no_grad():
        xsq = _sqnorms(x)
        lsq = _sqnorms(lab)
        _check_finite(xsq, "pool")
        _check_finite(lsq, "labeled")
        if n_select == 0:
            return np.empty(0, dtype=np.int64)
        picks = []
        if lab.shape[0] == 0:
            first = int(check_legacy_rng(random_state).random() * n)
            picks.append(first)
        if method == "naive":
            if picks:
                mind = _sqdist_row(x, xsq, picks[0])
            else:
                mind = pairwise_sqdist_min(x, lab, x_sqnorms=xsq, y_sqnorms=lsq, chunk_size=chunk_size)
            _k_center_naive(x, xsq, mind, picks, n_select)
        else:
            with _SingleThreaded(device) as threads:
                _k_center_lazy(x, xsq, lab, lsq, picks, n_select, chunk_size, threads)
    return np.asarray(picks, dtype=np.int64)


def _sqdist_row(x, xsq, i):
    """Squared distances of all rows of `x` to row `i`, (N,), clamped >= 0."""
    # addmv: ||x||^2 - 2 X x_i in one pass over X, then + ||x_i||^2.
    return torch.addmv(xsq, x, x[i], alpha=-2).add_(xsq[i]).clamp_min_(0)


def _k_center_naive(x, xsq, mind, picks, n_select):
    # Picked points hold -inf so they never win the argmax again, even when
    # every remaining distance is 0.
    for i in picks:
        mind[i] = float("-inf")
    while len(picks) < n_select:
        i = int(torch.argmax(mind))  # the first maximal index on ties
        picks.append(i)
        torch.minimum(mind, _sqdist_row(x, xsq, i), out=mind)
        mind[i] = float("-inf")


def _lazy_flush_at(n):
    """Points refreshed within one pick beyond which the whole pool is."""
    return max(_LAZY_FLUSH_MIN, n // 8)


def _k_center_lazy(x, xsq, lab, lsq, picks, n_select, chunk_size, threads):
    n, d = x.shape
    dev = x.device
    n_lab = lab.shape[0]
    # All centers as rows -- labeled first, then picks -- so a refresh is
    # one GEMM against a contiguous slice.
    centers = x.new_empty((n_lab + n_select, d))
    csq = x.new_empty(n_lab + n_select)
    centers[:n_lab] = lab
    csq[:n_lab] = lsq
    n_c = n_lab
    for i in picks:
        centers[n_c] = x[i]
        csq[n_c] = xsq[i]
        n_c += 1
    # Upper bounds from the first few centers, with threads: one big GEMM.
    n_init = max(1, min(n_c, _LAZY_INIT_LABELED))
    with threads.all_threads():
        mind = pairwise_sqdist_min(
            x, centers[:n_init], x_sqnorms=xsq, y_sqnorms=csq[:n_init], chunk_size=chunk_size
        )
    # seen[i]: how many centers mind[i] accounts for; exact iff == n_c.
    seen = np.full(n, n_init, dtype=np.int64)
    chosen = np.zeros(n, dtype=bool)
    chosen[picks] = True

    def refresh(idx_np):
        """Bring mind[idx] up to date with all n_c centers; new values."""
        v = seen[idx_np]
        v0 = int(v.min())
        idx = torch.as_tensor(idx_np, device=dev)
        # Columns a row has already seen are masked (they could only repeat
        # a value already in the min, but it keeps refreshes cheap to mix).
        mask = torch.as_tensor(v, device=dev) if int(v.max()) > v0 else None
        new = _min_sqdist_block(
            x.index_select(0, idx), xsq.index_select(0, idx),
            centers[v0:n_c], csq[v0:n_c], mask_before=mask, col_offset=v0,
        )
        torch.minimum(new, mind.index_select(0, idx), out=new)
        mind.index_copy_(0, idx, new)
        seen[idx_np] = n_c
        return new.tolist()

    def refresh_all():
        stale = np.flatnonzero((seen < n_c) & ~chosen)
        with threads.all_threads():
            for s in range(0, len(stale), chunk_size):
                refresh(stale[s : s + chunk_size])
        vals = mind.tolist()
        return [(-vals[i], i) for i in np.flatnonzero(~chosen).tolist()]

    # Max-heap by negated keys; (key, index) tuples send ties to the lowest
    # index, exactly like argmax over the full vector.
    vals = mind.tolist()
    heap = [(-vals[i], i) for i in range(n) if not chosen[i]]
    heapq.heapify(heap)
    flush_at = _lazy_flush_at(n)

    while len(picks) < n_select:
        batch, surfaced = _LAZY_BATCH, 0
        while seen[heap[0][1]] != n_c:
            if surfaced >= flush_at:
                heap = refresh_all()
                heapq.heapify(heap)
                break
            # Pop the stale points at the top, refresh them together, put
            # them back with their exact keys.
            popped = []
            while heap and len(popped) < batch and seen[heap[0][1]] != n_c:
                popped.append(heapq.heappop(heap)[1])
            popped = np.asarray(popped, dtype=np.int64)
            for v, i in zip(refresh(popped), popped.tolist()):
                heapq.heappush(heap, (-v, i))
            surfaced += len(popped)
            batch = min(2 * batch, _LAZY_BATCH_MAX)
        i = heapq.heappop(heap)[1]
        picks.append(i)
        chosen[i] = True
        centers[n_c] = x[i]
        csq[n_c] = xsq[i]
        n_c += 1


# --------------------------------------------------------------------------
# BADGE
# --------------------------------------------------------------------------
def gradient_embedding_factors(probs, *, device=None):
    """The class factor `a` of BADGE's gradient embeddings.

    The gradient of the cross-entropy loss at the predicted label with
    respect to the last linear layer's weights is the outer product
    ``g_i = a_i (x) h_i`` of ``a_i = p_i - onehot(argmax p_i)`` and the
    penultimate embedding ``h_i``.

    Parameters
    ----------
    probs : array-like or torch.Tensor of shape (N, C), float
        Predicted class probabilities (single-label).
    device : str or torch.device, optional
        Default: the device of `probs` if it is a tensor, else the CPU.

    Returns
    -------
    torch.Tensor of shape (N, C)
        float64 for float64 input, else float32. Ties in the argmax go to
        the lowest class index.
    """
    device = _resolve_device(device, probs)
    p = _as_float_tensor(probs, "probs", device)
    a = p.clone()
    a[torch.arange(a.shape[0], device=device), torch.argmax(p, dim=1)] -= 1
    return a


def gradient_embedding_sqdist(a, h, center_idx):
    """Squared distances between gradient embeddings, without forming them.

    With ``g_i = a_i (x) h_i`` (C*D values), ``||g_i - g_j||^2 =
    ||a_i||^2 ||h_i||^2 + ||a_j||^2 ||h_j||^2 - 2 (a_i . a_j)(h_i . h_j)``:
    O(N (C + D)) per center instead of O(N C D).

    Parameters
    ----------
    a : array-like or torch.Tensor of shape (N, C), float
        Class factors, e.g. from :func:`gradient_embedding_factors`.
    h : array-like or torch.Tensor of shape (N, D), float
        Penultimate-layer embeddings.
    center_idx : int or array-like of int of shape (M,)
        Rows of the centers.

    Returns
    -------
    torch.Tensor of shape (N,) for an int `center_idx`, else (N, M)
        Squared distances clamped at 0, float64 if `a` is float64 else
        float32, on the device of `a` (or `h`) if a tensor, else the CPU.
    """
    device = _resolve_device(None, a, h)
    a = _as_float_tensor(a, "a", device)
    h = _as_float_tensor(h, "h", device, dtype=a.dtype)
    if h.shape[0] != a.shape[0]:
        raise ValueError(f"a has {a.shape[0]} rows but h has {h.shape[0]}")
    scalar = isinstance(center_idx, numbers.Integral)
    c = torch.as_tensor(np.atleast_1d(np.asarray(center_idx, dtype=np.int64)), device=device)
    with torch.no_grad():
        gsq = (a * a).sum(1) * _sqnorms(h)
        out = gsq[:, None] + gsq[c][None, :] - 2 * (a @ a[c].T) * (h @ h[c].T)
        out.clamp_min_(0)
    return out[:, 0] if scalar else out


def draw_d2(d2, chosen, rng):
    """One k-means++ draw: an index with probability proportional to ``d2``.

    Inverse-CDF sampling in index order with one ``rng.random()`` call ``u``:
    the first item whose float64 cumulative ``d2`` exceeds ``u * sum(d2)``.
    When every ``d2`` is 0, uniform over the items not yet ``chosen``.

    Parameters
    ----------
    d2 : torch.Tensor of shape (N,), float
        Squared distance of each item to its nearest pick (0 for picks).
    chosen : torch.Tensor of shape (N,), bool
        Items already picked.
    rng : numpy.random.RandomState or numpy.random.Generator

    Returns
    -------
    int
    """
    u = rng.random()
    cum = torch.cumsum(d2, 0, dtype=torch.float64)
    if float(cum[-1]) > 0:
        j = int(torch.searchsorted(cum, cum[-1:] * u, right=True))
        # u * total may round up to total: then take the last item with
        # positive weight (a zero-weight item is never drawn).
        if j >= len(d2) or not bool(d2[j] > 0):
            j = int(torch.nonzero(d2 > 0)[-1])
        return j
    free = torch.nonzero(~chosen).flatten()
    return int(free[int(u * free.numel())])


def badge_kmeanspp(
    probs,
    embeddings,
    n_select,
    *,
    method="pruned",
    random_state=None,
    device=None,
    on_step=None,
):
    """BADGE: k-means++ seeding on factorised gradient embeddings.

    The first center is the item with the largest gradient-embedding norm
    (lowest index on ties); each next one is drawn with probability
    proportional to its squared distance D^2 to the nearest center so far
    (Ash et al., 2020). The N x C*D gradient matrix is never formed: the
    distances come from the identity of :func:`gradient_embedding_sqdist`.

    Parameters
    ----------
    probs : array-like or torch.Tensor of shape (N, C), float
        Predicted class probabilities of the pool (single-label).
    embeddings : array-like or torch.Tensor of shape (N, D), float
        Penultimate-layer embeddings of the pool.
    n_select : int
        Number of items to pick, ``0 <= n_select <= N``.
    method : {"pruned", "naive"}, default="pruned"
        ``"naive"`` computes every item's distance to each new center, reading
        the whole (N, D) embedding array per pick. ``"pruned"`` makes the same
        picks: it first bounds the distance from below by Cauchy-Schwarz,
        ``||g_i - g_j||^2 >= ||g_i||^2 + ||g_j||^2 - 2 |a_i . a_j| ||h_i|| ||h_j||``,
        from the (N, C) factors and the norms alone, and reads the embedding
        rows only where that bound (shrunk by a margin well above rounding
        error) is below the item's D^2 (all rows in one pass when that is
        more than a quarter of them). Few items ever get closer to a new
        center, so few rows are read. On CPU its loop runs on one intra-op
        thread (restored afterwards), which keeps the small per-pick ops from
        stalling on a busy machine.
    random_state : None, int, numpy.random.RandomState or numpy.random.Generator
        A Generator or RandomState is used as given, an int seeds
        ``numpy.random.RandomState``, None is fresh OS entropy
        (:func:`skal._random.check_legacy_rng`). Every pick after the first
        makes exactly one ``rng.random()`` call, ``u``; the pick is the first
        item whose float64 cumulative D^2 exceeds ``u * sum(D^2)``
        (inverse-CDF sampling in index order). When every unpicked D^2 is 0
        (duplicates, one-hot probabilities) it is ``unpicked[int(u *
        n_unpicked)]``: uniform over the unpicked items.
    device : str or torch.device, optional
        Where to compute. Default: the device of `embeddings` (or `probs`) if
        it is a tensor, else the CPU.
    on_step : callable, optional
        Called before each pick with the (N,) tensor the pick is made from
        (not to be modified): ``||g||^2`` before the first (the argmax is
        taken), ``D^2`` before each later one (drawn in proportion; 0 for
        earlier picks). How a query reports its utilities.

    Returns
    -------
    numpy.ndarray of shape (n_select,), int64
        Indices into the pool, in pick order, all distinct.

    Raises
    ------
    ValueError
        If ``n_select > N``, the shapes disagree or the inputs are not finite.
    """
    if method not in ("pruned", "naive"):
        raise ValueError(f"method must be 'pruned' or 'naive', got {method!r}")
    device = _resolve_device(device, embeddings, probs)
    h = _as_float_tensor(embeddings, "embeddings", device)
    a = gradient_embedding_factors(probs, device=device).to(h.dtype)
    n = h.shape[0]
    if a.shape[0] != n:
        raise ValueError(f"probs has {a.shape[0]} rows but embeddings has {n}")
    n_select = _check_n_select(n_select, n)
    rng = check_legacy_rng(random_state)

    with torch.no_grad(), _SingleThreaded(device, enabled=method == "pruned"):
        hsq = _sqnorms(h)
        _check_finite(hsq, "embeddings")
        _check_finite(a, "probs")
        if n_select == 0:
            return np.empty(0, dtype=np.int64)
        gsq = (a * a).sum(1).mul_(hsq)  # ||g_i||^2 = ||a_i||^2 ||h_i||^2
        hnorm = hsq.sqrt_()
        # The pruning bound is shrunk by this factor: relative 1e-4 (1e-12
        # in float64) is far above the rounding error of the factorised
        # distance and far below any distance that matters.
        keep = 1.0 - (1e-4 if h.dtype == torch.float32 else 1e-12)
        chosen = torch.zeros(n, dtype=torch.bool, device=device)

        def dist_to(j, rows=None):
            """Squared gradient-embedding distances of `rows` (all if None) to j."""
            if rows is None:
                hr, ar, gr = h, a, gsq
            else:  # index_select: several times faster than h[rows]
                hr, ar, gr = (t.index_select(0, rows) for t in (h, a, gsq))
            cross = torch.mv(ar, a[j]).mul_(torch.mv(hr, h[j]))
            return (gr + gsq[j]).sub_(cross, alpha=2).clamp_min_(0)

        if on_step is not None:
            on_step(gsq)
        j = int(torch.argmax(gsq))  # largest gradient norm, first on ties
        picks = [j]
        chosen[j] = True
        d2 = dist_to(j)
        d2[j] = 0
        while len(picks) < n_select:
            if on_step is not None:
                on_step(d2)
            j = draw_d2(d2, chosen, rng)
            picks.append(j)
            chosen[j] = True
            if method == "naive":
                torch.minimum(d2, dist_to(j), out=d2)
            else:
                lb = torch.mv(a, a[j]).abs_().mul_(hnorm).mul_(-2 * hnorm[j])
                lb.add_(gsq, alpha=keep).add_(keep * gsq[j])
                rows = torch.nonzero(lb < d2).flatten()
                if rows.numel() > n // 4:
                    # Most rows: one pass over h beats gathering them (and
                    # caps the gather buffer at N/4 rows).
                    torch.minimum(d2, dist_to(j), out=d2)
                elif rows.numel():
                    new = torch.minimum(d2.index_select(0, rows), dist_to(j, rows))
                    d2.index_copy_(0, rows, new)
            d2[j] = 0  # exactly 0, whatever the rounding: never drawn again
    return np.asarray(picks, dtype=np.int64)
