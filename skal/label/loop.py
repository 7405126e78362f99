"""The active-learning loop of a labeling project: train on the person's labels, query the next batch.

The loop is modAL's ``ActiveLearner`` with skal's estimator and the
project's query function, as in the README: building the learner with the
training set fits it (warm start: the network continues from the last
checkpoint), and ``learner.query`` picks the batch. Before any label there
is no model, so the first batch is a random draw.

Training and querying run without holding ``Project.lock`` (they take
seconds to minutes); the lock is taken only to read a snapshot of the
labels and to write the results, so the server keeps answering meanwhile.
"""

from __future__ import annotations

import contextlib
import io
import math
import time

import numpy as np
from skorch.callbacks import Callback

from skal.label.project import now
from skal.label.why import explain

__all__ = ["build_network", "load_network", "needs_training", "train", "query_batch", "advance"]


class _OnePoolPass:
    """Mixin: while :meth:`sharing_pass` is on, one forward pass over the pool serves all.

    The query function and :func:`skal.label.why.explain` both need the
    pool's probabilities and embeddings; without this the pool would go
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
    """An unfitted network for a project's settings.

    A method that needs a loss-prediction head (ll4al, scal) gets a
    :class:`~skal.estimator.LossPredictionClassifier`, the others an
    :class:`~skal.estimator.ImageClassifier`; both warm-start across rounds.

    Parameters
    ----------
    config : dict
        ``project.json``.
    callbacks : sequence of (str, skorch Callback)

    Returns
    -------
    ImageClassifier
    """
    from skal.query import strategy_requirements

    global _NETWORKS
    if _NETWORKS is None:
        _NETWORKS = _network_classes()
    image, loss = _NETWORKS
    cls = loss if "loss_head" in strategy_requirements(config["method"]) else image
    return cls(config["model"], n_classes=len(config["classes"]),
               n_channels=int(config["channels"]), dropout=float(config["dropout"]),
               max_epochs=int(config["epochs"]), lr=float(config["lr"]),
               batch_size=int(config["batch_size"]), warm_start=True,
               random_state=int(config["seed"]), device=config.get("device", "auto"),
               callbacks=list(callbacks) or None)


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


class _Progress(Callback):
    """Reports the fraction of training batches done (skorch callback)."""

    def __init__(self, report, total):
        self.report, self.total, self.done = report, max(int(total), 1), 0

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        if training:
            self.done += 1
            self.report("training", min(self.done / self.total, 1.0))


def _snapshot(project):
    """What training needs, read under the lock: ids, targets, digest, held-out set."""
    with project.lock:
        ids = project.labeled_ids(holdout=False)
        held = project.labeled_ids(holdout=True)
        return {"ids": ids, "y": project.targets(ids), "digest": project.training_digest(ids),
                "held": held, "y_held": project.targets(held), "round": project.round}


def needs_training(project, snapshot=None):
    """Whether the labels for training differ from those the last model was trained on."""
    snapshot = snapshot or _snapshot(project)
    if len(snapshot["ids"]) == 0:
        return False
    meta = project.model_meta
    return meta is None or meta.get("train_digest") != snapshot["digest"]


def _learner(project, net, ids, y, fit):
    """A modAL ActiveLearner around ``net``; ``fit`` trains it on the labeled set now."""
    from modAL.models import ActiveLearner

    from skal.query import get_query_strategy

    strategy = get_query_strategy(project.config["method"])
    X = project.images
    if fit:
        return ActiveLearner(net, query_strategy=strategy, X_training=X[ids], y_training=y)
    learner = ActiveLearner(net, query_strategy=strategy)
    # The model was trained on exactly this set (its digest matches); restore it
    # without refitting, so query strategies see the labeled set (core-set does).
    learner.X_training, learner.y_training = X[ids], y
    return learner


def train(project, progress=None, snapshot=None):
    """Train on the labels (warm start from the checkpoint) and store the new model.

    Also scores the held-out slice and appends a learning-curve point (the
    accuracy is left empty until ``min_holdout`` items are held out).

    Parameters
    ----------
    project : Project
    progress : callable, optional
        ``progress(stage, fraction)``, called from this thread.
    snapshot : dict, optional
        From :func:`_snapshot`; read now when omitted.

    Returns
    -------
    modAL.models.ActiveLearner
        Fitted on the training labels.
    """
    snapshot = snapshot or _snapshot(project)
    config = project.config
    ids, y = snapshot["ids"], snapshot["y"]
    report = progress or (lambda stage, fraction: None)
    steps = int(config["epochs"]) * math.ceil(len(ids) / int(config["batch_size"]))
    callbacks = [("label_progress", _Progress(report, steps))]
    net = load_network(project, callbacks) or build_network(config, callbacks)
    report("training", 0.0)
    start = time.perf_counter()
    learner = _learner(project, net, ids, y, fit=True)
    seconds = time.perf_counter() - start
    accuracy = None
    if len(snapshot["held"]) >= int(config["min_holdout"]):
        from sklearn.metrics import accuracy_score

        accuracy = float(accuracy_score(snapshot["y_held"],
                                        net.predict(project.images[snapshot["held"]])))
    buf = io.BytesIO()
    net.save_params(f_params=buf)
    with project.lock:
        version = project.model_version + 1
        project.set_model({"version": version, "round": snapshot["round"],
                           "train_digest": snapshot["digest"], "n_train": int(len(ids)),
                           "n_holdout": int(len(snapshot["held"])), "accuracy": accuracy,
                           "epochs_trained": int(net.epochs_trained_),
                           "train_seconds": round(seconds, 3), "time": now()},
                          buf.getvalue())
        project.add_curve_point({"round": snapshot["round"], "model_version": version,
                                 "n_train": int(len(ids)), "n_holdout": int(len(snapshot["held"])),
                                 "accuracy": "" if accuracy is None else round(accuracy, 4),
                                 "time": now()})
    return learner


def _query_seed(config, round_):
    return int(np.random.SeedSequence([int(config["seed"]), int(round_)]).generate_state(1)[0])


def _cold_start(project, name, X_pool, n, seed):
    """(picks, why) of a cold-start strategy before any model; features cached in the project."""
    import inspect

    from skal.query import get_initial_strategy

    strategy = get_initial_strategy(name)
    kwargs = {"cache_dir": project.path / "features"}
    if "n_classes" in inspect.signature(strategy).parameters:
        kwargs["n_classes"] = len(project.classes)
    picked, utilities = strategy(None, X_pool, n, random_state=seed, return_utilities=True,
                                 **kwargs)
    why = explain("random", None, X_pool, picked)
    why.update(score_name=f"{name} (no labels)",
               description=f"{name}: typical, diverse images on self-supervised features "
                           f"(no model yet); the score is its pick's utility",
               scores=[float(round(u, 6)) for u in utilities])
    return picked, why


def query_batch(project, learner=None, progress=None):
    """Query the next batch with the project's method and record it as the open batch.

    Parameters
    ----------
    project : Project
    learner : modAL ActiveLearner or None
        None before any training: the batch is drawn at random.
    progress : callable, optional

    Returns
    -------
    dict or None
        The open batch; None when nothing is left to label.
    """
    from skal.query import random_sampling

    (progress or (lambda stage, fraction: None))("querying", 0.0)
    with project.lock:
        if project.open_batch() is not None:
            return project.open_batch()
        pool = project.pool_ids()
        round_ = project.round
        version = project.model_version
    if len(pool) == 0:
        return None
    config = project.config
    n = min(int(config["batch"]), len(pool))
    seed = _query_seed(config, round_)
    X_pool = project.images[pool]
    start = time.perf_counter()
    initial = config.get("initial", "random")
    if learner is None and initial != "random":  # a label-free first batch (init --initial)
        picked, why = _cold_start(project, initial, X_pool, n, seed)
        method, network = initial, None
    elif learner is None:
        picked = random_sampling(None, X_pool, n, random_state=seed)
        method, network = "random", None
        why = explain(method, network, X_pool, picked)
    else:
        method, network, X_labeled = config["method"], learner.estimator, learner.X_training
        with network.sharing_pass(X_pool):
            picked, _ = learner.query(X_pool, n_instances=n, random_state=seed)
            why = explain(method, network, X_pool, picked, X_labeled=X_labeled, seed=seed)
    picked = np.asarray(picked, dtype=np.int64)
    guesses = why.pop("guesses")
    batch = {"ids": pool[picked].tolist(), "files": [project.files[i] for i in pool[picked]],
             "method": method, "model_version": version, **why,
             "guesses": None if guesses is None else [project.classes[g] for g in guesses],
             "query_seconds": round(time.perf_counter() - start, 3)}
    with project.lock:
        if project.open_batch() is not None:  # another caller got there first
            return project.open_batch()
        return project.add_batch(batch)


def advance(project, progress=None):
    """Bring the project to an open batch: train if the labels changed, then query.

    The step after a submit, and what a restart does when it finds the last
    batch submitted but no next one (killed while training or querying).

    Returns
    -------
    dict or None
        The open batch, or None when every item is answered.
    """
    with project.lock:
        if project.open_batch() is not None:
            return project.open_batch()
    snapshot = _snapshot(project)
    if needs_training(project, snapshot):
        learner = train(project, progress, snapshot)
    elif project.model_meta is not None and len(snapshot["ids"]):
        learner = _learner(project, load_network(project), snapshot["ids"], snapshot["y"],
                           fit=False)
    else:
        learner = None
    return query_batch(project, learner, progress)
