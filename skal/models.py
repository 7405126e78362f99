"""Neural network modules: the study's CIFAR-style ResNet-18, a small fast CNN,
and the loss-prediction heads of learning loss for active learning (LL4AL):
the original paper's and the MedMNIST study's (:data:`LOSS_HEADS`).

Every image module here follows one small protocol, which the estimators and the
query functions rely on:

- ``forward_features(x) -> (embedding, stages)``: ``embedding`` is the
  (B, ``embedding_dim``) penultimate feature vector, ``stages`` the list of
  intermediate feature maps (B, C_k, H_k, W_k), one per entry of
  ``stage_channels``, that the loss-prediction head reads;
- ``classify(embedding) -> logits``: dropout (``dropout`` rate, 0 by default)
  then the linear head, (B, ``n_classes``);
- ``forward(x) = classify(forward_features(x)[0])``.

Inputs are normalised float NCHW tensors; the conversion from MedMNIST's uint8
arrays happens in :mod:`skal.estimator`, per batch.
"""

from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

__all__ = [
    "ResNet18",
    "SmallCNN",
    "LossPredictionHead",
    "StudyLossPredictionHead",
    "LOSS_HEADS",
    "get_loss_head_class",
    "LossPredictionNetwork",
    "MODELS",
    "get_model_class",
    "count_multiply_adds",
]


class ImageModule(nn.Module):
    """Base of skal's image classifiers: a feature extractor and a dropout + linear head.

    Subclasses build ``self.features_out`` (the layers up to the embedding) and
    set ``embedding_dim`` and ``stage_channels``; see the module docstring for
    the protocol.

    Parameters
    ----------
    n_classes : int
        Number of outputs of the linear head (classes, or labels for multi-label).
    dropout : float, default=0.0
        Dropout rate applied to the embedding before the head. 0 gives the study's
        network; MC-dropout queries (BALD) need a rate above 0.
    """

    embedding_dim: int
    stage_channels: tuple[int, ...]
    #: Smallest height and width the network takes (its pooling shrinks the image).
    min_input_size: int = 1

    def __init__(self, n_classes: int, dropout: float = 0.0):
        super().__init__()
        if int(n_classes) < 1:
            raise ValueError(f"n_classes must be a positive integer, got {n_classes!r}.")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}.")
        self.n_classes = int(n_classes)
        self.dropout_rate = float(dropout)
        self.dropout = nn.Dropout(self.dropout_rate)

    def _build_head(self):
        self.linear = nn.Linear(self.embedding_dim, self.n_classes)

    def classify(self, embedding: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) from embeddings (B, embedding_dim)."""
        return self.linear(self.dropout(embedding))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits (B, n_classes) from normalised images (B, C, H, W)."""
        embedding, _ = self.forward_features(x)
        return self.classify(embedding)


