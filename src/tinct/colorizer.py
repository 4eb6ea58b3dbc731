"""The inference path every photo takes.

    photo -> L (full resolution) -> resize to working size -> network -> ab (low res)
          -> upsample ab to full resolution, scale by saturation
          -> Lab(L full resolution, ab) -> sRGB

The output's L is the input's own full-resolution L, so detail and tone are never touched:
the network only decides the colours.

Memory stays bounded for huge photos: the photo is kept as decoded (uint8), L is computed
and the output composed in tiles of about a megapixel (rows, or pieces of a row for very
wide images), and ab is upsampled tile by tile (bilinear is separable: each tile
interpolates the low-res rows and columns it covers). A 24 MP photo therefore never has a
full-size float RGB or Lab image in memory; only L (4 bytes a pixel) and the 8-bit output.

The rest is bounded by a budget checked from the image's header, before anything is
decoded (:meth:`Colorizer.check_budget`, :mod:`tinct.budget`): the network's memory grows
with the working size, the photo's with its pixels. Flip averaging runs its two passes one
after the other and batches are cut to fit, so what fits in the budget runs in pieces.
"""

from __future__ import annotations

import functools
import os
from importlib import resources
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from . import budget, checkpoint, color, compose, hints as hints_, runtime
from .backends import TorchBackend
from .decode import bin_centers, decode_ab
from .io import DEFAULT_MAX_PIXELS, ImageError, Photo, load_image, rgb_float
from .models import ModelSpec, spec_of

STRIP_PIXELS = 1 << 20  # pixels per tile when computing L and composing the output

# Named models shipped inside the package: name -> (file in tinct/weights, description).
BUNDLED = {
    "default": ("default.safetensors", "EfficientNet-Lite0 U-Net over 313 ab bins, trained on the tinct corpus"),
}


def bundled_path(name: str) -> Path:
    filename, _ = BUNDLED[name]
    return Path(str(resources.files("tinct") / "weights" / filename))


def bundled_installed(name: str) -> bool:
    """Whether this install holds the bundled model's weights file."""
    return bundled_path(name).is_file()


