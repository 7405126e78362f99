"""The network of a labeling project: built from its settings, loaded from its checkpoint.

The lowest layer above the files: :mod:`skal.label.project` checks a
method's requirements against :func:`build_network`, and
:mod:`skal.label.loop` trains and queries with it.
"""

from __future__ import annotations

import contextlib

__all__ = ["build_network", "load_network"]


class _OnePoolPass:
    """Mixin: while :meth:`sharing_pass` is on, one forward pass over the pool serves all.

    The query function and the explanation's wording (the picks'
    probabilities) both need the pool's pass; without this the pool would go
    through the network twice (the longer part of the wait between batches).
    Only the very array given is served from the cache.
    """

    _pool_pass = None

    @contextlib.contextmanager
    def sharing_pass(self, X_pool):
        self._pool_pass = [X_pool, None]
        try:
            yield
        finally:
            self._pool_pass = None

    def _cached(self, X):
        memo = self._pool_pass
        if memo is None or X is not memo[0]:
            return None
        if memo[1] is None:
            memo[1] = super().predict_proba_and_embed(X)
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
