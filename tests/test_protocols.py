"""Presets: the paper protocol exactly as the study's, the fast one, and the builder."""

import random

import numpy as np
import pytest
import torch
from skorch.callbacks import LRScheduler
from torch.optim.lr_scheduler import MultiStepLR

from skal.data import FLAGS_2D, dataset_info, load_medmnist
from skal.estimator import ImageClassifier, LossPredictionClassifier
from skal.experiment import ActiveLearningClassifier
from skal.protocols import (PAPER_BUDGETS, PRESETS, Preset, build_estimator, build_experiment,
                            get_preset, paper_budget, scal_trim_size, trial_globals)
from skal.query import STRATEGIES


def test_get_preset():
    assert set(PRESETS) == {"paper", "fast"}
    assert isinstance(get_preset("paper"), Preset)
    assert get_preset(PRESETS["fast"]) is PRESETS["fast"]
    with pytest.raises(ValueError, match="Unknown preset 'slow'.*paper, fast"):
        get_preset("slow")


def test_paper_preset_is_the_study_protocol():
    p = get_preset("paper")
    assert (p.model, p.n_channels) == ("resnet18", 3)
    assert (p.lr, p.momentum, p.weight_decay, p.batch_size) == (0.001, 0.9, 5e-4, 32)
    assert (p.epochs, p.lr_milestones, p.lr_gamma) == (50, (40,), 0.1)
    assert (p.n_cycles, p.n_trials) == (10, 5)
    assert p.subsample == "paper" and p.warm_start is True and p.eval_split == "test"
    assert dict(p.loss_head) == {"loss_head": "study", "margin": 1.0, "loss_weight": 1.0,
                                 "epoch_loss": 30}
    assert p.scal_finetune_epochs == 20


def test_budgets():
    assert dict(PAPER_BUDGETS) == {
        "pathmnist": 2500, "dermamnist": 140, "octmnist": 2000, "pneumoniamnist": 100,
        "bloodmnist": 240, "tissuemnist": 3300, "organamnist": 700, "organcmnist": 250,
        "organsmnist": 280}
    # The rest follow the ~2 % of the training split rule, made even.
    assert paper_budget("breastmnist") == 10  # 546 train images
    assert paper_budget("retinamnist") == 22  # 1080
    assert paper_budget("chestmnist") == 1570  # 78468
    for flag in FLAGS_2D:
        budget = paper_budget(flag)
        assert budget % 2 == 0 and budget * 10 <= dataset_info(flag).n_samples["train"]
    assert get_preset("fast").budget(dataset_info("pneumoniamnist")) == 100


@pytest.mark.parametrize("n_initial, trim", [(10, 2), (100, 2), (250, 2), (280, 2), (700, 6),
                                             (1570, 14), (2500, 24), (3300, 32)])
def test_scal_trim_size_follows_the_reference(n_initial, trim):
    assert scal_trim_size(n_initial) == trim


def test_paper_estimator_for_random():
    net = build_estimator("paper", "random", dataset_info("organamnist"), seed=3, device="cpu")
    assert type(net) is ImageClassifier
    assert (net.module, net.n_classes, net.n_channels, net.dropout) == ("resnet18", 11, 3, 0.0)
    assert (net.lr, net.max_epochs, net.batch_size, net.random_state) == (0.001, 50, 32, 3)
    assert net.optimizer is torch.optim.SGD
    assert net.optimizer__momentum == 0.9 and net.optimizer__weight_decay == 5e-4
    (name, schedule), = net.callbacks
    assert name == "lr_scheduler" and isinstance(schedule, LRScheduler)
    assert schedule.policy is MultiStepLR
    assert schedule.kwargs == {"milestones": [40], "gamma": 0.1}


def test_paper_experiment():
    info = dataset_info("pneumoniamnist")
    al = build_experiment("paper", "random", info, seed=2)
    assert isinstance(al, ActiveLearningClassifier)
    assert (al.n_initial, al.query_size, al.n_cycles) == (100, 100, 10)
    assert (al.subsample, al.warm_start, al.random_state) == ("paper", True, 2)
    assert al.final_cycle_params is None and al.task == "binary-class"