def resolve_model_path(spec: str | os.PathLike) -> Path:
    """A bundled model name, a checkpoint or ONNX file, or a run folder (its best.pt, else last.pt)."""
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

    def __init__(self, model: torch.nn.Module | None, meta: dict | None = None, device: str | torch.device = "cpu",
                 net=None):
        """``model``: built by :func:`tinct.models.create_model` (its ``spec`` says what it
        outputs); None with an ONNX ``net``, whose file records the spec in its meta.
        ``net``: a backend (see :mod:`tinct.backends`); default: PyTorch running ``model``."""
        self.model = model
        self.net = net or TorchBackend(model, device)
        self.backend = self.net.name
        self.precision = getattr(self.net, "precision", "fp32")
        self.meta = dict(meta or {})
        self.spec: ModelSpec = spec_of(model) if model is not None else ModelSpec.from_meta(self.meta)
        # Working size: the checkpoint's choice (tuned on validation photos), else the model's own.
        self.size = int(self.meta.get("size", self.spec.native_size))
        self.temperature = float(self.meta.get("temperature", 0.38))
        # Test-time flip averaging: the network also sees the mirrored photo and the two
        # raw outputs are averaged (twice the network time; set in the checkpoint's meta).
        self.flip = bool(self.meta.get("flip", False))
        # Multi-scale averaging: the network also sees the photo at other working sizes
        # (multipliers of ``size``); the raw outputs (logits, for distribution models) are
        # resized to the largest size's grid and averaged before decoding. One pass per scale.
        self.scales = tuple(float(s) for s in self.meta.get("scales", (1.0,)))
        if not self.scales or min(self.scales) <= 0:
            raise ValueError(f"scales must be positive multipliers of the working size, got {self.meta.get('scales')!r}")
        # Calibration stored with the model: predicted ab are multiplied by this gain (chosen
        # on validation photos so the outputs are as colourful as real ones); the user's
        # ``saturation`` multiplies on top, so saturation 1 means "as the model is calibrated".
        self.chroma_gain = float(self.meta.get("chroma_gain", 1.0))
        self.centers = bin_centers(self.spec) if self.spec.is_bins else None
        self.memory_budget = budget.DEFAULT_BUDGET  # bytes; see check_budget
        # Prior correction (bin models; tinct.decode): the logits minus prior_power x log of the
        # training photos' ab prior, which the checkpoint carries as ``ab_prior``.
        self.prior_power = float(self.meta.get("prior_power", 0.0))
        prior = self.meta.get("ab_prior")
        self.log_prior = torch.tensor(prior, dtype=torch.float64).log().float() if prior is not None else None
        if self.prior_power and self.log_prior is None:
            raise ValueError("the model's prior_power needs its ab_prior (the training photos' bin prior) in meta")

    @classmethod
    def load(cls, spec: str | os.PathLike = "default", device: str = "cpu", backend: str = "auto",
             precision: str = "fp32") -> "Colorizer":
        """Load a bundled model by name (``"default"``), a checkpoint, an exported ONNX file or a run folder.

        Args:
            device: ``"cpu"``, ``"cuda"`` or ``"auto"`` (cuda when available; :mod:`tinct.runtime`).
            backend: ``"auto"`` (ONNX Runtime when installed and on CPU, else PyTorch),
                ``"onnx"`` or ``"torch"``.
            precision: ``"fp32"``, ``"int8"`` (ONNX Runtime on a CPU) or ``"auto"``
                (:mod:`tinct.quantize`); a suffix of ``spec`` (``"default@int8"``) wins.

        Raises:
            tinct.checkpoint.CheckpointError: the file is missing, truncated or not tinct's.
            tinct.backends.BackendError: the backend, device or precision asked for cannot run
                this model here.
        """
        spec, suffix = runtime.split_precision(spec)
        device = runtime.resolve_device(device)
        model, meta, net = runtime.open_network(resolve_model_path(spec), device, backend, suffix or precision)
        return cls(model, meta, device, net=net)

    # ------------------------------------------------------------ public API
    def colorize(self, image, size: int | None = None, saturation: float = 1.0, temperature: float | None = None,
                 max_pixels: int = DEFAULT_MAX_PIXELS, hints=None, reference=None) -> Image.Image:
        """Colorize one image.

        Args:
            image: PIL image, path, bytes, or a :class:`tinct.io.Photo`. A colour photo is
                treated as its luminance.
            size: working size (short side the network sees); default: the model's own.
            saturation: multiplies the predicted ab (1 = as predicted, 0 = grey).
            temperature: annealed-mean temperature for distribution models.
            hints: colour points, :class:`tinct.hints.Hint` or ``"X,Y,COLOUR"`` strings: a
                hint model (``spec.hints``) takes them as input, any other model's output is
                corrected by them (:func:`tinct.hints.spread_grid`; docs/GUIDE.md).
            reference: a colour photo (path, bytes, PIL image) whose palette guides the
                whole result, or a ``(314,)`` global hint (a hint model, or a bin model:
                :func:`tinct.hints.palette_shift`).

        Returns:
            8-bit RGB (or RGBA, when the input had alpha) PIL image of the input's pixel size.

        Raises:
            tinct.io.ImageError: an unreadable or damaged image, one over ``max_pixels``, or
                over the memory budget (:meth:`check_budget`), or non-finite colours.
            tinct.hints.HintError: bad hints, a reference that is not a colour image, or
                a reference for a model that outputs no distribution.
        """
        guide = hints_.guide(hints, reference) if hints is not None or reference is not None else None
        return self.colorize_many([image], size, saturation, temperature, max_pixels=max_pixels, guides=[guide])[0]

    def colorize_many(self, images: Iterable, size: int | None = None, saturation: float = 1.0,
                      temperature: float | None = None, batch_size: int = 8,
                      max_pixels: int = DEFAULT_MAX_PIXELS, guides=None) -> list[Image.Image]:
        """Colorize several images; photos with the same working shape share a forward pass.
        ``guides``: a :class:`tinct.hints.Guide` (or None) per image."""
        if guides is not None and any(guides):
            self.require_hints(reference=any(g is not None and g.reference is not None for g in guides))
        photos = [self.read_photo(im, size, max_pixels) for im in images]
        L_full = [self.luminance(p.pixels) for p in photos]
        alphas, names = [p.alpha for p in photos], [p.name for p in photos]
        del photos  # L is all that is needed of the pixels from here (a caller's Photo stays theirs)
        ab_small = self.predict_ab_batched(L_full, size, temperature, batch_size, guides)
        for name, ab in zip(names, ab_small):
            self.require_finite(ab, name)
        return [self.render(L, ab, saturation, a) for L, ab, a in zip(L_full, ab_small, alphas)]

    @staticmethod
    def require_finite(ab: torch.Tensor, name: str) -> None:
        """Raise :class:`tinct.io.ImageError` naming the photo when the predicted ``ab`` holds NaN or infinity."""
        if not bool(torch.isfinite(ab).all()):
            raise ImageError(f"{name}: the model's output is NaN or infinite (damaged or diverged weights?)")

    def likely_colours(self, image, x: float, y: float, k: int = 6, size: int | None = None, hints=None,
                       reference=None, max_pixels: int = DEFAULT_MAX_PIXELS) -> list:
        """The ``k`` colours a bin model thinks likeliest at (``x``, ``y``), fractions of the
        width and height, best first: :class:`tinct.likely.LikelyColour` (the bin's ab, its
        probability, a displayable hex), given ``hints`` and ``reference`` as :meth:`colorize`
        takes them (:func:`tinct.likely.likely_colours`).

        Raises:
            ValueError: not a bin model, or x, y outside [0, 1]; as :meth:`colorize` otherwise.
        """
        from .likely import likely_colours

        guide = hints_.guide(hints, reference) if hints is not None or reference is not None else None
        if guide:
            self.require_hints(reference=guide.reference is not None)
        L = self.luminance(self.read_photo(image, size, max_pixels).pixels)
        return likely_colours(self, L, x, y, k, size, guide)

    @property
    def follows_reference(self) -> bool:
        """Whether this model can follow a reference palette: a hint model (its network takes
        it) or a model over the 313 bins (:meth:`shift_to_reference`). Points every model follows."""
        return bool(self.spec.hints or self.spec.bins == "313")

    def require_hints(self, reference: bool = False) -> None:
        """Raise :class:`tinct.hints.HintError` unless this model can follow colour hints: points
        every model can (spread over its output), a ``reference`` palette only when
        :attr:`follows_reference` (docs/GUIDE.md)."""
        if reference and not self.follows_reference:
            raise hints_.HintError(f"this model ({self.spec.tag!r} output) cannot follow a reference palette: a bin "
                                   "model (the default family) or a hint model can; points work with any model")

    def read_photo(self, image, size: int | None = None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Photo:
        """A :class:`tinct.io.Photo` of ``image`` (as :meth:`colorize` takes it), refused from its
        header when over ``max_pixels`` or the memory budget, and with finite pixels."""
        if isinstance(image, Photo):
            try:
                self.check_budget(image.pixels.shape[:2], size, "F" if image.pixels.dtype != np.uint8 else "L")
            except ImageError as e:
                raise type(e)(f"{image.name}: {e}") from None
            if image.pixels.dtype != np.uint8 and not np.isfinite(image.pixels).all():
                raise ImageError(f"{image.name}: pixels are NaN or infinite")
            return image
        return load_image(image, max_pixels=max_pixels, check=lambda w, h, mode: self.check_budget((h, w), size, mode))

    def memory_needed(self, shape: tuple[int, int], size: int | None = None, mode: str = "RGB") -> int:
        """Bytes colorizing an image of ``shape`` = (height, width) needs at working size ``size``
        (:func:`tinct.budget.estimate`; ``mode``: the image's PIL mode, from its header)."""
        h, w = int(shape[0]), int(shape[1])
        work = max(a * b for a, b in (self.working_shape(h, w, s) for s in self.working_sizes(size)))
        return budget.estimate(h * w, mode, work, self.net.name, long_side=max(h, w))

    def check_budget(self, shape: tuple[int, int], size: int | None = None, mode: str = "RGB",
                     limit: int | None = None) -> None:
        """Refuse, before anything is decoded or allocated, an image whose colorization would
        need more than ``limit`` bytes (default :attr:`memory_budget`).

        Args:
            shape: (height, width), as read from the header (:func:`tinct.io.read_header`).
            size: the working size asked for (default: the model's).
            mode: the image's PIL mode ("L", "RGB", "I;16", ...).

        Raises:
            tinct.budget.MemoryBudgetError: over the budget (an ImageError; the message says
                what would fit).
        """
        budget.check(self.memory_needed(shape, size, mode), limit or self.memory_budget, shape, size or self.size)

    # ------------------------------------------------------------ the steps
    @staticmethod
    def luminance(pixels: np.ndarray) -> torch.Tensor:
        """Full-resolution L ``(H, W)`` in [0, 100] of sRGB pixels (uint8 or float, grey or RGB), in strips.

        An 8-bit grey photo (the usual input) has only 256 possible L values: they are read
        from a table computed once by the same conversion, which is exact and many times faster.
        """
        if pixels.dtype == np.uint8 and pixels.ndim == 2:
            return torch.from_numpy(_grey_lightness_table()[pixels])
        H, W = pixels.shape[:2]
        L = torch.empty(H, W)
        for y0, y1, x0, x1 in _tiles(H, W):
            rgb = torch.from_numpy(rgb_float(pixels[y0:y1, x0:x1])).permute(2, 0, 1)[None]
            L[y0:y1, x0:x1] = color.rgb_to_lab(rgb)[0, 0]
        return L

    def working_shape(self, h: int, w: int, size: int | None) -> tuple[int, int]:
        """Short side scaled to ``size``, aspect kept, both sides multiples of the stride."""
        size, stride = int(size or self.size), self.spec.stride
        if size < stride:
            raise ValueError(f"size must be at least {stride}, got {size}")
        s = size / min(h, w)
        r = lambda v: max(stride, int(round(v * s / stride)) * stride)  # noqa: E731
        hh, ww = r(h), r(w)
        cap = 4 * size  # very long panoramas: cap the long side, keep the cost bounded
        if max(hh, ww) > cap:
            t = cap / max(hh, ww)
            hh, ww = max(stride, int(hh * t) // stride * stride), max(stride, int(ww * t) // stride * stride)
        return hh, ww

    def working_sizes(self, size: int | None) -> list[int]:
        """The working sizes the network sees for ``size`` (one per scale, largest first)."""
        size = int(size or self.size)
        return [size if s == 1.0 else max(self.spec.stride, int(round(size * s))) for s in sorted(self.scales, reverse=True)]

    def predict_ab_batched(self, L_full: list[torch.Tensor], size, temperature, batch_size: int,
                           guides=None) -> list[torch.Tensor]:
        """Full-resolution L's -> low-resolution ab ``(2, h', w')`` each, batching equal working shapes.

        With several scales, the raw outputs of each are resized to the largest scale's
        output grid and averaged, then decoded once. ``guides`` (one per photo, or None): a
        hint model's network takes them, another model follows them (:meth:`follow`).
        """
        raws = self.predict_raw_averaged(L_full, size, batch_size, guides)
        if self.spec.hints or not guides:
            return [self.decode(raw[None], temperature)[0] for raw in raws]
        return [self.follow(L, raw, g, size, temperature) for L, raw, g in zip(L_full, raws, guides)]

    def follow(self, L: torch.Tensor, raw: torch.Tensor, guide, size: int | None = None,
               temperature: float | None = None) -> torch.Tensor:
        """How a model that takes no hints follows them (docs/GUIDE.md): its raw output ``raw``
        (:meth:`predict_raw_averaged`) for the photo of full-resolution lightness ``L``,
        shifted to the guide's reference palette (:meth:`shift_to_reference`), decoded, then
        corrected by the guide's points on the working grid (:func:`tinct.hints.spread_grid`).
        Returns ab ``(2, h, w)`` for :meth:`render`."""
        ab = self.decode(self.shift_to_reference(raw, guide, temperature)[None], temperature)[0]
        if guide and guide.points:
            L_work = self.resize(L[None, None], self.working_shape(*L.shape, self.working_sizes(size)[0]))[0, 0]
            ab = hints_.spread_grid(L_work, ab, guide.points, tuple(L.shape))
        return ab

    def shift_to_reference(self, raw: torch.Tensor, guide, temperature: float | None = None) -> torch.Tensor:
        """A bin model's raw output ``(Q, h, w)`` with its logits shifted until the photo's
        palette, decoded at ``temperature``, is ``guide``'s reference (:func:`tinct.hints.palette_shift`);
        unchanged without a reference."""
        if guide is None or guide.reference is None:
            return raw
        return hints_.palette_shift(raw, guide.reference[:-1], temperature or self.temperature, self.log_prior,
                                    self.prior_power)

    def predict_raw_averaged(self, L_full: list[torch.Tensor], size, batch_size: int,
                             guides=None) -> list[torch.Tensor]:
        """Full-resolution L's -> the raw output averaged over the scales (on the largest
        scale's grid), one tensor each, ready to :meth:`decode`. ``guides`` go to a hint
        model's network; another model's network never sees them (it follows them after this
        step: :meth:`follow`)."""
        sizes = self.working_sizes(size)
        total = self.predict_raw_batched(L_full, sizes[0], batch_size, guides)
        for s in sizes[1:]:
            raw = self.predict_raw_batched(L_full, s, batch_size, guides)
            total = [t + F.interpolate(r[None], size=t.shape[-2:], mode="bilinear", align_corners=False)[0]
                     for t, r in zip(total, raw)]
        return [t / len(sizes) for t in total]

    def predict_raw_batched(self, L_full: list[torch.Tensor], size: int, batch_size: int,
                            guides=None) -> list[torch.Tensor]:
        """Full-resolution L's -> the network's raw output at working size ``size``, one tensor each.
        ``guides``' points are rasterised onto each working grid (:meth:`tinct.hints.Guide.local`).

        Photos of one working shape share a forward pass, as many as the network's part of the
        memory budget holds (:func:`tinct.budget.batch_that_fits`)."""
        shapes = [self.working_shape(*L.shape, size) for L in L_full]
        out: list[torch.Tensor | None] = [None] * len(L_full)
        groups: dict[tuple[int, int], list[int]] = {}
        for i, s in enumerate(shapes):
            groups.setdefault(s, []).append(i)
        for shape, idx in groups.items():
            batch_size = budget.batch_that_fits(batch_size, shape[0] * shape[1], self.net.name)
            for k in range(0, len(idx), batch_size):
                chunk = idx[k:k + batch_size]
                L_small = torch.stack([self.resize(L_full[i][None, None], shape)[0] for i in chunk])
                chunk_guides = [guides[i] for i in chunk] if guides is not None else []
                local = glob = None
                if any(chunk_guides) and self.spec.hints:
                    none = hints_.Guide()
                    local = torch.stack([(g or none).local(tuple(L_full[i].shape), shape) for g, i in zip(chunk_guides, chunk)])
                    glob = torch.stack([(g or none).global_hint() for g in chunk_guides])
                raw = self.predict_raw(L_small, local, glob)
                for j, i in enumerate(chunk):
                    out[i] = raw[j]
        return out

    @staticmethod
    def resize(x: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
        """L ``(B, 1, H, W)`` -> ``(B, 1, *shape)``, bilinear, antialiased when shrinking."""
        down = shape[0] < x.shape[-2] or shape[1] < x.shape[-1]
        return F.interpolate(x, size=shape, mode="bilinear", align_corners=False, antialias=down)

    def predict_ab(self, L: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """Network step at one working size: L ``(B, 1, h, w)`` in [0, 100] -> ab ``(B, 2, h', w')`` in Lab units."""
        return self.decode(self.predict_raw(L), temperature)

    @torch.no_grad()
    def predict_raw(self, L: torch.Tensor, local: torch.Tensor | None = None,
                    glob: torch.Tensor | None = None) -> torch.Tensor:
        """L ``(B, 1, h, w)`` in [0, 100] -> the network's raw output, flip-averaged when the model says so.
        ``local`` ``(B, 3, h, w)``, ``glob`` ``(B, 314)``: hints (a hint model; the map is flipped with L)."""
        x = color.normalize_l(L).float()
        hinted = local is not None or glob is not None
        run = (lambda x, local: self.net(x, local, glob)) if hinted else (lambda x, local: self.net(x))
        if not self.flip:
            return run(x, local)
        y = run(x, local)  # the two passes one after the other: half the peak memory of one batch
        return y.add_(run(x.flip(-1), None if local is None else local.flip(-1)).flip(-1)).mul_(0.5)

    @torch.no_grad()
    def decode(self, y: torch.Tensor, temperature: float | None = None) -> torch.Tensor:
        """Raw network output ``(B, C, h', w')`` -> ab ``(B, 2, h', w')`` in Lab units, calibrated
        (:func:`tinct.decode.decode_ab` with the stored prior correction, then the stored chroma gain)."""
        ab = decode_ab(y, self.spec, temperature or self.temperature, centers=self.centers, log_prior=self.log_prior,
                       prior_power=self.prior_power)
        return ab * self.chroma_gain if self.chroma_gain != 1.0 else ab

    @torch.no_grad()
    def render(self, L: torch.Tensor, ab_small: torch.Tensor, saturation: float = 1.0,
               alpha: np.ndarray | None = None) -> Image.Image:
        """Full-resolution L ``(H, W)`` + low-res ab ``(2, h, w)`` -> 8-bit PIL image, tile by tile.

        Equal, within one 8-bit step, to composing with ``F.interpolate(ab_small, (H, W),
        mode="bilinear")`` and :func:`tinct.color.lab_to_rgb` at once, without ever holding
        full-resolution ab or float RGB (:func:`tinct.compose.render`: in cache-sized pieces,
        on several threads).
        """
        return compose.render(L, ab_small, saturation, alpha)

    @staticmethod
    def compose(L: torch.Tensor, ab: torch.Tensor) -> np.ndarray:
        """Full-resolution L ``(H, W)`` + ab ``(2, H, W)`` -> sRGB float ``(H, W, 3)`` (small images)."""
        lab = torch.cat([L[None], ab], 0)[None]
        return color.lab_to_rgb(lab)[0].permute(1, 2, 0).numpy()


@functools.cache
def _grey_lightness_table() -> np.ndarray:
    """L of the 256 grey levels (R = G = B = v / 255), float32."""
    grey = torch.arange(256, dtype=torch.float32).div(255).expand(1, 3, 1, 256)
    return color.rgb_to_lab(grey)[0, 0, 0].numpy()


def _tiles(H: int, W: int) -> Iterator[tuple[int, int, int, int]]:
    """(y0, y1, x0, x1) covering ``(H, W)`` in tiles of at most :data:`STRIP_PIXELS`: whole rows
    where a row fits, pieces of one row where it does not (a 40,000,000 x 1 strip)."""
    cols = max(1, min(W, STRIP_PIXELS))
    rows = max(1, STRIP_PIXELS // cols)
    for y0 in range(0, H, rows):
        for x0 in range(0, W, cols):
            yield y0, min(H, y0 + rows), x0, min(W, x0 + cols)
