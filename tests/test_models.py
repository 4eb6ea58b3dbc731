"""Every registered network: builds, runs on a tiny input, survives a checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from tinct import checkpoint
from tinct.cli import main
from tinct.decode import decode_ab
from tinct.models import ModelSpec, create_model, describe, list_models, model_spec, register_model, spec_of

CHANNELS = {"ab": 2, "rgb": 3, "bins313": 313, "bins16x16": 256, "critic": 1, "mask": 1}  # by spec.tag
SEED_NETWORKS = {  # the list: every seed system's network is registered
    "cnn_rgb", "unet_rgb", "unet_lab", "shallow_ab", "resnet18_unet_ab", "effnet_unet_ab", "resnet18_classify16",
    "resnet34_regress_ab", "pix2pix_unet", "patchgan", "zhang_eccv16", "zhang_small_ab", "autoencoder13",
}


def _tiny_input(model) -> torch.Tensor:
    """(2, C, s, 2s): non-square, so a swapped height and width would show."""
    s = max(32, model.spec.stride)
    return torch.rand(2, model.spec.in_channels, s, 2 * s) * 2 - 1


@pytest.mark.parametrize("name", list_models())
def test_model_builds_and_runs(name):
    torch.manual_seed(0)
    model = create_model(name, pretrained=False).eval()
    spec = spec_of(model)
    assert spec == model_spec(name, pretrained=False)  # the registry answers without building
    assert spec.native_size % spec.stride == 0 and describe(name)
    assert CHANNELS[spec.tag] == spec.out_channels and ModelSpec.from_tag(spec.tag, spec.stride, spec.native_size,
                                                                          spec.in_channels) == spec
    x = _tiny_input(model)
    with torch.no_grad():
        y = model(x)
    h, w = x.shape[-2:]
    assert y.shape[:2] == (2, spec.out_channels)
    assert torch.isfinite(y).all()
    if spec.is_colorizer:  # colorizers predict on a grid aligned with the input
        assert h % y.shape[-2] == 0 and y.shape[-1] * h == y.shape[-2] * w, f"{name}: {tuple(y.shape)} for input {tuple(x.shape)}"
        assert decode_ab(y, spec).shape == (2, 2, *y.shape[-2:])
    if spec.output == "ab":
        assert y.abs().max() <= 1  # tanh: ab_n
    if spec.output == "rgb":
        assert 0 <= y.min() and y.max() <= 1  # sigmoid


@pytest.mark.parametrize("name", list_models())
def test_checkpoint_round_trip(name, tmp_path):
    torch.manual_seed(0)
    model = create_model(name, pretrained=False).eval()
    path = tmp_path / "m.pt"
    checkpoint.save(path, model, {"size": 64})
    loaded, meta = checkpoint.load_model(path)
    x = _tiny_input(model)
    with torch.no_grad():
        assert torch.equal(model(x), loaded(x))
    assert meta["size"] == 64 and loaded.spec == model.spec


def test_factory_kwargs_survive_checkpoints(tmp_path):
    model = create_model("unet_lab", base=8)
    checkpoint.save(tmp_path / "u.pt", model)
    loaded, _ = checkpoint.load_model(tmp_path / "u.pt")
    assert loaded.arch_kwargs.get("base") == 8 and sum(p.numel() for p in loaded.parameters()) < 1e6


def test_spec_follows_the_factory_arguments():
    assert spec_of(create_model("unet_lab", base=8, depth=3)).stride == 8
    assert model_spec("pix2pix_unet", depth=8) == ModelSpec("ab", stride=256, native_size=256)
    assert model_spec("patchgan", in_channels=4, n_layers=2).in_channels == 4
    assert model_spec("resnet18_classify16").bins == "16x16"
    with pytest.raises(KeyError, match="unknown model"):
        model_spec("nonexistent")


def test_spec_is_validated_and_required():
    with pytest.raises(ValueError, match="bins is given exactly"):
        ModelSpec("bins", stride=8, native_size=64)
    with pytest.raises(ValueError, match="output must be one of"):
        ModelSpec("bins313", stride=8, native_size=64)
    with pytest.raises(ValueError, match="stride"):
        ModelSpec("ab", stride=0, native_size=64)
    with pytest.raises(TypeError, match="spec="):
        register_model(lambda: None)
    with pytest.raises(TypeError, match="create_model"):
        spec_of(torch.nn.Conv2d(1, 2, 3))


def test_decode_ab_kinds():
    torch.manual_seed(0)
    ab_n = torch.rand(1, 2, 3, 4) * 2 - 1
    ab_spec = ModelSpec("ab", stride=1, native_size=8)
    assert decode_ab(ab_n, ab_spec, normalized=True) is ab_n
    torch.testing.assert_close(decode_ab(ab_n, ab_spec), ab_n * 110)
    bins = ModelSpec("bins", bins="313", stride=1, native_size=8)
    logits = torch.randn(1, 313, 3, 4, requires_grad=True)
    ab = decode_ab(logits, bins, 0.38)
    torch.testing.assert_close(decode_ab(logits, bins, 0.38, normalized=True), ab / 110)
    ab.sum().backward()  # training decodes with gradients
    assert logits.grad is not None and ab.abs().max() < 128
    grey = torch.full((1, 3, 2, 2), 0.5)
    assert decode_ab(grey, ModelSpec("rgb", stride=1, native_size=8)).abs().max() < 0.01  # grey: no chroma
    with pytest.raises(ValueError, match="critic"):
        decode_ab(torch.zeros(1, 1, 2, 2), ModelSpec("critic", stride=1, native_size=8, in_channels=3))


@pytest.mark.parametrize("name, millions", [("cnn_rgb", 4.3), ("unet_rgb", 4.4), ("unet_lab", 20.5), ("zhang_eccv16", 32.2),
                                            ("autoencoder13", 6.2)])
def test_sizes_match_the_seed_reports(name, millions):
    n = sum(p.numel() for p in create_model(name, pretrained=False).parameters())
    assert abs(n / 1e6 - millions) < 0.1


def test_pix2pix_init_is_normal_002():
    w = create_model("patchgan").body[2].weight  # the second conv
    assert abs(w.mean().item()) < 2e-3 and abs(w.std().item() - 0.02) < 2e-3


def test_tinct_models_lists_every_network(capsys):
    assert main(["models"]) == 0
    listed = capsys.readouterr().out
    assert SEED_NETWORKS <= set(list_models())
    for name in list_models():
        assert name in listed
