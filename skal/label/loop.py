"""The active-learning loop of a labeling project: train on the person's labels, query the next batch.

The loop is modAL's ``ActiveLearner`` with skal's estimator and the
project's query function, as in the README: building the learner with the
training set fits it (warm start: the network continues from the last
checkpoint), and ``learner.query`` picks the batch. Before any label there
is no model, so the first batch is a random draw.

Training and querying run without holding ``Project.lock`` (they take
seconds to minutes); the lock is taken only to read a snapshot of the
labels and to write the results, so the server keeps answering meanwhile.

Two ways to go on after a submit (:func:`advance`):

* synchronous: train on every submitted label, then query the next batch;
  the person waits for both, and every batch comes from a model that has
  seen every label;
* ahead (the page's default): the next batch was already chosen while the
  person labeled, by the newest model there was, so it opens at once; the
  model then catches up on the new labels and chooses the batch after it.
  Each batch records the ``model_version`` that picked it.

Both leave the project files consistent at every step: a batch is one
appended line, so a SIGKILL at any moment loses no submitted label and
cannot put an image in two open batches.
"""

from __future__ import annotations

import io
import time

import numpy as np
from skorch.callbacks import Callback

from skal.label.network import build_network, load_network
from skal.label.project import FORECAST_LABELS, KEPT_MODELS, STOP_SET_SIZE, now
from skal.label.why import explain

__all__ = ["build_network", "load_network", "needs_training", "train", "stopping_verdict",
           "query_batch", "advance"]


class _Progress(Callback):
    """Reports the fraction of training batches done (skorch callback).

    The number of batches is the network's own (its iterator's length, which
    counts ``min_epoch_size``'s extra passes), times its epochs.
    """

    def __init__(self, report):
        self.report, self.total, self.done = report, 1, 0

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        batches = len(net.get_iterator(net.get_dataset(X, y), training=True))
        self.total, self.done = max(net.max_epochs * batches, 1), 0

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        if training:
            self.done += 1
            self.report("training", min(self.done / self.total, 1.0))


def _submitted(project, ids):
    """``ids`` without the items of open batches (answers there may still change)."""
    taken = [i for b in project.unsubmitted_batches() for i in b["ids"]]
    return ids[~np.isin(ids, taken)] if taken else ids


def _snapshot(project):
    """What training needs, read under the lock: ids, targets, digest, held-out set.

    Only submitted labels count (and imported or corrected ones): answers
    in the open batch are still being given, and training on them would
    start a new training at every keystroke.
    """
    with project.lock:
        ids = _submitted(project, project.labeled_ids(holdout=False))
        held = _submitted(project, project.labeled_ids(holdout=True))
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
    if fit:
        return ActiveLearner(net, query_strategy=strategy, X_training=project.rows(ids),
                             y_training=y)
    learner = ActiveLearner(net, query_strategy=strategy)
    # The model was trained on exactly this set (its digest matches); restore it
    # without refitting, so query strategies see the labeled set (core-set does).
    learner.X_training, learner.y_training = project.rows(ids), y
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
    callbacks = [("label_progress", _Progress(report))]
    net = load_network(project, callbacks) or build_network(config, callbacks)
    report("training", 0.0)
    start = time.perf_counter()
    learner = _learner(project, net, ids, y, fit=True)
    seconds = time.perf_counter() - start
    accuracy = None
    if len(snapshot["held"]) >= int(config["min_holdout"]):
        from sklearn.metrics import accuracy_score

        accuracy = float(accuracy_score(snapshot["y_held"],
                                        net.predict(project.rows(snapshot["held"]))))
    buf = io.BytesIO()
    net.save_params(f_params=buf)
    # The stopping verdict, computed once here and kept with the model: the page
    # and ``skal label status`` read it (the earlier kept models' weights are
    # reloaded for their stop-set predictions; this one's are in memory).
    kept = project.kept_model_paths()[-(KEPT_MODELS - 1):]
    point = None if accuracy is None else (int(len(ids)), accuracy)
    verdict = stopping_verdict(project, [*kept, net], point)
    with project.lock:
        version = project.model_version + 1
        project.set_model({"version": version, "round": snapshot["round"],
                           "train_digest": snapshot["digest"], "n_train": int(len(ids)),
                           "n_holdout": int(len(snapshot["held"])), "accuracy": accuracy,
                           "epochs_trained": int(net.epochs_trained_),
                           "train_seconds": round(seconds, 3), "time": now(),
                           "stopping": verdict},
                          buf.getvalue())
        project.add_curve_point({"round": snapshot["round"], "model_version": version,
                                 "n_train": int(len(ids)), "n_holdout": int(len(snapshot["held"])),
                                 "accuracy": "" if accuracy is None else round(accuracy, 4),
                                 "time": now()})
    return learner


