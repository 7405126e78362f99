"""Label-free embeddings of a pool of images, for a first batch chosen without labels.

Cold-start strategies (:mod:`skal.query.cold_start`) need a space in which
near images look alike before any label exists. Four ways to get one, none
of which needs a label or a download:

``'simclr'``
    Self-supervised: skal's :class:`~skal.models.SmallCNN` trained on the
    unlabeled pool itself with SimCLR's contrastive objective (Chen et al.
    2020, NT-Xent loss between two augmented views of each image), the
    features the TypiClust and ProbCover papers cluster. Sized for CPUs:
    with the defaults, pneumoniamnist's 4,708 training images took 140 CPU
    seconds on one thread (``benchmarks/results/cold_start/feature_times.csv``).
``'pca'``
    The pixels after PCA (``sklearn.decomposition.PCA``): cheap, a baseline.
``'random_net'``
    A randomly initialised SmallCNN, untrained: cheap, a baseline (random
    convolutional features are known to cluster images better than pixels).
``'backbone'``
    The user's own network: a torchvision architecture (by name) and a
    weights file on disk (:func:`load_backbone`). skal downloads nothing.

:func:`pool_features` is the one entry point; it caches the result on disk
under a key made of the pool's SHA-256, the method and its settings (and the
weights file's SHA-256), so a pool is embedded once per dataset and settings.
Every function leaves torch's and numpy's global generators and torch's
thread count as it found them.
"""

from __future__ import annotations

import contextlib
import hashlib
import inspect
import io
import json
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from skal._random import check_seed
from skal.estimator import images_to_float, torch_seeded
from skal.image_folder import file_sha256
from skal.models import SmallCNN
from skal.results import atomic_write

__all__ = ["FEATURES", "pool_features", "pixel_pca", "random_network", "simclr",
           "load_backbone", "backbone_features", "cache_key", "default_cache_dir",
           "FeatureError"]

#: Names of the feature methods of :func:`pool_features`.
FEATURES = ("simclr", "pca", "random_net", "backbone")

# Bumped when a method's numbers change for the same settings, so an old cache is not read.
_VERSION = 1


class FeatureError(ValueError):
    """Bad input to a feature method (an unknown name, a missing weights file...)."""


# ----------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------


@contextlib.contextmanager
def _threads(n_threads):
    """torch's intra-op thread count set to ``n_threads`` (None: unchanged), restored after."""
    before = torch.get_num_threads()
    try:
        if n_threads is not None:
            torch.set_num_threads(int(n_threads))
        yield
    finally:
        torch.set_num_threads(before)


def _check_images(X):
    X = np.asarray(X)
    if X.ndim not in (3, 4) or len(X) == 0 or (X.ndim == 4 and X.shape[-1] not in (1, 3)):
        raise FeatureError(
            f"X must be a non-empty image array of shape (N, H, W) or (N, H, W, C) with C 1 or "
            f"3, as MedMNIST stores images; got shape {X.shape}.")
    return X


def _channels(X):
    return 1 if X.ndim == 3 else X.shape[-1]


def _embed(network, X, n_channels, batch_size, size=None):
    """``network(images)`` for the whole pool, in batches, eval mode, no gradients: (N, D) float32."""
    network.eval()
    out = []
    with torch.no_grad():
        for start in range(0, len(X), batch_size):
            x = images_to_float(torch.from_numpy(np.ascontiguousarray(X[start:start + batch_size])),
                                n_channels)
            if size is not None and x.shape[-1] != size:
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
            out.append(network(x).reshape(len(x), -1).float())
    return torch.cat(out).numpy()


