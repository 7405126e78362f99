"""The network of a labeling project: built from its settings, loaded from its checkpoint.

The lowest layer above the files: :mod:`skal.label.project` checks a
method's requirements against :func:`build_network`, and
:mod:`skal.label.loop` trains and queries with it.
"""

from __future__ import annotations

import contextlib

import numpy as np

__all__ = ["build_network", "load_network", "PASS_CHUNK_BATCHES"]

#: The network's batches per call when a pass goes over the pool (see ``_OnePoolPass``).
PASS_CHUNK_BATCHES = 8


class _OnePoolPass:
    """Mixin: while :meth:`sharing_pass` is on, one forward pass over the pool serves all.

    The query function and the explanation's wording (the picks'
    probabilities) both need the pool's pass; without this the pool would go
    through the network twice (the longer part of the wait between batches).
    Only the very array given is served from the cache.

    A pass over the pool (the shared one, and ``predict_loss``) runs
    :data:`PASS_CHUNK_BATCHES` of the network's batches per call and writes
    each call's output into arrays made once. One call over the whole pool
    keeps a small output tensor per batch until its end; glibc places them
    in the memory the batches' activations freed, which then no longer fits
    the next batch's activations and stays held, unused: the server's
    memory grew by 2.4 GB in one pass over 40,000 64x64 images
    (``benchmarks/results/label_scale.md``; ``benchmarks/label_memory.py
    --allocator`` shows it without a network). Calls of whole batches feed
    the network the same batches, so the numbers are the same.
    """

    _pool_pass = None

    @contextlib.contextmanager
    def sharing_pass(self, X_pool):
        self._pool_pass = [X_pool, None]
        try:
            yield
        finally:
            self._pool_pass = None

    def _in_chunks(self, method, X):
        """``method(X)``, called on :data:`PASS_CHUNK_BATCHES` batches of ``X`` at a time.

        ``method`` returns an array or a tuple of arrays with one row per
        item; so does this.
        """
        if not isinstance(X, np.ndarray):
            return method(X)
        # The network's own batch size for prediction: chunks of whole batches.
        batch = self.get_iterator(self.get_dataset(X[:1]), training=False).batch_size
        step = max(int(batch), 1) * PASS_CHUNK_BATCHES
        if len(X) <= step:
            return method(X)
        outs = None
        for start in range(0, len(X), step):
            parts = method(X[start:start + step])
            single = not isinstance(parts, tuple)
            parts = (parts,) if single else parts
            if outs is None:
                outs = [np.empty((len(X), *p.shape[1:]), dtype=p.dtype) for p in parts]
            for out, part in zip(outs, parts):
                out[start:start + len(part)] = part
        return outs[0] if single else tuple(outs)

    def _is_pool(self, X):
        """Whether ``X`` is the very pool array of the current :meth:`sharing_pass`."""
        return self._pool_pass is not None and X is self._pool_pass[0]

    def _cached(self, X):
        if not self._is_pool(X):
            return None
        memo = self._pool_pass
        if memo[1] is None:
            memo[1] = self._in_chunks(super().predict_proba_and_embed, X)
        return memo[1]

    def predict_proba_and_embed(self, X):
        cached = self._cached(X)
        return super().predict_proba_and_embed(X) if cached is None else cached

    def predict_proba(self, X):
        cached = self._cached(X)
        return super().predict_proba(X) if cached is None else cached[0]

    def embed(self, X):
        cached = self._cached(X)
        return super().embed(X) if cached is None else cached[1]


def _network_classes():
    from skal.estimator import ImageClassifier, LossPredictionClassifier

    class LabelImageClassifier(_OnePoolPass, ImageClassifier):
        """An ImageClassifier whose pool pass is shared by the query and its explanation."""

    class LabelLossPredictionClassifier(_OnePoolPass, LossPredictionClassifier):
        """A LossPredictionClassifier whose pool pass is shared likewise."""

        def predict_loss(self, X):
            if not self._is_pool(X):
                return super().predict_loss(X)
            return self._in_chunks(super().predict_loss, X)  # a pass over the pool

    return LabelImageClassifier, LabelLossPredictionClassifier


_NETWORKS = None


def build_network(config, callbacks=()):
    """An unfitted network for a project's settings, from skal's one factory.

    :func:`skal.protocols.build_estimator` builds it from the project's
    preset (``config['preset']``), so it trains as an experiment with that
    preset does (learning-rate schedule, ``min_epoch_size``, optimiser, loss
    head), with the project's own model, epochs, learning rate, batch size,
    dropout, seed, image channels and classes; the batch is the budget
    (SCAL's trim size). It warm-starts across rounds.

    Parameters
    ----------
    config : dict
        ``project.json`` as :class:`~skal.label.project.Project` reads it
        (a project made before the preset was recorded reads as the default one).
    callbacks : sequence of (str, skorch Callback)

    Returns
    -------
    ImageClassifier or LossPredictionClassifier
        Whose pool pass is shared by the query and its explanation.
    """
    from skal.protocols import build_estimator

    global _NETWORKS
    if _NETWORKS is None:
        _NETWORKS = _network_classes()
    return build_estimator(
        config["preset"], config["method"], None, int(config["seed"]),
        n_classes=len(config["classes"]), budget=int(config["batch"]),
        model=config["model"], epochs=int(config["epochs"]), lr=float(config["lr"]),
        batch_size=int(config["batch_size"]), n_channels=int(config["channels"]),
        dropout=None if config["dropout"] is None else float(config["dropout"]),
        device=config.get("device", "auto"),
        warm_start=True, callbacks=list(callbacks), estimator_types=_NETWORKS)


def load_network(project, callbacks=()):
    """The project's last trained network (initialised from the checkpoint), or None."""
    path = project.model_params_path
    if path is None:
        return None
    net = build_network(project.config, callbacks)
    net.initialize()
    net.load_params(f_params=str(path))
    net.epochs_trained_ = int(project.model_meta.get("epochs_trained", 0))
    return net
