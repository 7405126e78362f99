import pytest
import torch

from skal.models import (LOSS_HEADS, LossPredictionHead, LossPredictionNetwork, ResNet18,
                         SmallCNN, StudyLossPredictionHead, count_multiply_adds,
                         get_loss_head_class, get_model_class)


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


@pytest.mark.parametrize("size", [64, 224])
@pytest.mark.parametrize("backbone", [ResNet18, SmallCNN])
@pytest.mark.parametrize("head", ["standard", "study"])
def test_networks_and_loss_heads_take_medmnist_plus_sizes(backbone, head, size):
    torch.manual_seed(0)
    net = LossPredictionNetwork(backbone(n_classes=3), head=head).eval()
    with torch.no_grad():
        logits, predicted_loss = net(torch.rand(1, 3, size, size))
    assert logits.shape == (1, 3) and predicted_loss.shape == (1,)
    assert torch.isfinite(logits).all() and torch.isfinite(predicted_loss).all()


def test_resnet18_cost_grows_with_the_image_area():
    # CIFAR-style (no stem stride): multiply-adds per image, as the README states them.
    costs = {size: count_multiply_adds(ResNet18(n_classes=2), (1, 3, size, size)) / 1e9
             for size in (28, 64, 128, 224)}
    assert costs == pytest.approx({28: 0.457, 64: 2.222, 128: 8.887, 224: 27.215}, abs=0.001)


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


def n_parameters(module):
    return sum(p.numel() for p in module.parameters())


def test_standard_loss_head_has_the_learning_loss_papers_parameter_count():
    head = get_loss_head_class("standard")((64, 128, 256, 512))
    assert type(head) is LossPredictionHead
    # per-stage FCs (64+128+256+512) x 128 + 4 x 128 biases, output 512 + 1
    assert n_parameters(head) == 123_905
    assert not any(isinstance(m, torch.nn.Conv2d) for m in head.modules())


def test_study_loss_head_has_the_studys_layers_and_parameter_count():
    head = get_loss_head_class("study")((64, 128, 256, 512))
    assert type(head) is StudyLossPredictionHead
    assert n_parameters(head) == 898_049
    assert sum(n_parameters(c) for c in head.stage_convs) == 774_144
    assert sum(n_parameters(fc) for fc in head.stage_fcs) == 123_392
    assert n_parameters(head.out) == 513
    # stages 1-3: 3x3, stride 2, padding 1, channels kept, no bias; stage 4 pooled directly
    assert [tuple(c.weight.shape) for c in head.stage_convs] == [
        (64, 64, 3, 3), (128, 128, 3, 3), (256, 256, 3, 3)]
    assert all(c.bias is None and c.stride == (2, 2) and c.padding == (1, 1)
               for c in head.stage_convs)
    assert [tuple(fc.weight.shape) for fc in head.stage_fcs] == [
        (128, 64), (128, 128), (128, 256), (128, 512)]
    assert all(fc.bias is not None for fc in head.stage_fcs)
    assert tuple(head.out.weight.shape) == (1, 512) and head.out.bias is not None


def test_study_loss_head_computes_the_studys_formula():
    torch.manual_seed(0)
    head = StudyLossPredictionHead((4, 6, 8), hidden=5)
    stages = [torch.randn(2, 4, 8, 8), torch.randn(2, 6, 4, 4), torch.randn(2, 8, 2, 2)]
    pooled = [torch.nn.functional.conv2d(stages[0], head.stage_convs[0].weight, stride=2, padding=1),
              torch.nn.functional.conv2d(stages[1], head.stage_convs[1].weight, stride=2, padding=1),
              stages[2]]
    hidden = [torch.relu(fc(p.mean(dim=(2, 3)))) for fc, p in zip(head.stage_fcs, pooled)]
    expected = head.out(torch.cat(hidden, dim=1)).squeeze(1)
    assert torch.allclose(head(stages), expected, atol=1e-6)


@pytest.mark.parametrize("name", sorted(LOSS_HEADS))
@pytest.mark.parametrize("backbone", [ResNet18, SmallCNN])
@pytest.mark.parametrize("size", [28, 64])
def test_every_loss_head_runs_on_every_backbone_at_28_and_64_pixels(name, backbone, size):
    net = LossPredictionNetwork(backbone(n_classes=3), head=name).eval()
    with torch.no_grad():
        logits, predicted = net(torch.randn(2, 3, size, size))
    assert logits.shape == (2, 3) and predicted.shape == (2,)
    assert torch.isfinite(predicted).all()
    # the study head's rule for any backbone: every stage but the last is convolved
    convs = getattr(net.loss_head, "stage_convs", [])
    assert len(convs) == (len(backbone.stage_channels) - 1 if name == "study" else 0)


def test_small_cnn_study_head_convolves_its_first_two_stages():
    head = LossPredictionNetwork(SmallCNN(n_classes=2), head="study").loss_head
    assert [tuple(c.weight.shape) for c in head.stage_convs] == [(32, 32, 3, 3), (64, 64, 3, 3)]
    assert [fc.in_features for fc in head.stage_fcs] == [32, 64, 128]


def test_a_loss_head_given_the_wrong_number_of_stages_says_so():
    head = LossPredictionHead((32, 64, 128))
    with pytest.raises(ValueError, match="reads 3 stage outputs but got 4"):
        head([torch.randn(1, c, 4, 4) for c in (64, 128, 256, 512)])


def test_unknown_loss_head_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="Unknown loss head 'lossnet'.*standard, study"):
        LossPredictionNetwork(SmallCNN(n_classes=2), head="lossnet")


@pytest.mark.parametrize("name", sorted(LOSS_HEADS))
def test_loss_prediction_network_detaches_features_when_asked(name):
    net = LossPredictionNetwork(SmallCNN(n_classes=3), head=name)
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
