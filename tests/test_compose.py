"""The per-pixel path (tinct.compose, tinct.color.lab_to_srgb8) against the implementation it
replaced: ab upsampled at once with F.interpolate, kornia's Lab -> sRGB, 8-bit rounding."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from tinct import Colorizer, color, compose

from conftest import composed_at_once, make_photo


def test_lab_to_srgb8_matches_kornia_within_one_step():
    rng = np.random.default_rng(0)
    L = rng.uniform(0, 100, (64, 500)).astype(np.float32)
    a, b = (rng.uniform(-150, 150, (64, 500)).astype(np.float32) for _ in range(2))  # far out of gamut too
    L[0, :3], a[0, :3], b[0, :3] = (0, 100, 50), (0, 0, 0), (0, 0, 0)  # black, white, grey
    out = np.empty((64, 500, 3), np.uint8)
    color.lab_to_srgb8(L, a, b, out)
    lab = torch.from_numpy(np.stack([L, a, b]))[None]
    ref = (color.lab_to_rgb(lab)[0].permute(1, 2, 0).numpy().clip(0, 1) * 255 + 0.5).astype(np.uint8)
    diff = np.abs(out.astype(int) - ref)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
    assert out[0, 0].tolist() == [0, 0, 0] and out[0, 1].tolist() == [255, 255, 255]


@pytest.mark.parametrize("threads", [1, 2])
def test_render_of_a_generated_photo_equals_the_previous_implementation(monkeypatch, threads):
    L = Colorizer.luminance(np.asarray(make_photo(301, 203).convert("L")))
    rng = np.random.default_rng(1)
    ab_small = torch.from_numpy(rng.uniform(-90, 90, (2, 13, 19)).astype(np.float32))
    expected = composed_at_once(L, ab_small * 1.3)
    monkeypatch.setattr(compose, "TILE_PIXELS", 301 * 40 + 7)  # 6 tiles
    monkeypatch.setattr(compose, "PIECE_PIXELS", 301 * 3)  # pieces of 3 rows
    got = np.asarray(compose.render(L, ab_small, saturation=1.3, threads=threads))
    assert got.shape == (203, 301, 3)
    diff = np.abs(got.astype(int) - expected)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01


def test_render_of_rows_wider_than_a_piece_and_alpha(monkeypatch):
    rng = np.random.default_rng(2)
    L = torch.from_numpy(rng.uniform(0, 100, (3, 997)).astype(np.float32))
    ab_small = torch.from_numpy(rng.uniform(-60, 60, (2, 1, 31)).astype(np.float32))
    expected = composed_at_once(L, ab_small)
    monkeypatch.setattr(compose, "TILE_PIXELS", 500)  # pieces of one row: numpy's column taps
    monkeypatch.setattr(compose, "PIECE_PIXELS", 120)
    alpha = rng.integers(0, 256, (3, 997), dtype=np.uint8)
    im = compose.render(L, ab_small, alpha=alpha, threads=2)
    assert im.mode == "RGBA" and np.array_equal(np.asarray(im)[..., 3], alpha)
    diff = np.abs(np.asarray(im)[..., :3].astype(int) - expected)
    assert diff.max() <= 1 and (diff > 0).mean() < 0.01
