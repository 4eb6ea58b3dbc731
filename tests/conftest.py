"""Shared fixtures: photos generated on the fly and a tiny random-weight checkpoint."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image


def make_photo(w: int = 96, h: int = 64, seed: int = 0) -> Image.Image:
    """A smooth colourful RGB test photo (gradients plus a few blocks)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w].astype(np.float32)
    rgb = np.stack([x / max(w - 1, 1), y / max(h - 1, 1), 0.5 + 0.5 * np.sin(x / 7 + y / 11)], -1)
    for _ in range(3):
        x0, y0 = rng.integers(0, max(w - 8, 1)), rng.integers(0, max(h - 8, 1))
        rgb[y0:y0 + 8, x0:x0 + 8] = rng.random(3)
    return Image.fromarray((rgb * 255).astype(np.uint8), "RGB")


@pytest.fixture(scope="session", autouse=True)
def _private_cache(tmp_path_factory):
    """ONNX exports and photo caches go to a folder of this test session, not ~/.cache."""
    patch = pytest.MonkeyPatch()
    patch.setenv("TINCT_CACHE_DIR", str(tmp_path_factory.mktemp("cache")))
    yield
    patch.undo()


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """A tinct checkpoint of the default architecture with random weights, working size 64."""
    from tinct import checkpoint
    from tinct.models import create_model

    torch.manual_seed(0)
    model = create_model("effunet_bins313", pretrained=False)
    path = tmp_path_factory.mktemp("ckpt") / "tiny.pt"
    checkpoint.save(path, model, {"size": 64, "temperature": 0.38})
    return path


@pytest.fixture(scope="session")
def tiny_colorizer(tiny_checkpoint):
    from tinct import Colorizer

    return Colorizer.load(tiny_checkpoint)
