"""skal.features: label-free embeddings, their cache, the user's backbone, global state left alone."""

import numpy as np
import pytest
import torch
import torchvision

from skal import features as F
from skal.features import FeatureError, pool_features


@pytest.fixture
def images():
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, size=(40, 12, 12), dtype=np.uint8)


def global_state():
    return (torch.random.get_rng_state().clone(), torch.get_num_threads(),
            np.random.get_state()[1].copy())


def assert_same_state(before):
    after = global_state()
    assert torch.equal(before[0], after[0])
    assert before[1] == after[1]
    np.testing.assert_array_equal(before[2], after[2])


def test_pixel_pca_matches_sklearn(images):
    from sklearn.decomposition import PCA

    out = F.pixel_pca(images, n_components=5, random_state=0)
    expected = PCA(5, random_state=0).fit_transform(images.reshape(40, -1) / 255.0)
    assert out.shape == (40, 5) and out.dtype == np.float32
    np.testing.assert_allclose(np.abs(out), np.abs(expected), atol=2e-4)  # PCA of float32 pixels


def test_random_network_is_seeded_and_leaves_global_state(images):
    before = global_state()
    a = F.random_network(images, random_state=3, n_threads=1)
    assert_same_state(before)
    b = F.random_network(images, random_state=3)
    c = F.random_network(images, random_state=4)
    assert a.shape == (40, 128)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_simclr_trains_seeded_unit_features_and_leaves_global_state(images):
    before = global_state()
    a = F.simclr(images, epochs=2, batch_size=16, random_state=0, n_threads=1)
    assert_same_state(before)
    b = F.simclr(images, epochs=2, batch_size=16, random_state=0, n_threads=1)
    untrained = F.simclr(images, epochs=1, batch_size=16, random_state=1, n_threads=1)
    assert a.shape == (40, 128) and a.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(a, axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, untrained)


def test_simclr_on_rgb_images():
    rgb = np.random.default_rng(1).integers(0, 256, size=(20, 8, 8, 3), dtype=np.uint8)
    assert F.simclr(rgb, epochs=1, batch_size=8).shape == (20, 128)


def test_nt_xent_known_value():
    # two identical orthogonal pairs: the positive logit is 1/t, the negatives 0
    z = torch.eye(2)
    t = 0.5
    expected = -np.log(np.exp(1 / t) / (np.exp(1 / t) + 2))
    assert F._nt_xent(z, z, t).item() == pytest.approx(expected, rel=1e-6)


def test_cache_is_read_and_keyed_by_data_and_settings(images, tmp_path):
    first = pool_features(images, "pca", cache_dir=tmp_path, n_components=4)
    files = list(tmp_path.glob("*.npy"))
    assert len(files) == 1
    assert files[0].stem == F.cache_key(images, "pca", {"n_components": 4})
    # the cached file is what comes back (overwrite it to prove it is read)
    np.save(files[0], np.full_like(first, 7.0))
    assert (pool_features(images, "pca", cache_dir=tmp_path, n_components=4) == 7.0).all()
    # other settings or other data: another key
    assert F.cache_key(images, "pca", {"n_components": 5}) != files[0].stem
    other = images.copy()
    other[0, 0, 0] ^= 1
    assert F.cache_key(other, "pca", {"n_components": 4}) != files[0].stem
    # speed-only settings do not change the key
    assert F.cache_key(images, "simclr", {"n_threads": 1}) == F.cache_key(images, "simclr", {})
    # caching off writes nothing
    pool_features(images, "pca", cache_dir=False, n_components=3)
    assert len(list(tmp_path.glob("*.npy"))) == 1


def test_default_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("SKAL_CACHE_DIR", str(tmp_path))
    assert F.default_cache_dir() == tmp_path / "features"


def test_bad_input_gets_clear_errors(images, tmp_path):
    with pytest.raises(FeatureError, match="valid names are: simclr, pca, random_net, backbone"):
        pool_features(images, "sift", cache_dir=False)
    with pytest.raises(FeatureError, match="shape"):
        pool_features(np.zeros((3, 4)), "pca", cache_dir=False)
    with pytest.raises(FeatureError, match="n_componentz"):
        pool_features(images, "pca", cache_dir=False, n_componentz=3)
    with pytest.raises(FeatureError, match="architecture="):
        pool_features(images, "backbone", cache_dir=False)


@pytest.fixture
def saved_resnet(tmp_path):
    """A small torchvision ResNet-18 (3 classes) built here, its weights saved to disk."""
    torch.manual_seed(0)
    model = torchvision.models.resnet18(num_classes=3).eval()
    path = tmp_path / "weights.pt"
    torch.save(model.state_dict(), path)
    return model, path


def test_backbone_features_equal_the_saved_model_without_its_head(saved_resnet, tmp_path):
    model, path = saved_resnet
    X = np.random.default_rng(2).integers(0, 256, size=(6, 32, 32), dtype=np.uint8)
    out = pool_features(X, "backbone", cache_dir=tmp_path / "cache", architecture="resnet18",
                        weights=str(path))
    assert out.shape == (6, 512)
    model.fc = torch.nn.Identity()
    x = torch.from_numpy(X).float().div(255).sub(0.5).div(0.5).unsqueeze(1).expand(-1, 3, -1, -1)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-5)
    # resized input, and the weights file enters the cache key by its content
    assert F.backbone_features(X, "resnet18", path, input_size=64).shape == (6, 512)
    key = F.cache_key(X, "backbone", {"architecture": "resnet18", "weights": str(path)})
    assert (tmp_path / "cache" / f"{key}.npy").is_file()


def test_backbone_errors_name_the_problem(saved_resnet, tmp_path):
    _, path = saved_resnet
    X = np.zeros((2, 32, 32), np.uint8)
    with pytest.raises(FeatureError, match="does not exist"):
        F.backbone_features(X, "resnet18", tmp_path / "missing.pt")
    with pytest.raises(FeatureError, match="Unknown torchvision architecture 'resnet999'"):
        F.backbone_features(X, "resnet999", path)
    with pytest.raises(FeatureError, match="do not fit torchvision's 'resnet34'"):
        F.backbone_features(X, "resnet34", path)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a state dict")
    with pytest.raises(FeatureError, match="Cannot read"):
        F.backbone_features(X, "resnet18", junk)