class _BasicBlock(nn.Module):
    """The two-convolution residual block of ResNet-18 (He et al. 2016)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet18(ImageModule):
    """CIFAR-style ResNet-18, the study's backbone.

    A 3x3 stride-1 stem without max-pool, four stages of two basic blocks
    (64, 128, 256, 512 channels; strides 1, 2, 2, 2), global average pooling to
    a 512-d embedding, dropout, and a linear head. Valid for any input size of
    at least 8x8 (28, 64, 128 and 224 are tested). With 3 input channels and 10
    classes it has 11,173,962 parameters.

    Parameters
    ----------
    n_classes : int
        Number of outputs.
    in_channels : int, default=3
        Channels of the input images (the study feeds 3: grayscale repeated).
    dropout : float, default=0.0
        Dropout rate before the head.
    """

    embedding_dim = 512
    stage_channels = (64, 128, 256, 512)

    def __init__(self, n_classes: int, in_channels: int = 3, dropout: float = 0.0):
        super().__init__(n_classes, dropout)
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        in_planes = 64
        stages = []
        for planes, stride in zip(self.stage_channels, (1, 2, 2, 2)):
            stages.append(nn.Sequential(_BasicBlock(in_planes, planes, stride),
                                        _BasicBlock(planes, planes, 1)))
            in_planes = planes
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self._build_head()

    def forward_features(self, x):
        """Embedding (B, 512) and the four stage outputs of images (B, C, H, W)."""
        out = F.relu(self.bn1(self.conv1(x)))
        stages = []
        for layer in (self.layer1, self.layer2, self.layer3, self.layer4):
            out = layer(out)
            stages.append(out)
        embedding = torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)
        return embedding, stages


class SmallCNN(ImageModule):
    """A small fast CNN for CPU work.

    Three conv-BN-ReLU stages (32, 64, 128 channels), max-pooling after the
    first two, global average pooling to a 128-d embedding, dropout, linear
    head. On 28x28 inputs it needs 7.9 M multiply-adds per image, 58x fewer
    than :class:`ResNet18` (457 M), as :func:`count_multiply_adds` counts them;
    ``tests/test_models.py`` pins the ratio above 10.

    Parameters
    ----------
    n_classes : int
        Number of outputs.
    in_channels : int, default=3
        Channels of the input images.
    dropout : float, default=0.0
        Dropout rate before the head.
    """

    embedding_dim = 128
    stage_channels = (32, 64, 128)
    min_input_size = 4  # two 2x2 max-pools

    def __init__(self, n_classes: int, in_channels: int = 3, dropout: float = 0.0):
        super().__init__(n_classes, dropout)

        def block(cin, cout):
            return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        c1, c2, c3 = self.stage_channels
        self.stage1 = block(in_channels, c1)
        self.stage2 = nn.Sequential(nn.MaxPool2d(2), block(c1, c2))
        self.stage3 = nn.Sequential(nn.MaxPool2d(2), block(c2, c3))
        self._build_head()

    def forward_features(self, x):
        """Embedding (B, 128) and the three stage outputs of images (B, C, H, W)."""
        stages = []
        out = x
        for stage in (self.stage1, self.stage2, self.stage3):
            out = stage(out)
            stages.append(out)
        embedding = torch.flatten(F.adaptive_avg_pool2d(out, 1), 1)
        return embedding, stages


class LossPredictionHead(nn.Module):
    """The loss-prediction module of learning loss (Yoo & Kweon 2019): the ``'standard'`` head.

    Each stage output goes through global average pooling, a linear layer to
    ``hidden`` units and a ReLU; the concatenation goes through one linear
    layer to a scalar predicted loss. For ResNet-18's stages (64, 128, 256,
    512) and ``hidden=128`` it has 123,905 parameters.

    Parameters
    ----------
    stage_channels : sequence of int
        Channels of each stage output it reads (ResNet-18: 64, 128, 256, 512).
    hidden : int, default=128
        Units per stage.
    """

    def __init__(self, stage_channels=(64, 128, 256, 512), hidden: int = 128):
        super().__init__()
        self.stage_channels = tuple(int(c) for c in stage_channels)
        self.stage_fcs = nn.ModuleList(nn.Linear(c, hidden) for c in self.stage_channels)
        self.out = nn.Linear(hidden * len(self.stage_channels), 1)

    def pool(self, stages):
        """One vector (B, C_k) per stage output (B, C_k, H_k, W_k): global average pooling."""
        return [torch.flatten(F.adaptive_avg_pool2d(s, 1), 1) for s in stages]

    def forward(self, stages):
        """Predicted loss (B,) from a list of stage outputs (B, C_k, H_k, W_k)."""
        if len(stages) != len(self.stage_fcs):
            raise ValueError(
                f"The loss head reads {len(self.stage_fcs)} stage outputs but got "
                f"{len(stages)}; build it with the backbone's stage_channels."
            )
        hidden = [F.relu(fc(v)) for fc, v in zip(self.stage_fcs, self.pool(stages))]
        return self.out(torch.cat(hidden, dim=1)).squeeze(1)


class StudyLossPredictionHead(LossPredictionHead):
    """The MedMNIST study's loss-prediction module: the ``'study'`` head.

    As :class:`LossPredictionHead`, except that every stage output but the last
    first goes through a 3x3, stride-2 convolution without bias that keeps its
    channels (padding 1), as the study's ``LossNet`` does for ResNet-18's
    stages 1-3. For (64, 128, 256, 512) and ``hidden=128`` that is 898,049
    parameters: 774,144 in the convolutions, 123,905 as in the standard head.
    While the stage features are not detached, the ranking loss reaches the
    backbone through these convolutions.

    Parameters
    ----------
    stage_channels : sequence of int
        Channels of each stage output it reads; any number of stages.
    hidden : int, default=128
        Units per stage.
    """

    def __init__(self, stage_channels=(64, 128, 256, 512), hidden: int = 128):
        super().__init__(stage_channels, hidden)
        self.stage_convs = nn.ModuleList(
            nn.Conv2d(c, c, 3, stride=2, padding=1, bias=False) for c in self.stage_channels[:-1])

    def pool(self, stages):
        """Convolve every stage output but the last, then pool each to (B, C_k)."""
        convolved = [conv(s) for conv, s in zip(self.stage_convs, stages)]
        return super().pool(convolved + list(stages[len(convolved):]))


#: Loss-prediction heads by name: ``'standard'`` is the learning-loss paper's
#: head, ``'study'`` the MedMNIST study's (the ``paper`` preset's).
LOSS_HEADS = {"standard": LossPredictionHead, "study": StudyLossPredictionHead}


def get_loss_head_class(name: str):
    """The loss-prediction head class registered under ``name`` (see ``LOSS_HEADS``)."""
    try:
        return LOSS_HEADS[name]
    except (KeyError, TypeError):
        raise ValueError(
            f"Unknown loss head {name!r}; valid loss heads are: {', '.join(sorted(LOSS_HEADS))}."
        ) from None


class LossPredictionNetwork(ImageModule):
    """A backbone with a loss-prediction head: ``forward`` returns (logits, predicted loss).

    It keeps the image-module protocol (``forward_features`` and ``classify``
    delegate to the backbone), so embeddings and MC dropout work unchanged.

    Parameters
    ----------
    backbone : ImageModule
        The classifier, e.g. :class:`ResNet18`.
    hidden : int, default=128
        Units per stage in the loss head.
    head : str, default='standard'
        The loss head's name in :data:`LOSS_HEADS`: ``'standard'``
        (:class:`LossPredictionHead`) or ``'study'`` (:class:`StudyLossPredictionHead`).

    Attributes
    ----------
    detach_features : bool
        When True, the stage outputs are detached before the loss head, so the
        ranking loss no longer trains the backbone (LL4AL does this for the last
        epochs of each cycle). The estimator sets it.
    freeze_backbone : bool
        When True, the backbone runs without gradients (SCAL's loss-head
        fine-tuning). The estimator sets it.
    """

    def __init__(self, backbone: ImageModule, hidden: int = 128, head: str = "standard"):
        nn.Module.__init__(self)
        self.backbone = backbone
        self.loss_head = get_loss_head_class(head)(backbone.stage_channels, hidden)
        self.embedding_dim = backbone.embedding_dim
        self.stage_channels = backbone.stage_channels
        self.min_input_size = getattr(backbone, "min_input_size", 1)
        self.n_classes = backbone.n_classes
        self.dropout_rate = backbone.dropout_rate
        self.detach_features = False
        self.freeze_backbone = False

    def forward_features(self, x):
        return self.backbone.forward_features(x)

    def classify(self, embedding):
        return self.backbone.classify(embedding)

    def forward(self, x):
        """(logits (B, n_classes), predicted loss (B,)) from images (B, C, H, W)."""
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.freeze_backbone):
            embedding, stages = self.backbone.forward_features(x)
            logits = self.backbone.classify(embedding)
        if self.detach_features or self.freeze_backbone:
            stages = [s.detach() for s in stages]
        return logits, self.loss_head(stages)


MODELS = {"resnet18": ResNet18, "small_cnn": SmallCNN}


def get_model_class(name: str):
    """The image-module class registered under ``name`` (see ``MODELS``)."""
    try:
        return MODELS[name]
    except KeyError:
        raise ValueError(
            f"Unknown model {name!r}; valid models are: {', '.join(sorted(MODELS))}."
        ) from None


def count_multiply_adds(module: nn.Module, input_shape) -> int:
    """Multiply-adds of one forward pass, counting convolutions and linear layers.

    Parameters
    ----------
    module : torch.nn.Module
    input_shape : tuple of int
        (B, C, H, W) of the input.

    Returns
    -------
    int
        Multiply-adds for the whole batch. BatchNorm, activations and pooling
        are not counted (they are a few percent at most).
    """
    # torch has no public per-layer FLOP counter for eval-mode CPU models that
    # gives conv MACs directly, so count them with forward hooks.
    total = 0

    def conv_hook(layer, inputs, output):
        nonlocal total
        kernel = layer.kernel_size[0] * layer.kernel_size[1]
        total += output.numel() * kernel * layer.in_channels // layer.groups

    def linear_hook(layer, inputs, output):
        nonlocal total
        total += output.numel() * layer.in_features

    handles = []
    for layer in module.modules():
        if isinstance(layer, nn.Conv2d):
            handles.append(layer.register_forward_hook(conv_hook))
        elif isinstance(layer, nn.Linear):
            handles.append(layer.register_forward_hook(linear_hook))
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            module(torch.zeros(input_shape))
    finally:
        for handle in handles:
            handle.remove()
        module.train(was_training)
    return int(total)
