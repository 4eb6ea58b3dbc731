"""Colour hints (issue 22): the simulated training hints, the hint network's start from a
plain checkpoint (it computes what the plain one does until trained), and the hint map's
resizing."""

from __future__ import annotations

import pytest
import torch

from tinct import checkpoint, color, hints
from tinct.config import ConfigError, HintsConfig
from tinct.models import create_model
from tinct.train import load_weights


def _ab(seed=0, b=4, h=32, w=48):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(b, 2, h, w, generator=g) * 30


def test_simulated_hints_are_the_true_colours_and_a_function_of_the_step():
    cfg = HintsConfig(enabled=True, p_none=0.0, p_global=1.0, mean_points=4, patch=(1, 5))
    ab = _ab()
    local, glob = hints.simulate(ab, cfg, hints.step_generator(0, 7))
    again, _ = hints.simulate(ab, cfg, hints.step_generator(0, 7))
    other, _ = hints.simulate(ab, cfg, hints.step_generator(0, 8))
    assert torch.equal(local, again) and not torch.equal(local, other)
    mask = local[:, 2] > 0
    assert mask.any(dim=(1, 2)).all()  # every crop got points (p_none 0)
    assert set(local[:, 2].unique().tolist()) <= {0.0, 1.0}
    assert (local[:, :2][~mask[:, None].expand(-1, 2, -1, -1)] == 0).all()
    # each hinted value is within the true ab's range at that crop (a patch mean), in ab_n units
    ab_n = color.normalize_ab(ab)
    for i in range(ab.shape[0]):
        vals = local[i, 0][mask[i]]
        assert vals.min() >= ab_n[i, 0].min() - 1e-6 and vals.max() <= ab_n[i, 0].max() + 1e-6
    assert glob.shape == (4, hints.GLOBAL_DIM) and torch.allclose(glob[:, :-1].sum(1), torch.ones(4))
    assert (glob[:, -1] == 1).all()
    none, no_glob = hints.simulate(ab, HintsConfig(enabled=True, p_none=1.0, p_global=0.0), hints.step_generator(0, 7))
    assert not none.any() and not no_glob.any()


def test_a_single_point_hint_carries_its_patch_mean():
    ab = torch.zeros(1, 2, 16, 16)
    ab[:, 0], ab[:, 1] = 40.0, -20.0  # one colour everywhere: any patch's mean is it
    local, _ = hints.simulate(ab, HintsConfig(enabled=True, p_none=0, mean_points=1, max_points=1, patch=(3, 3)),
                              hints.step_generator(1, 0))
    assert local[0, 2].sum().item() == 9
    m = local[0, 2] > 0
    assert torch.allclose(color.denormalize_ab(local[0, :2])[:, m], torch.tensor([[40.0], [-20.0]]).expand(-1, 9))
    small = hints.resize_local(local, (4, 4))
    hinted = small[0, 2] > 0
    assert hinted.any() and torch.allclose(color.denormalize_ab(small[0, :2])[:, hinted][0], torch.tensor(40.0))


def test_hint_network_starts_as_the_plain_one(tmp_path):
    """Loaded from a plain checkpoint (model.init), the hint network's outputs equal the
    plain network's with no hints and with hints alike (its hint paths start at zero);
    a plain network refuses a hint checkpoint (unexpected weights)."""
    torch.manual_seed(0)
    plain = create_model("effunet_bins313", pretrained=False).eval()
    path = tmp_path / "plain.pt"
    checkpoint.save(path, plain)
    net = create_model("effunet_bins313", pretrained=False, hints=True).eval()
    assert net.spec.hints and not plain.spec.hints
    load_weights(net, str(path))
    x = torch.randn(2, 1, 64, 64)
    local, glob = hints.simulate(_ab(b=2, h=64, w=64), HintsConfig(enabled=True, p_none=0, p_global=1),
                                 hints.step_generator(0, 1))
    with torch.no_grad():
        ref = plain(x)
        assert torch.equal(net(x), ref) and torch.equal(net(x, local, glob), ref)
    # a trained hint path changes the output
    with torch.no_grad():
        net.hint_encoder.project[0].weight.normal_()
        assert not torch.allclose(net(x, local, glob), ref)
        assert torch.equal(net(x), ref)  # and without hints it is still the plain network
    hint_path = tmp_path / "hints.pt"
    checkpoint.save(hint_path, net)
    with pytest.raises(ConfigError, match="unexpected"):
        load_weights(create_model("effunet_bins313", pretrained=False), str(hint_path))
