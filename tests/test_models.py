"""Every registered network: builds, runs on a tiny input, survives a checkpoint round trip."""

from __future__ import annotations

import pytest
import torch

from tinct import checkpoint
from tinct.cli import main
from tinct.models import create_model, describe, list_models

CHANNELS = {"ab": 2, "rgb": 3, "bins313": 313, "bins16x16": 256, "critic": 1}
SEED_NETWORKS = {  # the list: every seed system's network is registered
    "cnn_rgb", "unet_rgb", "unet_lab", "shallow_ab", "resnet18_unet_ab", "effnet_unet_ab", "resnet18_classify16",
    "resnet34_regress_ab", "pix2pix_unet", "patchgan", "zhang_eccv16", "zhang_small_ab", "autoencoder13",
}


def _tiny_input(model) -> torch.Tensor:
    """(2, C, s, 2s): non-square, so a swapped height and width would show."""
    s = max(32, model.stride)
    return torch.rand(2, getattr(model, "in_channels", 1), s, 2 * s) * 2 - 1


@pytest.mark.parametrize("name", list_models())
def test_model_builds_and_runs(name):
    torch.manual_seed(0)
    model = create_model(name, pretrained=False).eval()
    assert model.output in CHANNELS and model.native_size % model.stride == 0 and describe(name)
    x = _tiny_input(model)
    with torch.no_grad():
        y = model(x)
    h, w = x.shape[-2:]
    assert y.shape[:2] == (2, CHANNELS[model.output])
    assert torch.isfinite(y).all()
    if model.output != "critic":  # colorizers predict on a grid aligned with the input
        assert h % y.shape[-2] == 0 and y.shape[-1] * h == y.shape[-2] * w, f"{name}: {tuple(y.shape)} for input {tuple(x.shape)}"
    if model.output == "ab":
        assert y.abs().max() <= 1  # tanh: ab_n
    if model.output == "rgb":
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
    assert meta["size"] == 64 and loaded.output == model.output


def test_factory_kwargs_survive_checkpoints(tmp_path):
    model = create_model("unet_lab", base=8)
    checkpoint.save(tmp_path / "u.pt", model)
    loaded, _ = checkpoint.load_model(tmp_path / "u.pt")
    assert loaded.arch_kwargs.get("base") == 8 and sum(p.numel() for p in loaded.parameters()) < 1e6


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
