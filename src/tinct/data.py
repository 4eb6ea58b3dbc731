"""Training data: any folder tree of photos -> batches of (L_n, ab_n, rgb) crops.

    folder ─► find_images ─► [optional uint8 cache: each photo decoded once, short side
    scaled, centre square] ─► random scaled crop + flip (per-sample seed) ─► uint8 crops
    ─► collate: color.rgb_to_lab ─► {"rgb", "L_n", "ab_n"}

Randomness is a pure function of (seed, position in the stream): ``ShardedStream`` hands
each process its own disjoint share of every epoch together with a per-sample seed, so
a run resumed at step s sees exactly the batches an uninterrupted run would have seen,
whatever the number of loader workers.
"""

from __future__ import annotations

import hashlib
import math
import os
import sys
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, Sampler

from . import color
from .io import INPUT_EXTS as EXTS
from .io import ImageError, atomic_write, find_images, opened, square
from .paths import cache_dir as tinct_cache_dir


def decode(path: Path, min_side: int) -> np.ndarray:
    """Decode to uint8 RGB ``(H, W, 3)``, letting JPEG shrink on decode while the short
    side stays >= ``min_side``.

    Raises:
        ValueError: the file is not a readable image (the message names it).
    """
    try:
        with opened(path) as im:  # tinct's per-call pixel limit, from the header (Pillow's global untouched)
            w, h = im.size
            k = max(1.0, min(w, h) / max(min_side, 1))
            im.draft("RGB", (math.ceil(w / k), math.ceil(h / k)))
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (ImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise ValueError(f"{path}: not a readable image ({e})") from None


def scaled_crop(img: np.ndarray, crop: int, short: float, rng: np.random.Generator | None, flip: bool) -> np.ndarray:
    """The ``crop x crop`` window of ``img`` scaled to short side ``short``.

    With ``rng`` the window is placed at random (and flipped half the time when ``flip``),
    without it centred. Only the window is resampled, so this is cheap on large photos.
    """
    h, w = img.shape[:2]
    side = min(crop * min(h, w) / short, h, w)  # the window's side in source pixels
    if rng is None:
        x0, y0 = (w - side) / 2, (h - side) / 2
    else:
        x0, y0 = rng.uniform(0, w - side), rng.uniform(0, h - side)
    out = np.array(Image.fromarray(img).resize((crop, crop), Image.BILINEAR, box=(x0, y0, x0 + side, y0 + side)))
    if rng is not None and flip and rng.random() < 0.5:
        out = out[:, ::-1]
    return np.ascontiguousarray(out)


def mean_chroma(img: np.ndarray) -> float:
    """Mean sqrt(a^2 + b^2) of a photo (Lab units), from a 32 x 32 thumbnail."""
    thumb = np.asarray(Image.fromarray(img).resize((32, 32), Image.BOX), dtype=np.float32) / 255
    ab = color.rgb_to_lab(thumb)[..., 1:]
    return float(np.sqrt((ab**2).sum(-1)).mean())


def _cache_one(args) -> tuple[np.ndarray, float]:
    path, side = args
    try:
        img = square(decode(path, side), side)
    except ValueError:
        return np.zeros((side, side, 3), np.uint8), math.nan  # unreadable: chroma NaN marks it
    return img, mean_chroma(img)


def build_cache(files: list[Path], side: int, cache_dir: str | os.PathLike | None, workers: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Decode every photo once into ``(N, side, side, 3)`` uint8 (memory-mapped) plus each
    photo's mean chroma (NaN for a file that is not a readable image). The file is keyed by the file list, sizes, times and ``side``, so
    any run over the same photos reuses it; it is written atomically. ``workers`` decoding
    processes (default: up to 4, one per core)."""
    cache_dir = Path(cache_dir or tinct_cache_dir() / "data")
    # The version names how the squares are made (io.square): a change there must not reuse
    # squares made the old way.
    key = hashlib.sha1(f"v2|{side}".encode())
    for f in files:
        st = f.stat()
        key.update(f"{f.resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    stem = cache_dir / f"{key.hexdigest()[:16]}_{len(files)}x{side}"
    images, chroma = stem.with_suffix(".npy"), stem.with_suffix(".chroma.npy")
    if not (images.is_file() and chroma.is_file()):
        print(f"tinct: caching {len(files)} photos at {side}px in {images}", file=sys.stderr, flush=True)
        jobs = [(f, side) for f in files]
        workers = workers or min(4, os.cpu_count() or 1)
        if workers > 1 and len(jobs) > 64:
            with get_context("spawn").Pool(workers) as pool:
                items = pool.map(_cache_one, jobs, chunksize=16)
        else:
            items = [_cache_one(j) for j in jobs]
        atomic_write(chroma, lambda tmp: _save_npy(tmp, np.array([c for _, c in items], np.float32)))
        atomic_write(images, lambda tmp: _save_npy(tmp, np.stack([im for im, _ in items])))
    return np.load(images, mmap_mode="r"), np.load(chroma)


def _save_npy(path: str, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append ".npy" to a name
        np.save(f, array)


class PhotoCrops(Dataset):
    """Square uint8 crops ``(3, crop, crop)`` of photos.

    Training items are indexed by ``(index, seed)`` pairs (random window, scale and flip
    drawn from ``seed``); validation items by a plain index (centred, no jitter).

    Args:
        files: the photos.
        crop: output side.
        resize: short side the photo is scaled to before cropping.
        scale: (min, max) random multiplier of ``resize`` for training items.
        flip: random horizontal flips for training items.
        cache: optional ``(N, S, S, 3)`` uint8 array of the already decoded photos.
    """

    def __init__(self, files: list[Path], crop: int, resize: int, scale=(1.0, 1.0), flip: bool = True, cache: np.ndarray | None = None):
        self.files, self.crop, self.resize = list(files), crop, resize
        self.scale, self.flip, self.cache = tuple(scale), flip, cache

    def __len__(self) -> int:
        return len(self.files)

    def image(self, i: int) -> np.ndarray:
        if self.cache is not None:
            return self.cache[i]
        return decode(self.files[i], math.ceil(self.resize * max(self.scale)))

    def square_image(self, i: int) -> np.ndarray:
        """Photo ``i`` as its centre square: the cached one, else decoded and squared at
        the size the cache would hold."""
        if self.cache is not None:
            return self.cache[i]
        side = math.ceil(self.resize * max(self.scale))
        return square(decode(self.files[i], side), side)

    def __getitem__(self, item) -> torch.Tensor:
        if isinstance(item, Draw):
            img = self.square_image(item.index)
            out = img[item.y:item.y + self.crop, item.x:item.x + self.crop]
            if item.flip:
                out = out[:, ::-1]
            return torch.from_numpy(np.ascontiguousarray(out)).permute(2, 0, 1)
        if isinstance(item, tuple):
            index, seed = item
            rng = np.random.default_rng(seed)
            short = self.resize * rng.uniform(*self.scale)
            out = scaled_crop(self.image(index), self.crop, short, rng, self.flip)
        else:
            out = scaled_crop(self.image(item), self.crop, self.resize, None, False)
        return torch.from_numpy(out).permute(2, 0, 1)  # (3, crop, crop) uint8


def collate(items: list[torch.Tensor]) -> dict[str, torch.Tensor]:
    """uint8 crops -> {"rgb": (B, 3, H, W) in [0, 1], "lab": (B, 3, H, W) in Lab units,
    "L_n": (B, 1, H, W), "ab_n": (B, 2, H, W)}.

    The networks see and the pixel losses compare the normalised forms; ``lab`` is kept
    for what is measured in Lab units (the bin targets, a colorized crop's lightness), so
    no value makes a normalise-and-back round trip, which is not exact in float32."""
    rgb = torch.stack(items).float() / 255
    lab = color.rgb_to_lab(rgb)
    return {"rgb": rgb, "lab": lab, "L_n": color.normalize_l(lab[:, :1]), "ab_n": color.normalize_ab(lab[:, 1:])}


class ShardedStream(Sampler):
    """Endless stream of ``(index, sample_seed)`` for one of ``world`` processes.

    Epoch e is a permutation of the dataset drawn from (seed, e); process r takes every
    ``world``-th element from offset r, truncated so all processes take the same number:
    within an epoch the processes' shares are disjoint. ``start`` skips that many items of
    this process's stream (``step * batch_size`` when resuming).
    """

    def __init__(self, n: int, rank: int = 0, world: int = 1, seed: int = 0, start: int = 0):
        if n < world:
            raise ValueError(f"{n} training photos cannot be shared among {world} processes")
        self.n, self.rank, self.world, self.seed, self.start = n, rank, world, seed, start
        self.per_rank = n // world

    def shard(self, epoch: int) -> list[int]:
        """This process's indices in ``epoch``, in order."""
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=g)[self.rank::self.world][: self.per_rank].tolist()

    def __iter__(self):
        epoch, i = divmod(self.start, self.per_rank)
        while True:
            indices = self.shard(epoch)
            for j in range(i, self.per_rank):
                yield indices[j], (self.seed, epoch, self.rank, j)
            epoch, i = epoch + 1, 0

    def __len__(self) -> int:  # endless; DataLoader only needs it for its progress hints
        return 2**62


@dataclass(frozen=True)
class Draw:
    """One training crop of the "draws" sampler: photo ``index``, top-left ``(y, x)`` in its
    square, mirrored when ``flip``."""

    index: int
    y: int
    x: int
    flip: bool


class DrawBatches(Sampler):
    """Endless batches for ``data.sampler: draws``: each step draws ``batch`` distinct photos
    at random (sorted), and for each an integer crop position and a coin for the flip, all
    from one numpy generator seeded by ``seed`` (and ``rank`` under torchrun).

    The stream is a pure function of (seed, rank, step): ``start`` (the step a resumed run
    continues from) is reached by replaying the draws, which takes milliseconds.
    """

    def __init__(self, n: int, batch: int, side: int, crop: int, flip: bool = True, seed: int = 0, rank: int = 0, start: int = 0):
        if n < batch:
            raise ValueError(f"{n} training photos are fewer than one batch of {batch} distinct photos (data.sampler=draws)")
        if side < crop:
            raise ValueError(f"data.sampler=draws: the photos' squares ({side} px) are smaller than the crop ({crop} px)")
        self.n, self.batch, self.side, self.crop, self.flip = n, batch, side, crop, flip
        self.seed, self.rank, self.start = seed, rank, start

    def __iter__(self):
        rng = np.random.default_rng(self.seed if self.rank == 0 else [self.seed, self.rank])
        step = 0
        while True:
            idx = np.sort(rng.choice(self.n, size=self.batch, replace=False))
            draws = []
            for i in idx:
                y, x = rng.integers(0, self.side - self.crop + 1, size=2)
                coin = rng.random() < 0.5  # drawn with or without flips, so the stream is the same
                draws.append(Draw(int(i), int(y), int(x), bool(coin and self.flip)))
            if step >= self.start:
                yield draws
            step += 1

    def __len__(self) -> int:
        return 2**62


def degrade_inputs(L_n: torch.Tensor, preset: str, p: float, seed: int, step: int, rank: int = 0) -> torch.Tensor:
    """``data.degrade``: the network's input L_n ``(B, 1, H, W)`` with each crop degraded
    (:func:`tinct.degrade.degrade_lightness`) with probability ``p``; whether and how is
    drawn from (seed, step, rank, position in the batch) alone, so a resumed run degrades
    as an uninterrupted one. Crops left alone are returned bit for bit; targets are not touched."""
    from .degrade import degrade_lightness

    out = L_n.clone()
    for j in range(len(L_n)):
        key = [seed, step, rank, j, 0xDE]
        if np.random.default_rng(key).random() >= p:
            continue
        L = color.denormalize_l(L_n[j, 0].detach().float().cpu().numpy())
        out[j, 0] = torch.from_numpy(color.normalize_l(degrade_lightness(L, preset, key))).to(out)
    return out


def work_size(sizes: list[int], crop: int, seed: int, step: int) -> int:
    """The network's input side at ``step`` (``data.work_sizes``): drawn from (seed, step)
    alone, so a resumed run draws the same sizes; the crop when no sizes are given."""
    if not sizes:
        return crop
    if len(sizes) == 1:
        return int(sizes[0])
    return int(sizes[np.random.default_rng([seed, step, 17]).integers(len(sizes))])


@dataclass
class Datasets:
    train: PhotoCrops
    val: PhotoCrops | None
    dropped_gray: int = 0  # training photos removed by the near-grayscale filter
    unreadable: int = 0  # training files that are not readable images (skipped)


def build(cfg, rank: int = 0, world: int = 1, barrier=None) -> Datasets:
    """Training and validation crops from a ``DataConfig``.

    With ``cfg.cache``, process 0 builds the decoded-photo cache while the others wait at
    ``barrier`` and then open the same file.

    Raises:
        FileNotFoundError: a folder is missing or holds no images.
    """
    if not cfg.train:
        raise FileNotFoundError("no training data: give --data DIR (or data.train in the recipe)")
    train_files = find_images(cfg.train)
    if not train_files:
        raise FileNotFoundError(f"{cfg.train}: no images found (searched recursively for {', '.join(sorted(EXTS))})")
    if cfg.val:
        val_files = find_images(cfg.val)
        if not val_files:
            raise FileNotFoundError(f"{cfg.val}: no validation images found")
    elif cfg.val_split > 0 and len(train_files) > 1:
        every = max(2, round(1 / cfg.val_split))
        val_files = train_files[::every]
        train_files = [f for i, f in enumerate(train_files) if i % every]
    else:
        val_files = []
    if len(val_files) > cfg.val_limit:  # evenly spaced, so every sub-folder is represented
        val_files = [val_files[i] for i in np.linspace(0, len(val_files) - 1, cfg.val_limit).round().astype(int)]
    resize = cfg.resize or cfg.crop
    train_cache = val_cache = chroma = val_chroma = None
    if cfg.cache:
        side = math.ceil(resize * max(cfg.scale))
        for turn in ("build", "open"):  # process 0 builds first, the others then open
            if (turn == "build") == (rank == 0):
                train_cache, chroma = build_cache(train_files, side, cfg.cache_dir)
                if val_files:
                    val_cache, val_chroma = build_cache(val_files, resize, cfg.cache_dir)
            if barrier is not None and turn == "build":
                barrier()
    if chroma is None and cfg.min_chroma > 0:
        chroma = np.array([_thumb_chroma(f) for f in train_files])
    dropped, unreadable = 0, 0
    if chroma is not None:
        unreadable = int(np.isnan(chroma).sum())
        keep = np.flatnonzero(chroma >= cfg.min_chroma)  # NaN (unreadable) is never kept
        dropped = len(train_files) - len(keep) - unreadable
        if len(keep) == 0:
            raise FileNotFoundError(f"{cfg.train}: no readable photo with mean chroma >= {cfg.min_chroma} (data.min_chroma)")
        train_files = [train_files[i] for i in keep]
        if train_cache is not None:
            train_cache = _Subset(train_cache, keep)
    if val_cache is not None:
        keep = np.flatnonzero(~np.isnan(val_chroma))
        val_files, val_cache = [val_files[i] for i in keep], _Subset(val_cache, keep)
    train = PhotoCrops(train_files, cfg.crop, resize, cfg.scale, cfg.flip, train_cache)
    val = PhotoCrops(val_files, cfg.crop, resize, cache=val_cache) if val_files else None
    return Datasets(train, val, dropped, unreadable)


def _thumb_chroma(path: Path) -> float:
    try:
        return mean_chroma(decode(path, 64))
    except ValueError:
        return math.nan


class _Subset:
    """Rows ``keep`` of a (memory-mapped) array, indexed lazily."""

    def __init__(self, array: np.ndarray, keep: np.ndarray):
        self.array, self.keep = array, keep

    def __getitem__(self, i: int) -> np.ndarray:
        return self.array[self.keep[i]]

    def __len__(self) -> int:
        return len(self.keep)
