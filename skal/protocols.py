"""Named experiment presets, and the one function that turns a preset into an experiment.

``paper`` is the MedMNIST study's protocol exactly;
``fast`` keeps its shape (budgets, cycles, warm start, pool rule, evaluation)
but trains a small CNN for a few epochs, so a whole run fits on two CPU cores.
:func:`build_experiment` builds, for a preset, a method, a dataset and a
trial seed, the estimator and the :class:`~skal.experiment.ActiveLearningClassifier`
around it; the command line and the benchmark runner both call it.
:func:`build_estimator`, which it calls, is the one factory of networks:
labeling projects build theirs with it too.

Examples
--------
>>> from skal.protocols import get_preset
>>> from skal.data import dataset_info
>>> paper = get_preset("paper")
>>> paper.budget(dataset_info("organamnist")), paper.budget(dataset_info("breastmnist"))
(700, 10)
>>> al = build_experiment("fast", "random", dataset_info("pneumoniamnist"), seed=0)
>>> al.query_size, al.n_cycles, al.estimator.module
(100, 10, 'small_cnn')
"""

from __future__ import annotations

import contextlib
import random
from dataclasses import dataclass, field
from types import MappingProxyType

import numpy as np
import torch
from skorch.callbacks import LRScheduler
from torch.optim.lr_scheduler import MultiStepLR

from skal.data import dataset_info
from skal.estimator import ChannelsLast, ImageClassifier, LossPredictionClassifier
from skal.experiment import ActiveLearningClassifier
from skal.query import strategy_requirements
from skal.registry import lookup

__all__ = [
    "PAPER_BUDGETS",
    "PRESETS",
    "Preset",
    "build_estimator",
    "build_experiment",
    "get_preset",
    "paper_budget",
    "scal_trim_size",
    "trial_globals",
]

#: The study's per-cycle budget (also the initial set's size), by dataset.
PAPER_BUDGETS = MappingProxyType({
    "pathmnist": 2500,
    "dermamnist": 140,
    "octmnist": 2000,
    "pneumoniamnist": 100,
    "bloodmnist": 240,
    "tissuemnist": 3300,
    "organamnist": 700,
    "organcmnist": 250,
    "organsmnist": 280,
})


def paper_budget(info):
    """The study's per-cycle budget for a dataset.

    Parameters
    ----------
    info : DatasetInfo or str
        The dataset (or its flag).

    Returns
    -------
    budget : int
        :data:`PAPER_BUDGETS` where the study gives one. Otherwise
        (breastmnist, retinamnist, chestmnist) the study's rule of about 2 %
        of the training split, rounded to an even number:
        ``2 * round(0.01 * n_train)`` (breastmnist 10, retinamnist 22,
        chestmnist 1570). Even, like most of the study's budgets, so that
        LL4AL's pairwise ranking loss pairs every item of a full batch.
    """
    if isinstance(info, str):
        info = dataset_info(info)
    if info.flag in PAPER_BUDGETS:
        return PAPER_BUDGETS[info.flag]
    return max(2, 2 * round(0.01 * info.n_samples["train"]))


