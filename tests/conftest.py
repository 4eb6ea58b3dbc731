"""Shared fixtures: photos generated on the fly, a tiny random-weight checkpoint, and the
server tests' ``models`` (loaded once per module) and ``make_client``."""

from __future__ import annotations

import os
from pathlib import Path

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


def composed_at_once(L: torch.Tensor, ab_small: torch.Tensor) -> np.ndarray:
    """What ``Colorizer.render`` gives for ``L`` and a small ab, composed in one piece
    (bilinear ab upsampling, Lab -> sRGB, 8-bit rounding): the reference for its strips and tiles."""
    import torch.nn.functional as F

    from tinct import Colorizer

    ab = F.interpolate(ab_small[None], size=tuple(L.shape), mode="bilinear", align_corners=False)[0]
    return (np.clip(Colorizer.compose(L, ab), 0, 1) * 255 + 0.5).astype(np.uint8)


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


@pytest.fixture(scope="module")
def models(tiny_checkpoint):
    """The tiny checkpoint loaded as ``tinct serve`` loads it, as model "tiny"."""
    from tinct.serve import load_models

    return load_models([f"tiny={tiny_checkpoint}"])


@pytest.fixture
def make_client(models, tmp_path):
    """make_client(**settings) -> a TestClient of a fresh app (lifespan run), closed after the test."""
    import warnings

    from tinct.serve import ServeSettings, create_app

    with warnings.catch_warnings():  # starlette >= 1.x prefers httpx2 and warns about httpx; both work
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient
    clients = []

    def make(**overrides):
        settings = ServeSettings(**{"models": ["tiny"], "db": tmp_path / "db" / "study.sqlite", **overrides})
        client = TestClient(create_app(settings, models=models), raise_server_exceptions=False,
                            base_url="http://localhost")  # an allowed Host (TestClient's default, testserver, is not)
        clients.append(client.__enter__())
        return client

    yield make
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """Where the browser tests leave their screenshots: ``$TINCT_ARTIFACTS`` (default ``test-artifacts/``)."""
    folder = Path(os.environ.get("TINCT_ARTIFACTS", "test-artifacts"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder
