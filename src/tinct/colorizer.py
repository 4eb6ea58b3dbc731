"""The inference path every photo takes.

    photo -> L (full resolution) -> resize to working size -> model -> ab (low res)
          -> upsample ab to full resolution, scale by saturation
          -> Lab(L full resolution, ab) -> sRGB

The output's L is the input's own full-resolution L, so detail and tone are never touched:
the network only decides the colours.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Iterable

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import checkpoint, color
from .io import DEFAULT_MAX_PIXELS, Photo, load_image, to_pil

# Named models shipped inside the package: name -> (file in tinct/weights, description).
BUNDLED = {
    "default": ("default.safetensors", "EfficientNet-Lite0 U-Net over 313 ab bins, trained on the tinct corpus"),
}


def bundled_path(name: str) -> Path:
    filename, _ = BUNDLED[name]
    return Path(str(resources.files("tinct") / "weights" / filename))


def resolve_model_path(spec: str | os.PathLike) -> Path:
    """A bundled model name, a checkpoint file, or a run folder (its best.pt, else last.pt)."""
    if isinstance(spec, str) and spec in BUNDLED:
        return bundled_path(spec)
    path = Path(spec)
    if path.is_dir():
        for candidate in ("best.pt", "last.pt", "final.safetensors"):
            if (path / candidate).is_file():
                return path / candidate
        raise checkpoint.CheckpointError(f"{path}: folder holds no best.pt, last.pt or final.safetensors")
    if not path.exists():
        known = ", ".join(sorted(BUNDLED))
        raise checkpoint.CheckpointError(f"{spec}: not a bundled model name ({known}) nor an existing checkpoint file")
    return path


class Colorizer:
    """Colorize photos with one model.

    Example:
        >>> from tinct import Colorizer
        >>> out = Colorizer.load("default").colorize(Image.open("old.jpg"))  # doctest: +SKIP
    """

    def __init__(self, model: torch.nn.Module, meta: dict | None = None, device: str | torch.device = "cpu"):
        self.model = model.eval().to(device)
        self.meta = dict(meta or {})
        self.device = torch.device(device)
        self.output = getattr(model, "output", "ab")
        self.stride = int(getattr(model, "stride", 32))
        self.size = int(self.meta.get("size", getattr(model, "native_size", 256)))
        self.temperature = float(self.meta.get("temperature", 0.38))
        # Test-time flip averaging: the network also sees the mirrored photo and the two
        # raw outputs are averaged (twice the network time; set in the checkpoint's meta).
        self.flip = bool(self.meta.get("flip", False))
        if self.output.startswith("bins"):
            self.centers = torch.from_numpy(color.bin_centers(self.output[4:])).to(self.device)

    @classmethod
    def load(cls, spec: str | os.PathLike = "default", device: str = "cpu") -> "Colorizer":
        """Load a bundled model by name (``"default"``), a checkpoint file or a run folder.

        Raises:
            tinct.checkpoint.CheckpointError: the file is missing, truncated or not tinct's.
        """
        model, meta = checkpoint.load_model(resolve_model_path(spec))
        return cls(model, meta, device)

    # ------------------------------------------------------------ public API
    def colorize(self, image, size: int | None = None, saturation: float = 1.0, temperature: float | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
        """Colorize one image.

        Args:
            image: PIL image, path, bytes, or a :class:`tinct.io.Photo`. A colour photo is
                treated as its luminance.
            size: working size (short side the network sees); default: the model's own.
            saturation: multiplies the predicted ab (1 = as predicted, 0 = grey).
            temperature: annealed-mean temperature for distribution models.

        Returns:
            8-bit RGB (or RGBA, when the input had alpha) PIL image of the input's pixel size.
        """
        photo = image if isinstance(image, Photo) else load_image(image, max_pixels=max_pixels)
        return self.colorize_many([photo], size, saturation, temperature)[0]

    def colorize_many(self, images: Iterable, size: int | None = None, saturation: float = 1.0,
                      temperature: float | None = None, batch_size: int = 8) -> list[Image.Image]:
        """Colorize several images; photos with the same working shape share a forward pass."""
        photos = [im if isinstance(im, Photo) else load_image(im) for im in images]
        L_full = [self.luminance(p.rgb) for p in photos]
        ab_full = self.predict_ab_batched(L_full, size, temperature, batch_size)
        return [to_pil(self.compose(L, ab * saturation), p.alpha) for p, L, ab in zip(photos, L_full, ab_full)]

    # ------------------------------------------------------------ the steps
    @staticmethod
    def luminance(rgb: np.ndarray) -> torch.Tensor:
        """Full-resolution L ``(H, W)`` of an sRGB float image."""
        lab = color.rgb_to_lab(torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)[None])
        return lab[0, 0]

    def working_shape(self, h: int, w: int, size: int | None) -> tuple[int, int]:
        """Short side scaled to ``size``, aspect kept, both sides multiples of the stride."""
        size = int(size or self.size)
        if size < self.stride:
            raise ValueError(f"size must be at least {self.stride}, got {size}")
        s = size / min(h, w)
        r = lambda v: max(self.stride, int(round(v * s / self.stride)) * self.stride)  # noqa: E731
        hh, ww = r(h), r(w)
        cap = 4 * size  # very long panoramas: cap the long side, keep the cost bounded
        if max(hh, ww) > cap:
            t = cap / max(hh, ww)
            hh, ww = max(self.stride, int(hh * t) // self.stride * self.stride), max(self.stride, int(ww * t) // self.stride * self.stride)
        return hh, ww

    @torch.no_grad()
    def predict_ab_batched(self, L_full: list[torch.Tensor], size, temperature, batch_size: int) -> list[torch.Tensor]:
        shapes = [self.working_shape(*L.shape, size) for L in L_full]
        out: list[torch.Tensor | None] = [None] * len(L_full)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, s in enumerate(shapes):
            groups.setdefault(s, []).append(i)
        for shape, idx in groups.items():
            for k in range(0, len(idx), batch_size):
                chunk = idx[k:k + batch_size]
                L_small = torch.stack([self._resize(L_full[i][None, None], shape)[0] for i in chunk])
                ab_small = self.predict_ab(L_small, temperature)
                for j, i in enumerate(chunk):
                    out[i] = F.interpolate(ab_small[j:j + 1], size=L_full[i].shape, mode="bilinear", align_corners=False)[0]
        return out

    @staticmethod
    def _resize(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        down = shape[0] < x.shape[-2] or shape[1] < x.shape[-1]
        return F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=down)

    @torch.no_grad()
    def predict_ab(self, L: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """Network step: L ``(B, 1, h, w)`` in [0, 100] -> ab ``(B, 2, h', w')`` in Lab units."""
        x = color.normalize_l(L).to(self.device)
        if self.flip:
            y = self.model(torch.cat([x, x.flip(-1)]))
            y = 0.5 * (y[: len(x)] + y[len(x):].flip(-1))
        else:
            y = self.model(x)
        if self.output.startswith("bins"):
            return color.annealed_mean(y, self.centers, temperature or self.temperature).cpu()
        if self.output == "ab":
            return color.denormalize_ab(y).cpu()
        if self.output == "rgb":  # RGB models (seed 000): keep the chroma of their RGB
            return color.rgb_to_lab(y.clamp(0, 1))[:, 1:].cpu()
        raise ValueError(f"model output kind {self.output!r} is not supported by the colorizer")

    @staticmethod
    def compose(L: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
        """Full-resolution L ``(H, W)`` + ab ``(2, H, W)`` -> sRGB float ``(H, W, 3)``."""
        lab = torch.cat([L[None], ab], 0)[None]
        return color.lab_to_rgb(lab)[0].permute(1, 2, 0).numpy()
