"""The :class:`Restorer`: an old print's grey in, the same photo with its damage removed out.

    grey (8 bit) ─► scratches: damage mask (damage_unet, at full resolution, in tiles)
                 │             ─► inpaint the mask (OpenCV, Telea)
                 ├► grain: non-local means, at the strength the grain's level asks
                 └► tone: a faded print's levels stretched (only when asked: not a default step)
                 ─► grey (8 bit), same size

Each step can be left out (``steps``). The photo's own grey is restored: a colour input
(a sepia scan, say) is taken as its lightness, as the colorizer takes it, and the output is
grey (with the input's alpha, if any). Deeper than 8-bit sources are restored at 8 bits.
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from .. import budget, checkpoint, color
from ..backends import BACKENDS, BackendError, OnnxBackend, TorchBackend, cached_onnx, onnx_available
from ..errors import TinctError
from ..io import DEFAULT_MAX_PIXELS, Photo, load_image
from ..models import spec_of
from . import steps as ops

STEPS = ("scratches", "grain", "tone")
# Tone is asked for, not assumed: a clean photo with no true black or white (fog, a soft
# print, a low-key portrait) reads as faded, and stretching it moves every level
# (docs/RESTORE.md, "Failure modes").
DEFAULT_STEPS = ("scratches", "grain")
BUNDLED = {"default": "restore-damage.safetensors"}  # damage models shipped in tinct/weights
# Damage probability from which a pixel is inpainted, unless the model's meta says otherwise
# (the bundled stage-2 model's says 0.7, chosen on 40 training photos by
# experiments/damage_threshold.py; the first model's said 0.9).
THRESHOLD = 0.9
NET_TILE, NET_MARGIN = 1024, 32  # the mask network runs on tiles of this side, each grown by the margin
BASE_BYTES = 350_000_000  # the damage model, the runtimes and a tile's activations, loaded


class RestoreError(TinctError):
    """A restoration that cannot be set up: unknown steps, a damage model that is missing or not one."""


def parse_steps(text: str | None) -> tuple[str, ...]:
    """``"grain,scratches"`` -> ("scratches", "grain"); None or ``""`` -> :data:`DEFAULT_STEPS`; ``"all"`` -> every step.

    Raises:
        RestoreError: an unknown step (the message lists them).
    """
    if text is None or not text.strip():
        return DEFAULT_STEPS
    if text.strip() == "all":
        return STEPS
    names = tuple(dict.fromkeys(s.strip() for s in text.split(",") if s.strip()))
    bad = [n for n in names if n not in STEPS]
    if bad or not names:
        raise RestoreError(f"unknown restore step {', '.join(bad) or text!r}; choose from {', '.join(STEPS)} (comma-separated)")
    return tuple(s for s in STEPS if s in names)  # always in the pipeline's order


def _steps(steps) -> tuple[str, ...]:
    return parse_steps(steps if isinstance(steps, str) or steps is None else ",".join(steps) or "none")


def resolve_damage_model(spec: str | os.PathLike) -> Path:
    """A bundled damage model's name (``"default"``), a checkpoint file or a run folder."""
    if isinstance(spec, str) and spec in BUNDLED:
        path = Path(str(resources.files("tinct") / "weights" / BUNDLED[spec]))
        if not path.is_file():
            raise RestoreError(f"the bundled damage model ({BUNDLED[spec]}) is not in this install; "
                               "give a damage-mask checkpoint (recipes/restore/damage.yaml trains one)")
        return path
    path = Path(spec)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                return path / name
        raise RestoreError(f"{path}: a folder without best.pt or last.pt (not a training run)")
    return path


@functools.cache
def _levels_l() -> np.ndarray:
    """L of the 256 grey levels, float32 ``(256,)``: the table the colorizer reads grey photos with."""
    levels = np.repeat(np.arange(256, dtype=np.float32)[:, None] / 255.0, 3, 1)[None]
    return color.rgb_to_lab(levels)[0, :, 0].astype(np.float32)