def stop_set(project, size=STOP_SET_SIZE):
    """The fixed stop set: up to ``size`` of the project's images, drawn once by its seed.

    Returns
    -------
    ndarray of shape (min(size, n_items), H, W[, C]), uint8
    """
    rng = np.random.default_rng(int(project.config["seed"]))
    size = min(int(size), project.n_items)
    return project.rows(np.sort(rng.choice(project.n_items, size, replace=False)))


def stopping_verdict(project, models, point=None, n_more=FORECAST_LABELS):
    """What :func:`skal.stopping.assess` says about ``models`` and the held-out curve.

    Parameters
    ----------
    project : Project
    models : sequence of path or fitted network
        Successive models, oldest first: weight files (loaded into the
        project's network) or networks in memory.
    point : tuple (n_train, accuracy), optional
        A curve point not yet in ``curve.csv`` (the model being stored).
    n_more : int, default=FORECAST_LABELS

    Returns
    -------
    dict
        :func:`skal.stopping.assess`'s result (``sentence``, ``agreement``,
        ``stable``, ``forecast``, ...).
    """
    from skal import stopping

    points = {}  # the latest accuracy at each training-set size
    for row in project.curve:
        if row.get("accuracy") not in (None, ""):
            points[int(row["n_train"])] = float(row["accuracy"])
    if point is not None:
        points[int(point[0])] = float(point[1])
    n = sorted(points)
    images = stop_set(project) if len(models) else None
    predictions = []
    for model in models:
        if not hasattr(model, "predict"):
            net = build_network(project.config)
            net.initialize()
            net.load_params(f_params=str(model))
            model = net
        predictions.append(np.asarray(model.predict(images)))
    return stopping.assess(predictions, n or None, [points[k] for k in n] or None,
                           n_more=n_more, window=KEPT_MODELS)


def _query_seed(config, round_):
    return int(np.random.SeedSequence([int(config["seed"]), int(round_)]).generate_state(1)[0])


def _cold_start(project, name, X_pool, n, seed):
    """(picks, why) of a label-free first batch (``init --initial``); features cached in the project."""
    import inspect

    from skal.query import get_initial_strategy

    strategy = get_initial_strategy(name)
    kwargs = {"cache_dir": project.path / "features"}
    if "n_classes" in inspect.signature(strategy).parameters:
        kwargs["n_classes"] = len(project.classes)
    picked, utilities = strategy(None, X_pool, n, random_state=seed, return_utilities=True,
                                 **kwargs)
    return picked, explain(strategy, picked, utilities)