@pytest.mark.skipif("ll4al" not in STRATEGIES, reason="ll4al not registered")
def test_ll4al_gets_the_loss_head():
    net = build_estimator("paper", "ll4al", "organamnist", seed=0)
    assert type(net) is LossPredictionClassifier
    assert (net.margin, net.loss_weight, net.epoch_loss) == (1.0, 1.0, 30)
    assert (net.trim_size, net.finetune_epochs) == (0, 0)
    assert net.loss_head == "study"
    # the fast preset keeps the learning-loss paper's head
    assert build_estimator("fast", "ll4al", "organamnist", seed=0).loss_head == "standard"


@pytest.mark.skipif("scal" not in STRATEGIES, reason="scal not registered")
def test_scal_gets_trim_finetune_and_final_cycle_params():
    al = build_experiment("paper", "scal", dataset_info("organamnist"), seed=0)
    net = al.estimator
    assert type(net) is LossPredictionClassifier
    assert (net.trim_size, net.finetune_epochs, net.epoch_loss) == (6, 20, 30)
    assert net.loss_head == "study"
    assert al.final_cycle_params == {"trim_size": 0}
    # SCAL scores the whole unlabeled pool in the study; the others a subsample.
    assert al.subsample is None
    assert build_experiment("fast", "scal", "organamnist", 0).subsample is None
    assert build_experiment("paper", "ll4al", "organamnist", 0).subsample == "paper"
    # The trim size comes from the initial set, which an overridden budget changes.
    bigger = build_experiment("paper", "scal", "organamnist", 0, budget=2500)
    assert bigger.estimator.trim_size == 24


@pytest.mark.skipif("bald" not in STRATEGIES, reason="bald not registered")
def test_mc_dropout_only_for_methods_that_need_it():
    assert build_estimator("paper", "bald", "dermamnist", 0).dropout == 0.3
    assert build_estimator("paper", "bald", "dermamnist", 0, dropout=0.5).dropout == 0.5
    assert build_estimator("paper", "entropy", "dermamnist", 0).dropout == 0.0


def test_overrides_scale_epoch_settings():
    net = build_estimator("paper", "random", "pathmnist", 0, epochs=5, model="small_cnn")
    assert (net.max_epochs, net.module) == (5, "small_cnn")
    assert dict(net.callbacks)["lr_scheduler"].kwargs["milestones"] == [4]
    al = build_experiment("paper", "random", "pathmnist", 0, budget=50, cycles=3)
    assert (al.n_initial, al.query_size, al.n_cycles) == (50, 50, 3)
    info = dataset_info("chestmnist")
    multi = build_estimator("fast", "random", info, 0)
    assert multi.multi_label and multi.n_classes == 14


def test_fast_preset_shape():
    fast = get_preset("fast")
    paper = get_preset("paper")
    assert fast.model == "small_cnn" and fast.epochs < 10
    # Same protocol shape as the study: cycles, pool rule, warm start, evaluation.
    for field in ("n_cycles", "subsample", "warm_start", "eval_split", "batch_size"):
        assert getattr(fast, field) == getattr(paper, field)


def test_lr_schedule_restarts_every_cycle(shipped_root):
    X, y = load_medmnist("breastmnist", "train", root=shipped_root)
    al = build_experiment("fast", "random", "breastmnist", 0, cycles=2, epochs=5, device="cpu")
    al.fit(X[:60], y[:60])
    # The last cycle's fit: 5 epochs, decayed after 4 (as 40 of 50 in the paper).
    assert al.estimator_.history[:, "event_lr"] == [0.01] * 4 + [0.001]
    assert al.estimator_.epochs_trained_ == 10  # warm start: the weights kept training


def test_trial_globals_seeds_the_three_generators():
    with trial_globals(4):
        a = (random.random(), np.random.rand(), torch.rand(1).item())
    with trial_globals(4):
        assert a == (random.random(), np.random.rand(), torch.rand(1).item())
    assert a == (random.Random(4).random(), np.random.RandomState(4).rand(),
                 torch.rand(1, generator=torch.Generator().manual_seed(4)).item())


def test_experiment_callbacks_are_given_at_construction():
    # The runner's side effects (result files, progress) are the experiment's
    # `callbacks` parameter from the start: nothing is overwritten after construction.
    from skal.callbacks import Callback

    side_effect = Callback()
    al = build_experiment("fast", "random", "breastmnist", 0, checkpoint_dir="ck",
                          experiment_callbacks=[side_effect])
    assert al.get_params()["callbacks"] == [side_effect]
    assert al.checkpoint_dir == "ck"