def grey_of(photo: Photo) -> np.ndarray:
    """A photo's 8-bit grey: its own pixels when they are 8-bit grey, else the grey level of
    the same lightness (L of sRGB, as the colorizer computes it), per pixel."""
    if photo.pixels.dtype == np.uint8 and photo.pixels.ndim == 2:
        return photo.pixels
    from ..colorizer import Colorizer

    L = Colorizer.luminance(photo.pixels).numpy()
    return (np.interp(L, _levels_l(), np.arange(256, dtype=np.float32)) + 0.5).astype(np.uint8)


class Restorer:
    """Remove an old print's damage, grain and fading.

    Example:
        >>> from tinct.restore import Restorer
        >>> Restorer.load().restore("old.jpg").save("restored.png")            # doctest: +SKIP
        >>> Restorer.load(steps=("scratches",)).damage_mask(grey_uint8)        # doctest: +SKIP
    """

    def __init__(self, model: torch.nn.Module | None = None, steps=DEFAULT_STEPS, net=None, meta: dict | None = None):
        """``model``: a damage-mask network (``spec.output == "mask"``); it may be None when
        ``steps`` leave out ``"scratches"``. ``net``: a backend running it (default PyTorch)."""
        self.steps = _steps(steps)
        if model is not None and spec_of(model).output != "mask":
            raise RestoreError(f"{model.arch} is not a damage-mask model (its output is {spec_of(model).tag!r})")
        if "scratches" in self.steps and model is None and net is None:
            raise RestoreError("the scratches step needs a damage-mask model")
        self.model, self.meta = model, dict(meta or {})
        self.net = net or (TorchBackend(model) if model is not None else None)
        self.stride = spec_of(model).stride if model is not None else 16
        self.threshold = float(self.meta.get("threshold", THRESHOLD))
        self.memory_budget = budget.DEFAULT_BUDGET
        # Process-wide: restoring's full-size copies are given back when freed, not kept in the
        # heaps of the threads that made them (beside a colorizer: 1,070 -> 704 MB at 24 MP).
        budget.return_freed_memory_at_once()

    @classmethod
    def load(cls, model: str | os.PathLike = "default", steps=DEFAULT_STEPS, backend: str = "auto") -> "Restorer":
        """A restorer with a bundled damage model (``"default"``), a checkpoint or a run folder.

        Raises:
            RestoreError: unknown steps, or the bundled model is missing.
            tinct.checkpoint.CheckpointError: the file is missing, damaged or not tinct's.
            tinct.backends.BackendError: the backend asked for cannot run here.
        """
        steps = _steps(steps)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
        if "scratches" not in steps:
            return cls(None, steps)
        path = resolve_damage_model(model)
        net, meta = checkpoint.load_model(path)
        if spec_of(net).output != "mask":
            raise checkpoint.CheckpointError(f"{path}: {net.arch} is not a damage-mask model (restore needs one, "
                                             "e.g. trained by recipes/restore/damage.yaml)")
        runner = None
        if backend == "onnx" or (backend == "auto" and onnx_available()):
            try:
                runner = OnnxBackend(cached_onnx(path, net, meta), arena=False)  # tinct restore at 24 MP: 730 -> 648 MB (457 with budget.return_freed_memory_at_once)
            except BackendError:
                if backend == "onnx":
                    raise
        return cls(net, steps, runner, meta)

    # ------------------------------------------------------------ public API
    def restore(self, image, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
        """Restore one image (a path, bytes, PIL image or :class:`tinct.io.Photo`).

        Returns:
            8-bit grey (``"L"``, or ``"LA"`` when the input had alpha) PIL image of the input's size.

        Raises:
            tinct.io.ImageError: an unreadable or damaged image, one over ``max_pixels`` or the memory budget.
        """
        photo = self.restore_photo(self.read_photo(image, max_pixels))
        im = Image.fromarray(photo.pixels, "L")
        if photo.alpha is not None:
            im = Image.merge("LA", (im, Image.fromarray(photo.alpha, "L")))
        return im

    def read_photo(self, image, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
        if isinstance(image, Photo):
            self.check_budget(image.pixels.shape[:2], mode="L" if image.pixels.dtype == np.uint8 else "F")
            return image
        return load_image(image, max_pixels=max_pixels, check=lambda w, h, mode: self.check_budget((h, w), mode=mode))

    def restore_photo(self, photo: Photo) -> Photo:
        """The photo restored: a new grey 8-bit :class:`tinct.io.Photo` (alpha and name kept)."""
        out = self.restore_grey(grey_of(photo))
        return Photo(pixels=out, alpha=photo.alpha, name=photo.name, is_gray=True)

    def restore_grey(self, grey: np.ndarray) -> np.ndarray:
        """8-bit grey ``(H, W)`` -> restored 8-bit grey ``(H, W)`` (a new array)."""
        grey = np.ascontiguousarray(grey, dtype=np.uint8)
        if grey.ndim != 2:
            raise ValueError(f"expected an 8-bit grey image (H, W), got shape {grey.shape}")
        out = grey
        if "scratches" in self.steps:
            out = ops.inpaint(out, self.damage_mask(out))
        if "grain" in self.steps:
            out = ops.denoise(out)
        if "tone" in self.steps:
            out = ops.correct_tone(out)
        return out if out is not grey else grey.copy()

    def damage_mask(self, grey: np.ndarray) -> np.ndarray:
        """bool ``(H, W)``: the pixels the damage model finds damaged (probability >= threshold),
        thresholded tile by tile (no full-size probability map: a quarter of its memory), and
        torn-off corners filled in whole (:func:`tinct.restore.steps.fill_torn_corners`)."""
        mask = np.empty(grey.shape, bool)
        for (rows, cols, keep_r, keep_c), prob in self._tile_probabilities(grey):
            mask[rows, cols][keep_r, keep_c] = prob[keep_r, keep_c] >= self.threshold
        return ops.fill_torn_corners(grey, mask)

    def damage_probability(self, grey: np.ndarray) -> np.ndarray:
        """float32 ``(H, W)`` in [0, 1]: each pixel's probability of being damage."""
        prob = np.empty(grey.shape, np.float32)
        for (rows, cols, keep_r, keep_c), tile in self._tile_probabilities(grey):
            prob[rows, cols][keep_r, keep_c] = tile[keep_r, keep_c]
        return prob

    def _tile_probabilities(self, grey: np.ndarray):
        """(tile, probability of the tile with its margin) for each of :func:`ops.tiles`'s tiles."""
        if self.net is None:
            raise RestoreError("this restorer has no damage model (its steps leave out scratches)")
        H, W = grey.shape
        table = color.normalize_l(_levels_l())
        for tile in ops.tiles(H, W, NET_MARGIN, NET_TILE):
            rows, cols = tile[:2]
            x = torch.from_numpy(table[grey[rows, cols]])[None, None]
            h, w = x.shape[-2:]
            ph, pw = -h % self.stride, -w % self.stride
            if ph or pw:  # reflect where it can, replicate for a side shorter than the padding
                mode = "reflect" if ph < h and pw < w else "replicate"
                x = F.pad(x, (0, pw, 0, ph), mode=mode)
            yield tile, torch.sigmoid(self.net(x)[0, 0, :h, :w]).numpy()

    # ------------------------------------------------------------ memory
    def memory_needed(self, shape: tuple[int, int], mode: str = "RGB") -> int:
        """Bytes restoring an image of ``shape`` = (height, width) needs (its header's ``mode``):
        the decoded photo, its grey, three 8-bit working copies and the damage probability
        (4 bytes) at full size, the rest in tiles."""
        h, w = int(shape[0]), int(shape[1])
        pil, array, alpha = budget._pixel_bytes(mode)
        decoding = 2 * pil + array
        restoring = array + alpha + 1 + 3 + 4 + (4 if array > 1 else 0)  # + L of a colour photo
        return BASE_BYTES + max(decoding, restoring) * h * w

    def check_budget(self, shape: tuple[int, int], size: int | None = None, mode: str = "RGB",
                     limit: int | None = None) -> None:
        """Refuse an image whose restoration would need more than ``limit`` bytes (default
        :attr:`memory_budget`), from its header (``size`` is ignored: restoration works at
        the photo's own size).

        Raises:
            tinct.budget.MemoryBudgetError: over the budget.
        """
        needed, limit = self.memory_needed(shape, mode), limit or self.memory_budget
        if needed > limit:
            h, w = shape
            raise budget.MemoryBudgetError(f"{w}x{h} needs about {needed / budget.GB:.1f} GB to restore, over the memory "
                                           f"budget of {limit / budget.GB:.1f} GB; use a smaller image (or raise --max-memory-gb)")