class _Embedding(nn.Module):
    """A skal image module's penultimate features (``forward_features(x)[0]``)."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module.forward_features(x)[0]


# ----------------------------------------------------------------------------
# The cheap baselines
# ----------------------------------------------------------------------------


def pixel_pca(X, n_components=50, random_state=0):
    """The pixels after PCA.

    Parameters
    ----------
    X : ndarray of shape (N, H, W) or (N, H, W, C), uint8
    n_components : int, default=50
        At most ``min(N, H*W*C)``.
    random_state : None or int, default=0
        For PCA's randomized solver.

    Returns
    -------
    ndarray of shape (N, n_components), float32
    """
    from sklearn.decomposition import PCA

    X = _check_images(X)
    flat = X.reshape(len(X), -1).astype(np.float32) / 255.0
    k = min(int(n_components), *flat.shape)
    return PCA(n_components=k, random_state=check_seed(random_state)).fit_transform(flat).astype(
        np.float32)


def random_network(X, random_state=0, batch_size=512, n_threads=None):
    """Features of a randomly initialised (untrained) :class:`~skal.models.SmallCNN`.

    Parameters
    ----------
    X : ndarray of shape (N, H, W) or (N, H, W, C), uint8
    random_state : None or int, default=0
        Seeds the weights.
    batch_size : int, default=512
    n_threads : int, optional
        torch threads while it runs (restored after).

    Returns
    -------
    ndarray of shape (N, 128), float32
    """
    X = _check_images(X)
    with _threads(n_threads), torch_seeded(random_state):
        network = SmallCNN(n_classes=1, in_channels=_channels(X))
        return _embed(_Embedding(network), X, _channels(X), batch_size)


# ----------------------------------------------------------------------------
# SimCLR on the pool itself
# ----------------------------------------------------------------------------


def _augment(x, generator, min_scale=0.5, jitter=0.4):
    """Two SimCLR views' worth of random changes to a batch (B, C, H, W) in [-1, 1].

    Random resized crop (area scale in [min_scale, 1], aspect ratio 3/4 to 4/3,
    resampled to the same size), horizontal flip, brightness and contrast
    jitter (factors in [1 - jitter, 1 + jitter]). Colour changes beyond
    these do not exist for grayscale. Written on batches in torch (one
    ``affine_grid``), as torchvision's transforms work one image at a time.
    """
    b = len(x)
    rand = lambda *shape: torch.rand(*shape, generator=generator)  # noqa: E731
    scale = min_scale + (1 - min_scale) * rand(b)
    log_ratio = (rand(b) * 2 - 1) * np.log(4 / 3)
    ratio = torch.exp(log_ratio)
    w = torch.sqrt(scale * ratio).clamp(max=1.0)
    h = torch.sqrt(scale / ratio).clamp(max=1.0)
    cx = (rand(b) * 2 - 1) * (1 - w)
    cy = (rand(b) * 2 - 1) * (1 - h)
    flip = torch.where(rand(b) < 0.5, -1.0, 1.0)
    theta = torch.zeros(b, 2, 3)
    theta[:, 0, 0] = w * flip
    theta[:, 0, 2] = cx
    theta[:, 1, 1] = h
    theta[:, 1, 2] = cy
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    brightness = (rand(b, 1, 1, 1) * 2 - 1) * jitter
    contrast = 1 + (rand(b, 1, 1, 1) * 2 - 1) * jitter
    mean = out.mean(dim=(1, 2, 3), keepdim=True)
    return ((out - mean) * contrast + mean + brightness).clamp(-1, 1)


def _nt_xent(z1, z2, temperature):
    """SimCLR's NT-Xent loss of two views' projections (B, D) each: 2B-way cross-entropy."""
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    logits = z @ z.T / temperature
    n = len(z1)
    logits.fill_diagonal_(float("-inf"))  # an image is not its own positive
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)])
    return F.cross_entropy(logits, targets)


def simclr(X, epochs=10, batch_size=256, temperature=0.5, lr=1e-3, projection_dim=64,
           random_state=0, n_threads=None, verbose=False):
    """Self-supervised features: a SmallCNN trained with SimCLR on the pool itself.

    Each epoch shows every image twice, as two random views (:func:`_augment`);
    the network's 128-d embedding goes through a 2-layer projection head
    (128 -> 128 -> ``projection_dim``), and NT-Xent pulls the two views of an
    image together against the batch's other ``2 * batch_size - 2`` views.
    Adam, as a few epochs on CPU need a fast optimiser. The features are the
    embedding before the projection head (as SimCLR prescribes), L2-normalised
    (the distance TypiClust and ProbCover use).

    Parameters
    ----------
    X : ndarray of shape (N, H, W) or (N, H, W, C), uint8
    epochs : int, default=10
    batch_size : int, default=256
    temperature : float, default=0.5
        SimCLR's CIFAR-10 setting.
    lr : float, default=1e-3
    projection_dim : int, default=64
    random_state : None or int, default=0
        Seeds the weights, the batches and the augmentations.
    n_threads : int, optional
        torch threads while it trains (restored after).
    verbose : bool, default=False
        Print the loss after each epoch.

    Returns
    -------
    ndarray of shape (N, 128), float32
        Unit-norm rows.
    """
    X = _check_images(X)
    if int(epochs) < 1 or int(batch_size) < 2:
        raise FeatureError(f"simclr needs epochs >= 1 and batch_size >= 2; got {epochs}, "
                           f"{batch_size}.")
    n_channels = _channels(X)
    seed = check_seed(random_state)
    with _threads(n_threads), torch_seeded(seed):
        backbone = SmallCNN(n_classes=1, in_channels=n_channels)
        embed = _Embedding(backbone)
        dim = backbone.embedding_dim
        head = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(inplace=True),
                             nn.Linear(dim, int(projection_dim)))
        optimizer = torch.optim.Adam([*embed.parameters(), *head.parameters()], lr=float(lr))
        generator = torch.Generator().manual_seed(seed % 2**63)
        batch_size = min(int(batch_size), len(X))
        embed.train()
        for epoch in range(int(epochs)):
            order = torch.randperm(len(X), generator=generator).numpy()
            total, steps = 0.0, 0
            # Full batches only: a tiny last batch gives NT-Xent almost no negatives.
            for start in range(0, len(X) - batch_size + 1, batch_size):
                batch = X[np.sort(order[start:start + batch_size])]
                x = images_to_float(torch.from_numpy(batch), n_channels)
                views = torch.cat([_augment(x, generator), _augment(x, generator)])
                z = head(embed(views))
                loss = _nt_xent(z[:len(x)], z[len(x):], float(temperature))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                total, steps = total + loss.item(), steps + 1
            if verbose:
                print(f"simclr epoch {epoch + 1}/{epochs}: loss {total / max(steps, 1):.4f}",
                      flush=True)
        features = _embed(embed, X, n_channels, 512)
    return features / np.maximum(np.linalg.norm(features, axis=1, keepdims=True), 1e-12)


# ----------------------------------------------------------------------------
# The user's backbone
# ----------------------------------------------------------------------------


def load_backbone(architecture, weights, **model_kwargs):
    """A torchvision architecture with the weights of a file on disk, its head removed.

    Parameters
    ----------
    architecture : str
        A name of ``torchvision.models.list_models()`` (``'resnet18'``,
        ``'mobilenet_v3_small'``...).
    weights : path-like
        A ``state_dict`` saved with ``torch.save`` (read with
        ``weights_only=True``: no code in the file runs). Keys of a
        classification head that does not fit (another number of classes)
        may be missing or differ: the head is dropped anyway.
    **model_kwargs
        Passed to ``torchvision.models.get_model`` (e.g. ``num_classes`` to
        match the file's head).

    Returns
    -------
    torch.nn.Module
        In eval mode; its output is the layer before the classification
        head (the head, ``fc``, ``classifier`` or ``heads``, is replaced by
        ``nn.Identity``).

    Raises
    ------
    FeatureError
        Unknown architecture, missing file, or weights that do not fit the
        architecture (the message names the first mismatched keys).
    """
    import torchvision

    if architecture not in torchvision.models.list_models():
        raise FeatureError(f"Unknown torchvision architecture {architecture!r}; "
                           f"see torchvision.models.list_models().")
    path = Path(weights)
    if not path.is_file():
        raise FeatureError(f"The weights file {str(path)!r} does not exist; pass the path of a "
                           f"state_dict saved with torch.save(model.state_dict(), path).")
    # weights=None: an untrained network of that shape; nothing is downloaded.
    model = torchvision.models.get_model(architecture, weights=None, **model_kwargs)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unreadable file gets the same advice
        raise FeatureError(f"Cannot read {str(path)!r} as a torch state_dict ({exc}).") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]  # a training checkpoint around the weights
    head = next((name for name in ("fc", "classifier", "heads", "head") if hasattr(model, name)),
                None)
    if head is not None:
        setattr(model, head, nn.Identity())
        state = {k: v for k, v in state.items() if not k.startswith(f"{head}.")}
    result = model.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise FeatureError(
            f"The weights in {str(path)!r} do not fit torchvision's {architecture!r}: missing "
            f"{result.missing_keys[:3]}, unexpected {result.unexpected_keys[:3]}.")
    return model.eval()


def backbone_features(X, architecture, weights, input_size=None, batch_size=128,
                      n_threads=None, **model_kwargs):
    """Features of the user's backbone (:func:`load_backbone`) for every image of the pool.

    Images are scaled as skal's networks take them (``x / 255``, mean 0.5,
    std 0.5), grayscale repeated to 3 channels, and resized to
    ``input_size`` when given (bilinear).

    Parameters
    ----------
    X : ndarray of shape (N, H, W) or (N, H, W, C), uint8
    architecture : str
    weights : path-like
    input_size : int, optional
        The side the backbone expects (e.g. 224); None keeps the images' own.
    batch_size : int, default=128
    n_threads : int, optional
    **model_kwargs
        Passed to :func:`load_backbone`.

    Returns
    -------
    ndarray of shape (N, D), float32
    """
    X = _check_images(X)
    with _threads(n_threads):
        model = load_backbone(architecture, weights, **model_kwargs)
        return _embed(model, X, 3, int(batch_size), None if input_size is None else int(input_size))


# ----------------------------------------------------------------------------
# The entry point, with its cache
# ----------------------------------------------------------------------------

_METHODS = {"simclr": simclr, "pca": pixel_pca, "random_net": random_network,
            "backbone": backbone_features}
# Settings that change how fast, not what: left out of the cache key.
_SPEED_ONLY = {"n_threads", "verbose"}


def default_cache_dir():
    """Where :func:`pool_features` caches: ``$SKAL_CACHE_DIR/features``, else ``~/.cache/skal/features``."""
    root = os.environ.get("SKAL_CACHE_DIR") or Path.home() / ".cache" / "skal"
    return Path(root) / "features"


def cache_key(X, method, settings):
    """The cache key of one embedding: SHA-256 of the pool, the method and its settings.

    Parameters
    ----------
    X : ndarray
        The pool (its bytes, shape and dtype are hashed).
    method : str
    settings : dict
        The method's keyword arguments; speed-only ones (``n_threads``,
        ``verbose``) are left out; a ``weights`` file enters by its SHA-256.

    Returns
    -------
    str
        64 hex digits.
    """
    X = np.ascontiguousarray(X)
    described = {k: v for k, v in settings.items() if k not in _SPEED_ONLY}
    if "weights" in described:
        described["weights"] = file_sha256(described["weights"])
    digest = hashlib.sha256()
    digest.update(json.dumps({"version": _VERSION, "method": method, "shape": X.shape,
                              "dtype": str(X.dtype), "settings": described},
                             sort_keys=True, default=str).encode())
    digest.update(memoryview(X).cast("B"))
    return digest.hexdigest()


def pool_features(X, method="simclr", *, cache_dir=None, **settings):
    """Label-free features of every image of a pool: the one entry point, cached.

    Parameters
    ----------
    X : ndarray of shape (N, H, W) or (N, H, W, C), uint8
        The pool, as MedMNIST stores images.
    method : {'simclr', 'pca', 'random_net', 'backbone'}, default='simclr'
        See the module docstring.
    cache_dir : path-like, False or None, default=None
        Folder of the cache (``<key>.npy`` files, :func:`cache_key`); None is
        :func:`default_cache_dir`, False turns caching off.
    **settings
        Keyword arguments of the method's function (:func:`simclr`,
        :func:`pixel_pca`, :func:`random_network`, :func:`backbone_features`:
        the latter needs ``architecture`` and ``weights``).

    Returns
    -------
    features : ndarray of shape (N, D), float32

    Raises
    ------
    FeatureError
        Unknown method, bad images, or bad settings for the method.
    """
    if method not in _METHODS:
        raise FeatureError(f"Unknown feature method {method!r}; valid names are: "
                           f"{', '.join(FEATURES)}.")
    X = _check_images(X)
    if method == "backbone" and not {"architecture", "weights"} <= set(settings):
        raise FeatureError("features='backbone' needs architecture= (a torchvision model name) "
                           "and weights= (a state_dict file on disk).")
    path = None
    if cache_dir is not False:
        folder = default_cache_dir() if cache_dir is None else Path(cache_dir)
        path = folder / f"{cache_key(X, method, settings)}.npy"
        if path.is_file():
            return np.load(path)
    function = _METHODS[method]
    try:
        inspect.signature(function).bind(X, **settings)
    except TypeError as exc:  # an unknown or missing setting, named before any work
        raise FeatureError(f"Bad settings for features={method!r} ({function.__name__}): "
                           f"{exc}.") from None
    features = function(X, **settings)
    features = np.ascontiguousarray(features, dtype=np.float32)
    if path is not None:
        buffer = io.BytesIO()
        np.save(buffer, features)
        atomic_write(path, lambda fh: fh.write(buffer.getvalue()))
    return features

