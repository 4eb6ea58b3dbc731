"""tinct.degrade: the old-print degradation is deterministic, keeps range and dtype, every
step changes the image, the damage masks are exactly the pixels drawn, and the training
augmentation (data.degrade) leaves batches untouched when it is off."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import make_photo

from tinct import color, config, data, degrade, loader
from tinct.degrade import Step


@pytest.fixture(scope="module")
def grey() -> np.ndarray:
    """A 96 x 128 grey photo, uint8."""
    rgb = np.asarray(make_photo(128, 96, seed=3), dtype=np.float32) / 255
    return (color.grey(rgb)[..., 0] * 255 + 0.5).astype(np.uint8)


def test_same_seed_same_print_other_seed_other_print(grey):
    a = degrade.degrade(grey, "old-print", seed=7)
    assert np.array_equal(a, degrade.degrade(grey, "old-print", seed=7))
    assert np.array_equal(a, degrade.degrade(grey, "old-print", seed=[7]))  # a seed sequence of one
    assert not np.array_equal(a, degrade.degrade(grey, "old-print", seed=8))
    assert not np.array_equal(a, grey)


def test_output_keeps_shape_dtype_and_range(grey):
    out = degrade.degrade(grey, "old-print", seed=0)
    assert out.dtype == np.uint8 and out.shape == grey.shape
    f = degrade.degrade(grey.astype(np.float32) / 255, "old-print", seed=0)
    assert f.dtype == np.float32 and f.shape == grey.shape and 0 <= f.min() and f.max() <= 1
    assert np.abs(f * 255 - out).max() <= 1.0  # float and uint8 inputs give the same print, up to rounding


@pytest.mark.parametrize("name", sorted(degrade.STEPS))
def test_each_step_changes_the_image(grey, name):
    out = degrade.degrade(grey, [Step(name)], seed=1)
    assert out.shape == grey.shape and not np.array_equal(out, grey)


def test_steps_draw_from_their_own_generators(grey):
    """Changing one step's parameters leaves the draws of the steps after it unchanged."""
    a = degrade.degrade(grey, [Step("fade", {"black": 0.0, "white": 1.0}), Step("grain")], seed=4)
    b = degrade.degrade(grey, [Step("fade", {"black": (0.0, 0.0), "white": 1.0}), Step("grain")], seed=4)
    assert np.array_equal(a, b)
    assert np.array_equal(degrade.degrade(grey, [Step("fade", {"black": 0.0, "white": 1.0})], seed=4), grey)


@pytest.mark.parametrize("name", ["scratches", "dust", "cracks", "torn_corner"])
def test_damage_mask_is_exactly_the_pixels_drawn(grey, name):
    params = {"opacity": 1.0} if name != "torn_corner" else {}
    out, mask = degrade.degrade(grey, [Step(name, params)], seed=2, return_mask=True)
    assert mask.dtype == bool and mask.shape == grey.shape and 0 < mask.mean() < 0.5
    assert np.array_equal(out[~mask], grey[~mask])  # nothing outside the mask is touched
    assert (out[mask] != grey[mask]).mean() > 0.9  # and (nearly) every masked pixel is: marks are near black or white


def test_scratch_mask_follows_width_and_count(grey):
    # widths are at a 256-px short side: 8 is 3 px on this 96-px image
    _, thin = degrade.degrade(grey, [Step("scratches", {"count": 1, "width": 1, "bend": 0.0})], seed=5, return_mask=True)
    _, wide = degrade.degrade(grey, [Step("scratches", {"count": 1, "width": 8, "bend": 0.0})], seed=5, return_mask=True)
    assert thin.sum() < wide.sum() and np.all(wide[thin])  # the same stroke, dilated
    _, none = degrade.degrade(grey, [Step("scratches", {"count": 0})], seed=5, return_mask=True)
    assert not none.any()


def test_old_print_mask_is_the_union_of_its_damage(grey):
    _, mask = degrade.degrade(grey, "old-print", seed=3, return_mask=True)
    assert mask.any()
    _, clean = degrade.degrade(grey, [Step("blur"), Step("grain")], seed=3, return_mask=True)
    assert not clean.any()


def test_probability_zero_skips_a_step(grey):
    assert np.array_equal(degrade.degrade(grey, [Step("grain", p=0.0)], seed=0), grey)


def test_bad_input_raises(grey):
    with pytest.raises(ValueError, match="unknown degradation"):
        degrade.degrade(grey, "new-print")
    with pytest.raises(ValueError, match="unknown degradation step"):
        degrade.degrade(grey, [Step("sepia")])
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        degrade.degrade(np.zeros((4, 4, 3), np.uint8))


def test_degrade_lightness_round_trips_through_8_bit_grey():
    L = np.linspace(0, 100, 64 * 64, dtype=np.float32).reshape(64, 64)
    same = degrade.degrade_lightness(L, [], seed=0)
    assert same.dtype == np.float32 and np.abs(same - L).max() < 0.5  # only the 8-bit rounding
    assert np.abs(degrade.degrade_lightness(L, "old-print", seed=0) - L).mean() > 1


# ----------------------------------------------------------------- training augmentation
def _batch(seed=0) -> dict:
    rgb = torch.stack([torch.from_numpy(np.array(make_photo(32, 32, seed=seed + i))).permute(2, 0, 1) for i in range(3)])
    return data.collate(list(rgb))


def test_degrade_inputs_is_deterministic_and_touches_only_the_input():
    b = _batch()
    a1 = data.degrade_inputs(b["L_n"], "old-print", 1.0, seed=0, step=5)
    a2 = data.degrade_inputs(b["L_n"], "old-print", 1.0, seed=0, step=5)
    assert torch.equal(a1, a2) and a1.shape == b["L_n"].shape and a1.dtype == b["L_n"].dtype
    assert not torch.equal(a1, data.degrade_inputs(b["L_n"], "old-print", 1.0, seed=0, step=6))
    assert all(not torch.equal(a1[j], b["L_n"][j]) for j in range(3))
    assert -1 <= a1.min() and a1.max() <= 1
    assert torch.equal(data.degrade_inputs(b["L_n"], "old-print", 0.0, seed=0, step=5), b["L_n"])


def _cfg(**data_keys) -> config.Config:
    cfg = config.Config()
    cfg.model.name = "effunet_bins313"
    for k, v in data_keys.items():
        setattr(cfg.data, k, v)
    cfg.data.crop = 32
    return cfg


def test_recipe_key_off_leaves_the_batch_bit_identical():
    b, ref = _batch(), _batch()
    loader.prepare(b, _cfg(), step=3)
    assert b.keys() == ref.keys() and all(torch.equal(b[k], ref[k]) for k in ref)


def test_recipe_key_on_degrades_the_input_and_not_the_targets():
    b, ref = _batch(), _batch()
    loader.prepare(b, _cfg(degrade="old-print", degrade_p=1.0), step=3)
    assert not torch.equal(b["L_n"], ref["L_n"])
    for k in ("rgb", "lab", "ab_n"):
        assert torch.equal(b[k], ref[k])
    again = _batch()
    loader.prepare(again, _cfg(degrade="old-print", degrade_p=1.0), step=3)
    assert torch.equal(again["L_n"], b["L_n"])  # a pure function of (seed, step, position)


def test_recipe_key_is_validated():
    from tinct.config import ConfigError
    from tinct.train import validate

    validate(_cfg(degrade="old-print"))
    with pytest.raises(ConfigError, match="data.degrade"):
        validate(_cfg(degrade="new-print"))
    with pytest.raises(ConfigError, match="data.degrade"):
        validate(_cfg(degrade="old-print", degrade_p=1.5))