def scal_trim_size(n_initial):
    """SCAL's removal size, computed once from the initial set as the reference does.

    ``r = max(n_initial // 100, 2)``, made even: each later cycle leaves out of
    the joint training the ``r // 2`` lowest-loss items among those labeled
    before and the ``r // 2`` lowest-loss among the newly queried ones (see
    :class:`~skal.estimator.LossPredictionClassifier`'s ``trim_size``).

    Parameters
    ----------
    n_initial : int

    Returns
    -------
    int
    """
    r = max(int(n_initial) // 100, 2)
    return r - r % 2


@contextlib.contextmanager
def trial_globals(seed):
    """While a trial runs: the global generators seeded with ``seed`` and cuDNN as the study sets it.

    The study seeds python's ``random``, numpy's and torch's global
    generators (CPU and every GPU) with the trial number, and makes cuDNN
    deterministic (``deterministic=True``, ``benchmark=False``). skal's
    estimators and queries draw from generators of their own, seeded
    explicitly, so their results do not depend on this; third-party code
    that draws from the globals is then reproducible too.

    This is the one place where skal changes process-wide state unasked
    (:func:`skal.runner.run_cell`'s ``threads`` is asked for), and only
    inside this context: on exit (also on error) the three generators'
    states and the two cuDNN flags are restored to what they were. Other
    threads of the process see the change while it lasts, so trials in
    threads of one process take turns (:func:`skal.runner.run_cell`).

    Parameters
    ----------
    seed : int
        0 <= seed < 2**32.
    """
    python_state, numpy_state = random.getstate(), np.random.get_state()
    cudnn = torch.backends.cudnn
    flags = cudnn.deterministic, cudnn.benchmark
    # fork_rng saves and restores torch's CPU generator and those of the GPUs listed.
    gpus = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    try:
        with torch.random.fork_rng(devices=gpus):
            random.seed(seed)
            np.random.seed(seed)
            torch.manual_seed(seed)
            # As the study does: cuDNN's autotuned kernels are not reproducible.
            cudnn.deterministic, cudnn.benchmark = True, False
            yield
    finally:
        random.setstate(python_state)
        np.random.set_state(numpy_state)
        cudnn.deterministic, cudnn.benchmark = flags


@dataclass(frozen=True)
class Preset:
    """A named experiment protocol.

    Attributes
    ----------
    name : str
    description : str
    model : str
        Backbone name in :data:`skal.models.MODELS`.
    n_channels : int
        Channels fed to the network (3: grayscale repeated, as the study's ``as_rgb``).
    lr, momentum, weight_decay : float
        SGD settings.
    batch_size : int
    epochs : int
        Epochs per cycle.
    lr_milestones : tuple of int
        Epochs (within a cycle) at which the learning rate is multiplied by
        ``lr_gamma`` (skorch ``LRScheduler`` with ``MultiStepLR``; it restarts
        every cycle). Scaled with the epochs when they are overridden.
    lr_gamma : float
    n_cycles : int
        Trainings per trial (queries happen between them).
    n_trials : int
        Trials; trial ``t`` uses seed ``t``.
    subsample : None, int or 'paper'
        Pool subsample rule of the queries (:func:`build_experiment` gives
        SCAL None: it scores the whole pool, as in the study).
    warm_start : bool
        Keep the network's weights across cycles.
    loss_head : mapping
        LossPredictionClassifier settings of LL4AL and SCAL (the head's name
        ``loss_head``, margin, loss_weight, epoch_loss); ``epoch_loss`` scales
        with overridden epochs. ``paper`` uses the study's head (``'study'``),
        ``fast`` the learning-loss paper's (``'standard'``).
    scal_finetune_epochs : int
        SCAL's loss-head fine-tuning epochs.
    mc_dropout : float
        Dropout rate given to the network for strategies that need MC
        dropout (BALD); not part of the study, whose network has none.
    eval_split : str
        The split evaluated after every cycle.
    min_epoch_size : int
        Items each training epoch presents at least (the estimator's
        ``min_epoch_size``): small labeled sets are passed over several times
        per epoch. 0 is one pass, as the study trains.
    channels_last : bool
        Train with the weights in channels-last order
        (:class:`~skal.estimator.ChannelsLast`): faster convolutions on a CPU,
        other last digits, so a grid's cells must all use the same setting.
    """

    name: str
    description: str
    model: str
    n_channels: int
    lr: float
    momentum: float
    weight_decay: float
    batch_size: int
    epochs: int
    lr_milestones: tuple
    lr_gamma: float
    n_cycles: int
    n_trials: int
    subsample: object
    warm_start: bool
    loss_head: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    scal_finetune_epochs: int = 20
    mc_dropout: float = 0.3
    eval_split: str = "test"
    min_epoch_size: int = 0
    channels_last: bool = False

    def budget(self, info):
        """Per-cycle budget (and initial-set size) for a dataset: :func:`paper_budget`."""
        return paper_budget(info)

    def scaled(self, value, epochs):
        """An epoch index of this preset, scaled to a run of ``epochs`` epochs."""
        if epochs == self.epochs:
            return value
        return max(1, round(value * epochs / self.epochs))


PRESETS = MappingProxyType({
    "paper": Preset(
        name="paper",
        description="the MedMNIST study's protocol: ResNet-18, 50 epochs a cycle, "
                    "10 cycles, 5 trials",
        model="resnet18",
        n_channels=3,
        lr=0.001,
        momentum=0.9,
        weight_decay=5e-4,
        batch_size=32,
        epochs=50,
        lr_milestones=(40,),
        lr_gamma=0.1,
        n_cycles=10,
        n_trials=5,
        subsample="paper",
        warm_start=True,
        loss_head=MappingProxyType({"loss_head": "study", "margin": 1.0, "loss_weight": 1.0,
                                    "epoch_loss": 30}),
        scal_finetune_epochs=20,
    ),
    # Sized for two CPU cores: the study's budgets, cycles, pool rule and warm
    # start, with the small CNN, 8 epochs a cycle and a 10x learning rate (a
    # few dozen SGD steps at lr 0.001 barely move the weights). Epoch-based
    # settings keep the paper's proportions: decay after 80 % of the epochs,
    # ranking loss detached after 60 %, loss-head fine-tuning 40 %.
    # min_epoch_size=400: an epoch presents at least 400 images (13 batches),
    # so even a 10-image first set gets ~100 SGD steps a cycle. With one pass
    # (~4 steps an epoch on 100 images) the first model ranked (AUC 0.89 on
    # pneumoniamnist) but still called every image the majority class; 400
    # made the first model beat the majority rate on every seed, 800 added
    # ~0.02 ACC at twice the early cycles' cost (benchmarks/first_cycle.py).
    # A whole 10-cycle pneumoniamnist run took 33-55 s (median 37 s, scal
    # the slowest) on two CPU cores in the committed grid (torch 2.14),
    # 20-30 s with one pass.
    # channels_last=True: the small CNN's weights and input in channels-last
    # memory order, 1.2-1.3x faster training on a CPU (benchmarks/README.md).
    # The same math with the float sums in another order, so a seed's numbers
    # differ from a contiguous-layout run's: the committed grid
    # (tests/test_first_cycle.py reads it) was run with it on.
    "fast": Preset(
        name="fast",
        description="CPU-sized: small CNN, 8 epochs of at least 400 images a cycle, "
                    "the study's budgets and 10 cycles, 1 trial",
        model="small_cnn",
        n_channels=3,
        lr=0.01,
        momentum=0.9,
        weight_decay=5e-4,
        batch_size=32,
        epochs=8,
        lr_milestones=(6,),
        lr_gamma=0.1,
        n_cycles=10,
        n_trials=1,
        subsample="paper",
        warm_start=True,
        loss_head=MappingProxyType({"loss_head": "standard", "margin": 1.0, "loss_weight": 1.0,
                                    "epoch_loss": 5}),
        scal_finetune_epochs=3,
        min_epoch_size=400,
        channels_last=True,
    ),
})


def get_preset(name):
    """The preset called ``name`` (a :class:`Preset` passes through).

    Raises
    ------
    ValueError
        Unknown name; the message lists the valid ones.
    """
    if isinstance(name, Preset):
        return name
    return lookup(PRESETS, name, "preset")


def build_estimator(preset, method, info, seed, *, epochs=None, budget=None, model=None,
                    device="auto", dropout=None, loss_weight=None, callbacks=(), n_classes=None,
                    n_channels=None, lr=None, batch_size=None, warm_start=False,
                    estimator_types=None):
    """The network a preset trains for ``method``: the one factory of skal's networks.

    Experiments (:func:`build_experiment`), benchmark grids and labeling
    projects (:func:`skal.label.loop.build_network`) all build their network
    here, so each gets the preset's optimiser, learning-rate schedule and
    ``min_epoch_size``; what a caller changes is an argument below.

    Parameters
    ----------
    preset : str or Preset
    method : str
        A registered query strategy; methods that need a loss head (LL4AL,
        SCAL) get a :class:`~skal.estimator.LossPredictionClassifier`, the
        others an :class:`~skal.estimator.ImageClassifier`.
    info : DatasetInfo, str or None
        The MedMNIST dataset; None for images that are no MedMNIST dataset
        (a labeling project's): then give ``n_classes`` and ``budget``.
    seed : int
        The trial's seed (the estimator's ``random_state``).
    epochs, budget, model : optional overrides of the preset
        ``budget`` matters for SCAL, whose trim size comes from the initial set.
    device : str, default='auto'
    dropout : float, optional
        Dropout before the head; by default 0 (the study's network), or
        ``preset.mc_dropout`` for methods that need MC dropout.
    loss_weight : float, optional
        The ranking loss's weight for methods with a loss head (the study's
        ``--weight``); the preset's (1.0) by default, unused by the others.
    callbacks : sequence of (name, skorch callback)
        Extra callbacks, e.g. a progress bar.
    n_classes : int, optional
        The number of classes; by default the dataset's.
    n_channels, lr, batch_size : optional overrides of the preset
    warm_start : bool, default=False
        The estimator's ``warm_start`` (an experiment sets it from its own).
    estimator_types : (type, type), optional
        Subclasses to build instead of ``(ImageClassifier,
        LossPredictionClassifier)``.

    Returns
    -------
    ImageClassifier or LossPredictionClassifier
        Unfitted.
    """
    preset = get_preset(preset)
    info = dataset_info(info) if isinstance(info, str) else info
    if info is None and (n_classes is None or budget is None):
        raise TypeError("build_estimator without a dataset needs n_classes and budget.")
    epochs = preset.epochs if epochs is None else int(epochs)
    budget = preset.budget(info) if budget is None else int(budget)
    image_type, loss_type = estimator_types or (ImageClassifier, LossPredictionClassifier)
    needs = strategy_requirements(method)
    if dropout is None:
        dropout = preset.mc_dropout if "dropout" in needs else 0.0
    milestones = sorted({preset.scaled(m, epochs) for m in preset.lr_milestones})
    schedule = LRScheduler(policy=MultiStepLR, milestones=milestones, gamma=preset.lr_gamma)
    params = dict(
        module=model or preset.model,
        n_classes=info.n_classes if n_classes is None else int(n_classes),
        n_channels=preset.n_channels if n_channels is None else int(n_channels),
        dropout=dropout,
        multi_label=info is not None and info.is_multilabel,
        random_state=seed,
        lr=preset.lr if lr is None else float(lr),
        max_epochs=epochs,
        batch_size=preset.batch_size if batch_size is None else int(batch_size),
        min_epoch_size=preset.min_epoch_size,
        optimizer__momentum=preset.momentum,
        optimizer__weight_decay=preset.weight_decay,
        warm_start=warm_start,
        device=device,
        callbacks=[("lr_scheduler", schedule),
                   *([("channels_last", ChannelsLast())] if preset.channels_last else []),
                   *callbacks],
    )
    if "loss_head" not in needs:
        return image_type(**params)
    head = dict(preset.loss_head)
    head["epoch_loss"] = preset.scaled(head["epoch_loss"], epochs)
    if loss_weight is not None:
        head["loss_weight"] = float(loss_weight)
    if method == "scal":
        head.update(trim_size=scal_trim_size(budget), finetune_epochs=preset.scal_finetune_epochs)
    return loss_type(**params, **head)


def build_experiment(preset, method, info, seed, *, epochs=None, budget=None, cycles=None,
                     model=None, device="auto", dropout=None, loss_weight=None, callbacks=(),
                     query_params=None,
                     checkpoint_dir=None, experiment_callbacks=None, keep_models=False):
    """The :class:`~skal.experiment.ActiveLearningClassifier` of one trial.

    Parameters
    ----------
    preset : str or Preset
    method : str
        A registered query strategy (see :data:`skal.query.STRATEGIES`).
    info : DatasetInfo or str
    seed : int
        The trial's seed: the experiment's and the estimator's ``random_state``.
        Run it inside :func:`trial_globals` to seed the global generators as the study does.
    epochs, budget, cycles, model : optional
        Overrides of the preset's epochs per cycle, per-cycle budget (also the
        initial set's size), number of cycles and backbone.
    device : str, default='auto'
    dropout, loss_weight : float, optional
        See :func:`build_estimator`.
    callbacks : sequence of (name, skorch callback)
        Extra estimator callbacks (e.g. an epoch progress bar).
    query_params : dict, optional
        The strategy's own options.
    checkpoint_dir, keep_models
        Passed to the experiment.
    experiment_callbacks : list of skal.callbacks.Callback, optional
        The experiment's ``callbacks`` (per-cycle side effects: result files,
        progress), given at construction.

    Returns
    -------
    ActiveLearningClassifier
        Unfitted; ``fit(X_train, y_train, X_eval=X_test, y_eval=y_test)`` runs the trial.
    """
    preset = get_preset(preset)
    info = dataset_info(info) if isinstance(info, str) else info
    budget = preset.budget(info) if budget is None else int(budget)
    estimator = build_estimator(preset, method, info, seed, epochs=epochs, budget=budget,
                                model=model, device=device, dropout=dropout,
                                loss_weight=loss_weight, callbacks=callbacks)
    return ActiveLearningClassifier(
        estimator,
        method,
        n_initial=budget,
        query_size=budget,
        n_cycles=preset.n_cycles if cycles is None else int(cycles),
        # The study's SCAL scores the whole unlabeled pool; the others a subsample.
        subsample=None if method == "scal" else preset.subsample,
        warm_start=preset.warm_start,
        random_state=seed,
        query_params=query_params,
        # The study's SCAL trains its last cycle on the whole labeled set.
        final_cycle_params={"trim_size": 0} if method == "scal" else None,
        task=info.task,
        keep_models=keep_models,
        checkpoint_dir=checkpoint_dir,
        callbacks=experiment_callbacks,
    )

