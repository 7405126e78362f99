import pytest
import torch

from skal.models import (LossPredictionHead, LossPredictionNetwork, ResNet18, SmallCNN,
                         count_multiply_adds, get_model_class)


def test_resnet18_parameter_count_matches_the_cifar_resnet18():
    model = ResNet18(n_classes=10, in_channels=3)
    assert sum(p.numel() for p in model.parameters()) == 11_173_962


@pytest.mark.parametrize("size", [28, 64, 128, 224])
def test_resnet18_accepts_every_medmnist_size(size):
    model = ResNet18(n_classes=4).eval()
    with torch.no_grad():
        embedding, stages = model.forward_features(torch.zeros(2, 3, size, size))
        logits = model(torch.zeros(2, 3, size, size))
    assert embedding.shape == (2, 512)
    assert logits.shape == (2, 4)
    assert [s.shape[1] for s in stages] == [64, 128, 256, 512]
    # CIFAR-style: no stem stride or max-pool, so stage 1 keeps the input size.
    assert stages[0].shape[-1] == size


def test_small_cnn_is_at_least_ten_times_cheaper_than_resnet18():
    resnet = count_multiply_adds(ResNet18(n_classes=10), (1, 3, 28, 28))
    small = count_multiply_adds(SmallCNN(n_classes=10), (1, 3, 28, 28))
    assert resnet == pytest.approx(456.7e6, rel=0.01)
    assert resnet / small >= 10


def test_multiply_add_counter_counts_a_known_convolution():
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    # 8 output channels x 5x5 positions x (3 input channels x 3x3 kernel)
    assert count_multiply_adds(conv, (1, 3, 5, 5)) == 8 * 25 * 27


def test_dropout_is_off_by_default_and_changes_outputs_only_in_train_mode():
    assert ResNet18(n_classes=3).dropout_rate == 0.0
    model = SmallCNN(n_classes=3, dropout=0.5)
    embedding = torch.ones(4, model.embedding_dim)
    model.eval()
    assert torch.equal(model.classify(embedding), model.classify(embedding))
    model.train()
    torch.manual_seed(0)
    assert not torch.equal(model.classify(embedding), model.classify(embedding))


@pytest.mark.parametrize("bad", [-0.1, 1.0])
def test_dropout_rate_outside_unit_interval_is_rejected(bad):
    with pytest.raises(ValueError, match="dropout"):
        SmallCNN(n_classes=3, dropout=bad)


def test_loss_prediction_head_reads_each_stage():
    head = LossPredictionHead((64, 128, 256, 512), hidden=128)
    assert [fc.in_features for fc in head.stage_fcs] == [64, 128, 256, 512]
    assert head.out.in_features == 4 * 128
    stages = [torch.randn(3, c, s, s) for c, s in zip((64, 128, 256, 512), (28, 14, 7, 4))]
    assert head(stages).shape == (3,)


def test_loss_prediction_network_detaches_features_when_asked():
    net = LossPredictionNetwork(SmallCNN(n_classes=3))
    x = torch.randn(4, 3, 28, 28)
    _, predicted = net(x)
    predicted.sum().backward()
    assert net.backbone.stage1[0].weight.grad is not None
    net.zero_grad(set_to_none=True)
    net.detach_features = True
    _, predicted = net(x)
    predicted.sum().backward()
    assert net.backbone.stage1[0].weight.grad is None
    assert net.loss_head.out.weight.grad is not None


def test_unknown_model_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="resnet18.*small_cnn|small_cnn.*resnet18"):
        get_model_class("vgg")
