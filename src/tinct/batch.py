"""Colorizing many files: decode ahead, run the network, encode behind.

Decoding and encoding (Pillow, which releases the GIL) run in worker threads while the
main thread runs the network, so a folder goes through at the network's pace rather
than at decode + network + encode. Photos whose working shapes match share a forward
pass. Lookahead is bounded (``workers + batch_size`` photos decoding or decoded, only
``workers`` once photos are large; two outputs waiting to be encoded), so a folder of huge
scans cannot fill the memory. One bad file fails alone: its error is recorded and the rest
go on.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from .io import ImageError, Photo, load_image, save_image

BATCH_PIXELS = 8_000_000  # photos colorized together; a bigger photo goes alone


@dataclass
class BatchResult:
    done: int = 0
    failures: list[str] = field(default_factory=list)


def shard(items: list, spec: str | None) -> list:
    """The items of shard ``i/n`` (1-based): every n-th item from the i-th, in the given order.

    The caller sorts first, so the same folder splits the same way on every machine, and
    the n shards are disjoint, cover everything and differ in size by at most one.
    """
    if not spec:
        return items
    i, n = parse_shard(spec)
    return items[i - 1::n]


def parse_shard(spec: str) -> tuple[int, int]:
    try:
        i, n = (int(v) for v in spec.split("/"))
    except ValueError:
        raise ValueError(f"--shard must look like i/n (e.g. 2/4), got {spec!r}") from None
    if not 1 <= i <= n:
        raise ValueError(f"--shard i/n needs 1 <= i <= n, got {spec!r}")
    return i, n


def colorize_files(colorizer, jobs: list[tuple[Path, Path]], *, size=None, saturation=1.0, temperature=None,
                   max_pixels: int, workers: int = 2, batch_size: int = 4,
                   on_progress: Callable[[Path, str | None], None] = lambda src, error: None) -> BatchResult:
    """Colorize ``(input, output)`` pairs; ``on_progress(src, error_or_None)`` after each file."""
    result = BatchResult()
    todo = deque(jobs)
    loading: deque[tuple[Path, Path, Future]] = deque()
    saving: deque[tuple[Path, Future]] = deque()

    def finish_saves(block: bool) -> None:
        while saving and (block or saving[0][1].done()):
            src, fut = saving.popleft()
            try:
                fut.result()
                result.done += 1
                on_progress(src, None)
            except ImageError as e:
                _fail(result, on_progress, src, str(e))
            except OSError as e:
                _fail(result, on_progress, src, f"{src}: cannot write output: {e}")

    last_pixels = 0  # size of the latest decoded photo: big photos are decoded fewer at a time
    workers = max(1, workers)
    with ThreadPoolExecutor(workers, thread_name_prefix="tinct-io") as pool:
        while todo or loading:
            # Keep the decoders busy, within the pixel window.
            while todo and len(loading) < workers + (batch_size if last_pixels < 2_000_000 else 0):
                src, dst = todo.popleft()
                loading.append((src, dst, pool.submit(load_image, src, max_pixels)))
            # The next decoded photos, in order, as one batch (what is decoded already, within BATCH_PIXELS).
            batch: list[tuple[Path, Path, Photo]] = []
            pixels = 0
            while loading and len(batch) < batch_size:
                src, dst, fut = loading[0]
                if batch and not fut.done():
                    break
                try:
                    photo = fut.result()
                except ImageError as e:
                    loading.popleft()
                    _fail(result, on_progress, src, str(e))
                    continue
                except MemoryError:
                    loading.popleft()
                    _fail(result, on_progress, src, f"{src}: out of memory while decoding (try --max-megapixels)")
                    continue
                n = last_pixels = photo.pixels.shape[0] * photo.pixels.shape[1]
                if batch and pixels + n > BATCH_PIXELS:
                    break
                loading.popleft()
                batch.append((src, dst, photo))
                pixels += n
            if not batch:
                continue
            try:
                images = colorizer.colorize_many([p for _, _, p in batch], size, saturation, temperature, batch_size)
            except MemoryError:
                for src, _, _ in batch:
                    _fail(result, on_progress, src, f"{src}: out of memory (try a smaller --size or --max-megapixels)")
                continue
            finish_saves(block=len(saving) >= 2)  # bound the outputs waiting to be encoded
            for (src, dst, _), image in zip(batch, images):
                saving.append((src, pool.submit(save_image, image, dst)))
            del batch, images  # the decoded photos can go while the outputs are encoded
        finish_saves(block=True)
    return result


def _fail(result: BatchResult, on_progress, src: Path, message: str) -> None:
    result.failures.append(message)
    on_progress(src, message)