def query_batch(project, learner=None, progress=None, ahead=False):
    """Query a batch with the project's method and record it: the open batch, or the next one.

    Parameters
    ----------
    project : Project
    learner : modAL ActiveLearner or None
        None before any training: the batch is drawn at random.
    progress : callable, optional
    ahead : bool, default=False
        Choose the batch after the open one (which the pool then leaves
        out). Without it, only a missing open batch is queried.

    Returns
    -------
    dict or None
        The batch recorded (or the one another caller recorded first); None
        when nothing is left to label.
    """
    from skal.query import random_sampling

    slots = 2 if ahead else 1
    (progress or (lambda stage, fraction: None))("querying", 0.0)
    with project.lock:
        unsubmitted = project.unsubmitted_batches()
        if len(unsubmitted) >= slots:
            return unsubmitted[slots - 1]
        pool = project.pool_ids()
        round_ = len(project.batches)
        version = project.model_version
    if len(pool) == 0:
        return None
    config = project.config
    n = min(int(config["batch"]), len(pool))
    seed = _query_seed(config, round_)
    X_pool = project.rows(pool)
    start = time.perf_counter()
    initial = config.get("initial", "random")
    if learner is None and initial != "random":  # a label-free first batch (init --initial)
        method = initial
        picked, why = _cold_start(project, initial, X_pool, n, seed)
    elif learner is None:
        method = "random"
        picked, utilities = random_sampling(None, X_pool, n, random_state=seed,
                                            return_utilities=True)
        why = explain(method, picked, utilities, plain="picked at random: there is no model yet")
    else:
        method, network = config["method"], learner.estimator
        with network.sharing_pass(X_pool):
            # modAL's learner.query, asking for the utilities the picks were made by.
            picked, utilities = learner.query_strategy(learner, X_pool, n_instances=n,
                                                       random_state=seed, return_utilities=True)
            proba = network.predict_proba(X_pool)[picked]  # the shared pass: not a new one
        why = explain(method, picked, utilities, proba=proba, classes=project.classes)
    picked = np.asarray(picked, dtype=np.int64)
    guesses = why.pop("guesses")
    batch = {"ids": pool[picked].tolist(), "files": [project.files[i] for i in pool[picked]],
             "method": method, "model_version": version, **why,
             "guesses": None if guesses is None else [project.classes[g] for g in guesses],
             "query_seconds": round(time.perf_counter() - start, 3)}
    with project.lock:
        unsubmitted = project.unsubmitted_batches()
        if len(unsubmitted) >= slots or len(project.batches) != round_:
            # Another caller recorded a batch meanwhile; a submit alone (one
            # fewer open batch, same count) leaves this one valid.
            return unsubmitted[-1] if unsubmitted else None
        return project.add_batch(batch)


def _query_learner(project, snapshot, learner):
    """The newest model as a learner over the current labels, or None before any model.

    ``learner`` (the one just trained, or None) saves reading the checkpoint.
    The labeled set is the current one even when the model is older: query
    strategies that look at it (core-set) then avoid what is labeled now.
    """
    if project.model_meta is None:
        return None
    network = learner.estimator if learner is not None else load_network(project)
    return _learner(project, network, snapshot["ids"], snapshot["y"], fit=False)


def advance(project, progress=None, ahead=False):
    """Bring the project to an open batch; with ``ahead``, also catch up and choose the next.

    Synchronous (``ahead=False``): when no batch is open, train if the
    labels changed, then query. This is also what a restart does when it
    finds the last batch submitted but no next one.

    Ahead: repeat until nothing is left to do: when no batch is open, query
    one at once with the newest model there is (training first only when
    there is no model yet but labels to train on); train when the submitted
    labels changed; choose the next batch when none is chosen. A submit
    that comes meanwhile is picked up at the next step.

    Returns
    -------
    dict or None
        The open batch, or None when every item is answered.
    """
    learner = None  # the model trained in this call, if any
    while True:
        with project.lock:
            unsubmitted = project.unsubmitted_batches()
        snapshot = _snapshot(project)
        stale = needs_training(project, snapshot)
        if not unsubmitted:
            if stale and not (ahead and project.model_meta is not None):
                learner = train(project, progress, snapshot)
            if query_batch(project, _query_learner(project, snapshot, learner), progress) is None:
                break  # nothing left to label
        elif not ahead:
            break
        elif stale:
            learner = train(project, progress, snapshot)
        elif len(unsubmitted) < 2:
            if query_batch(project, _query_learner(project, snapshot, learner), progress,
                           ahead=True) is None:
                break
        else:
            break
    with project.lock:
        return project.open_batch()
