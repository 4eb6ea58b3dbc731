"""The training batches: the loader a recipe asks for (``data.sampler``), each batch made
ready for its step (on the device, the network's input at the step's working size, the
task's targets), and the prefetch thread that does that ahead of the model.

Nothing here draws from the global random generators, so a run's batches are a pure
function of (seed, step) with or without prefetching, and a resumed run sees the batches
an uninterrupted one would have.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch.utils.data import DataLoader

from . import data
from .config import Config, ConfigError


def train_loader(cfg: Config, train_set: data.PhotoCrops, env, step: int) -> DataLoader:
    """Batches of this process's training crops from ``step`` on (``data.sampler``)."""
    d = cfg.data
    common = dict(collate_fn=data.collate, num_workers=d.workers, persistent_workers=d.workers > 0,
                  pin_memory=env.device.type == "cuda",
                  generator=torch.Generator().manual_seed(cfg.train.seed))  # keeps the global RNG untouched
    if d.sampler == "draws":
        try:
            draws = data.DrawBatches(len(train_set), d.batch_size, d.resize or d.crop, d.crop, d.flip,
                                     cfg.train.seed, env.rank, start=step)
        except ValueError as e:
            raise ConfigError(str(e)) from None
        return DataLoader(train_set, batch_sampler=draws, **common)
    stream = data.ShardedStream(len(train_set), env.rank, env.world, cfg.train.seed, start=step * d.batch_size)
    return DataLoader(train_set, batch_size=d.batch_size, sampler=stream, **common)


class Prefetch:
    """The training batches, each made ready (``ready(batch, step)``) by a background
    thread up to ``depth`` steps ahead, so decoding, crops, Lab conversion and the task's
    targets overlap the model's step; ``depth`` 0 makes them in the loop. Torch's kernels
    release the GIL, so the thread's work runs beside the model's. An error in the thread
    (an unreadable photo) is raised by ``next`` at the step it belongs to."""

    def __init__(self, loader: DataLoader, ready: Callable[[dict, int], dict], step: int, depth: int):
        import queue
        import threading

        self.batches, self.ready, self.step = iter(loader), ready, step
        self.queue, self.stop = None, threading.Event()
        if depth > 0:
            self.queue = queue.Queue(maxsize=depth)
            self.thread = threading.Thread(target=self._fill, name="tinct-prefetch", daemon=True)
            self.thread.start()

    def _make(self) -> dict:
        batch = self.ready(next(self.batches), self.step)
        self.step += 1
        return batch

    def _fill(self) -> None:
        import queue

        # One intra-op thread here (OpenMP's setting is per calling thread; the model's stay
        # as they are): a second team of OpenMP threads competing with the model's made every
        # step, and even a bare model step in the same process, 20-30% slower on 2 cores.
        torch.set_num_threads(1)

        while not self.stop.is_set():
            try:
                item = self._make()
            except BaseException as e:  # handed to the loop, which raises it
                item = e
            while not self.stop.is_set():
                try:
                    self.queue.put(item, timeout=0.1)
                    break
                except queue.Full:
                    continue
            if isinstance(item, BaseException):
                return

    def close(self) -> None:
        """Stop the thread (it finishes the batch it is making)."""
        self.stop.set()
        if self.queue is not None:
            self.thread.join()

    def __next__(self) -> dict:
        if self.queue is None:
            return self._make()
        item = self.queue.get()
        if isinstance(item, BaseException):
            raise item
        return item


def ready(batch: dict, cfg: Config, task, device: torch.device, step: int, rank: int = 0) -> dict:
    """A loader batch on the device, with the network's input prepared and the task's targets."""
    batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
    prepare(batch, cfg, step, rank)
    task.prepare(batch)
    return batch


def prepare(batch: dict, cfg: Config, step: int, rank: int = 0) -> None:
    """The network's input for this step: degraded when the recipe asks (``data.degrade``),
    in channels-last layout when it asks, ``L_work`` at the step's working size
    (``data.work_sizes``), and the colour hints simulated from the true colours
    (``data.hints``: ``hints`` and ``global_hint``)."""
    if cfg.data.degrade:  # augmentation of the input only (data.degrade); the targets stay clean
        batch["L_n"] = data.degrade_inputs(batch["L_n"], cfg.data.degrade, cfg.data.degrade_p, cfg.train.seed, step, rank)
    work = data.work_size(cfg.data.work_sizes, cfg.data.crop, cfg.train.seed, step)
    if work != batch["L_n"].shape[-1]:
        from .colorizer import Colorizer  # the inference path's own resize, so training sees what inference does

        batch["L_work"] = Colorizer.resize(batch["L_n"], (work, work))
    if cfg.data.hints.enabled:
        from . import hints

        ab = batch["lab"][:, 1:]
        if ab.shape[-1] != work:
            ab = torch.nn.functional.interpolate(ab, size=(work, work), mode="area")
        batch["hints"], batch["global_hint"] = hints.simulate(ab.cpu(), cfg.data.hints,
                                                              hints.step_generator(cfg.train.seed, step, rank))
        batch["hints"], batch["global_hint"] = batch["hints"].to(ab.device), batch["global_hint"].to(ab.device)
    if cfg.train.channels_last:
        for key in ("L_n", "L_work"):
            if key in batch:
                batch[key] = batch[key].contiguous(memory_format=torch.channels_last)
