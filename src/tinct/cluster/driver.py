"""The driver of a Ray run: start or join Ray, stream the jobs through an actor pool, gather.

:func:`connect` starts a local Ray instance (no address) or joins a cluster (``auto``,
``ray://host:10001``, ``host:6379``). :func:`run` turns the jobs into a Ray dataset of
file references, blocks of ``task_photos`` rows, and maps it with
:class:`tinct.cluster.worker.ColorizeBatch` over a fixed pool of actors (each reserving
``worker_cpus`` CPUs and ``worker_gpus`` GPUs); results stream back as they finish, one
``(src, error)`` row per photo, so the driver holds only the job list and a counter,
never a photo. Ray restarts a worker that dies and retries its batch
(``MAX_TASK_RETRIES`` times; the worker makes a retry skip what was already written).

Ray is imported inside these functions only: :mod:`tinct.cluster` without Ray installed
still imports, and ``--ray`` then says how to install it (:func:`require_ray`).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable

from ..errors import EXIT_USAGE, TinctError
from .storage import Ref, ref_of, remove_stale_temporaries, write_bytes
from .worker import ColorizeBatch, Settings, default_workers

INSTALL_HINT = "pip install 'tinct[ray]' (or pip install 'ray[data]')"
LOCAL_OBJECT_STORE = 300_000_000  # bytes: only file references and result rows pass through it
TASK_PHOTOS = 16  # photos per Ray task: the unit Ray schedules and retries
MAX_TASK_RETRIES = 3  # a batch whose worker dies more often fails the run (a photo that kills its decoder)
FAILURES_CSV = "failures.csv"


class RayMissing(TinctError):
    """``--ray`` without Ray installed."""

    exit_code = EXIT_USAGE


class RayRunError(TinctError):
    """The Ray job itself failed (not one photo): a worker died too often, the cluster went away."""


def require_ray() -> None:
    """Raise :class:`RayMissing` (one line: how to install it) unless Ray Data imports."""
    try:
        import ray  # noqa: F401
        import ray.data  # noqa: F401
    except ImportError as e:
        missing = f" ({e.name} is not installed)" if e.name else ""
        raise RayMissing(f"--ray needs Ray Data{missing}: {INSTALL_HINT}") from None


def connect(address: str | None = None, num_cpus: int | None = None,
            object_store_memory: int = LOCAL_OBJECT_STORE) -> float:
    """Start a local Ray instance (``address`` None or ``"local"``) or join a cluster; nothing
    when Ray is already initialised in this process. Returns the seconds it took."""
    import ray

    if ray.is_initialized():
        return 0.0
    start = time.perf_counter()
    quiet = {"include_dashboard": False, "logging_level": logging.WARNING, "log_to_driver": False}
    if address in (None, "local"):
        # The workers do the command's own work: at its priority, not Ray's default of 15 lower
        # (which leaves them behind everything else on a busy machine). Read by the raylet it starts.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=num_cpus, object_store_memory=object_store_memory, **quiet)
    else:
        ray.init(address=address, **quiet)
    return time.perf_counter() - start


def model_reference(spec: str) -> str:
    """The model as every worker can load it: a bundled name as it is, a file as an absolute path
    (which must exist on every node: shared storage, or the same path everywhere)."""
    from ..colorizer import BUNDLED

    return spec if spec in BUNDLED else os.path.abspath(spec)


@dataclass
class RunResult:
    done: int = 0
    failures: list[str] = field(default_factory=list)
    workers: int = 0
    cleaned: int = 0  # temporaries left by killed workers, removed at the end


def run(jobs: list[tuple[Ref, Ref]], settings: Settings, *, workers: int | None = None, worker_cpus: float = 1.0,
        worker_gpus: float = 0.0, task_photos: int = TASK_PHOTOS,
        on_result: Callable[[str, str | None], None] = lambda src, error: None) -> RunResult:
    """Colorize ``jobs`` on the Ray instance :func:`connect` joined; ``on_result(src, error_or_None)``
    after each photo, as results arrive.

    Raises:
        RayRunError: the job failed as a whole (its photos done so far stay done: a rerun resumes).
    """
    import pyarrow as pa
    import ray
    import ray.data
    from ray.exceptions import RayError

    result = RunResult()
    if not jobs:
        return result
    result.workers = workers or default_workers(ray.cluster_resources(), worker_cpus, worker_gpus)
    logging.getLogger("ray.data").setLevel(logging.ERROR)  # its start and end lines; errors still show
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the caller shows one bar, in photos
    per_block = max(1, min(task_photos, math.ceil(len(jobs) / result.workers)))
    blocks = [pa.table({"src_root": [s.root for s, _ in chunk], "src_path": [s.path for s, _ in chunk],
                        "dst_root": [d.root for _, d in chunk], "dst_path": [d.path for _, d in chunk]})
              for chunk in (jobs[i:i + per_block] for i in range(0, len(jobs), per_block))]
    with warnings.catch_warnings():  # max_task_retries has no named parameter yet (Ray 2.60 warns)
        warnings.simplefilter("ignore", DeprecationWarning)
        ds = ray.data.from_arrow(blocks).map_batches(
            ColorizeBatch, fn_constructor_args=(settings,), batch_size=per_block, batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=result.workers), num_cpus=worker_cpus,
            num_gpus=worker_gpus or None, max_restarts=-1, max_task_retries=MAX_TASK_RETRIES)
    del blocks  # the object store holds them now
    try:
        for batch in ds.iter_batches(batch_size=None, batch_format="numpy"):
            for src, error in zip(batch["src"], batch["error"]):
                if error:
                    result.failures.append(str(error))
                else:
                    result.done += 1
                on_result(str(src), str(error) or None)
    except RayError as e:
        text = str(e).strip().splitlines()
        raise RayRunError(f"the Ray job failed: {text[0] if text else type(e).__name__} "
                          "(photos done so far are kept; run again to resume)") from None
    finally:
        result.cleaned = remove_stale_temporaries(dst for _, dst in jobs)
    return result


def failures_table(lines: list[str]) -> bytes:
    """``failures.csv``: one row per failed input, ``input`` and ``reason`` (each message is
    ``"INPUT: reason"``; split at its first ``": "``)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["input", "reason"])
    for line in lines:
        name, sep, reason = line.partition(": ")
        writer.writerow([name, reason] if sep else ["", line])
    return out.getvalue().encode("utf-8")


def write_failures(out_dir, lines: list[str]) -> str:
    """Write this run's ``failures.csv`` in ``out_dir`` (a path or :class:`Ref`; replaced
    each run, a header alone when nothing failed). Returns where it went."""
    folder = out_dir if isinstance(out_dir, Ref) else ref_of(out_dir)
    target = folder.child(FAILURES_CSV)
    write_bytes(target, failures_table(lines))
    return str(target)


def started_ns() -> int:
    """Now, as file modification times count: outputs modified since are this run's. Taken
    before Ray starts and the model loads (seconds), so no write of the run is that close."""
    return time.time_ns()
