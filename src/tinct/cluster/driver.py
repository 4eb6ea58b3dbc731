"""The driver of a Ray run: start or join Ray, stream the jobs through an actor pool, gather.

:func:`connect` starts a local Ray instance (no address) or joins a cluster (``auto``,
``ray://host:10001``, ``host:6379``). :func:`run` starts a pool of Ray actors
(:class:`tinct.cluster.worker.ColorizeBatch`, each reserving ``worker_cpus`` CPUs and
``worker_gpus`` GPUs and loading the model once) and hands each started actor batches of
file references (at most ``task_photos``, smaller towards the end so the workers finish
together), two at a time so a worker never waits for its next batch; results come back as
each batch finishes, one ``(src, error)`` row per photo, so the driver holds only the job
list and a counter, never a photo. Ray restarts a worker that dies and retries its batches
(``MAX_TASK_RETRIES`` times; the worker makes a retry skip what was already written).

Ray Core's actors rather than Ray Data's ``map_batches`` (which this module used first): the
jobs are a list of file names already, so Ray Data's blocks, its streaming executor in the
driver and the two actors of its own it starts on every run bought nothing here, and the
driver now chooses which worker gets what: only started workers, smaller batches at the end
(docs/SCALE.md has the figures of both).

Ray is imported inside these functions only: :mod:`tinct.cluster` without Ray installed
still imports, and ``--ray`` then says how to install it (:func:`require_ray`).
"""

from __future__ import annotations

import csv
import io
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Callable

from ..errors import EXIT_USAGE, TinctError
from .storage import Ref, ref_of, remove_stale_temporaries, write_bytes
from .worker import ColorizeBatch, Settings, worker_size

INSTALL_HINT = "pip install 'tinct[ray]' (or pip install ray pyarrow fsspec)"
LOCAL_OBJECT_STORE = 300_000_000  # bytes: only file references and result rows pass through it
TASK_PHOTOS = 16  # photos per Ray task at most: the unit Ray schedules and retries
IN_FLIGHT = 2  # batches given to one worker at a time: the one it works on, the next one waiting
MAX_TASK_RETRIES = 3  # a batch whose worker dies more often fails the run (a photo that kills its decoder)
FAILURES_CSV = "failures.csv"


class RayMissing(TinctError):
    """``--ray`` without Ray installed."""

    exit_code = EXIT_USAGE


class RayRunError(TinctError):
    """The Ray job itself failed (not one photo): a worker died too often, the cluster went away."""


def require_ray() -> None:
    """Raise :class:`RayMissing` (one line: how to install it) unless Ray (and pyarrow) import."""
    try:
        import pyarrow  # noqa: F401  (filesystem URIs: tinct.cluster.storage)
        import ray  # noqa: F401
    except ImportError as e:
        missing = f" ({e.name} is not installed)" if e.name else ""
        raise RayMissing(f"--ray needs Ray{missing}: {INSTALL_HINT}") from None


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


def run(jobs: list[tuple[Ref, Ref]], settings: Settings, *, workers: int | None = None, worker_cpus: float | None = None,
        worker_gpus: float = 0.0, task_photos: int = TASK_PHOTOS,
        on_result: Callable[[str, str | None], None] = lambda src, error: None) -> RunResult:
    """Colorize ``jobs`` on the Ray instance :func:`connect` joined; ``on_result(src, error_or_None)``
    after each photo, as results arrive.

    Raises:
        RayRunError: the job failed as a whole (its photos done so far stay done: a rerun resumes).
    """
    import ray
    from ray.exceptions import RayError

    result = RunResult()
    if not jobs:
        return result
    nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
    try:
        result.workers, worker_cpus = worker_size(nodes, workers, worker_cpus, worker_gpus)
    except ValueError as e:
        raise RayRunError(str(e)) from None
    actor = ray.remote(num_cpus=worker_cpus, num_gpus=worker_gpus, max_restarts=-1,
                       max_task_retries=MAX_TASK_RETRIES)(ColorizeBatch)
    pool = [actor.remote(settings) for _ in range(result.workers)]
    starting = {a.ready.remote(): a for a in pool}  # a worker gets batches once its model is loaded
    busy: dict = {}  # each started worker -> its batches in flight
    running: dict = {}  # a batch's object ref -> its worker
    chunks = chunked(jobs, task_photos, result.workers)
    left = True
    try:
        while True:
            for a in busy:  # each worker holds one batch at work and the next one queued behind it
                while left and busy[a] < IN_FLIGHT:
                    chunk = next(chunks, None)
                    if chunk is None:
                        left = False
                        break
                    running[a.batch.remote(chunk)] = a
                    busy[a] += 1
            if not running and not left:
                break  # every photo answered; workers that never started (no room) are let go
            done, _ = ray.wait([*running, *starting], num_returns=1)
            for ref in done:
                if ref in starting:
                    why = ray.get(ref)
                    if why:
                        raise RayRunError(f"a worker cannot load the model: {why}")
                    busy[starting.pop(ref)] = 0
                    continue
                busy[running.pop(ref)] -= 1
                for src, error in ray.get(ref):
                    if error:
                        result.failures.append(error)
                    else:
                        result.done += 1
                    on_result(src, error or None)
    except RayError as e:
        text = str(e).strip().splitlines()
        raise RayRunError(f"the Ray job failed: {text[0] if text else type(e).__name__} "
                          "(photos done so far are kept; run again to resume)") from None
    finally:
        for a in pool:
            ray.kill(a, no_restart=True)
        result.cleaned = remove_stale_temporaries(dst for _, dst in jobs)
    return result


def chunked(jobs: list, most: int, workers: int):
    """The jobs in batches of at most ``most``; with several workers, shrinking towards the end
    (a batch is a ``1 / (2 workers)`` share of what is left) so that they finish together: the
    last batches are single photos, not one worker's whole batch while the others wait."""
    i = 0
    while i < len(jobs):
        size = most if workers == 1 else max(1, min(most, (len(jobs) - i) // (2 * workers)))
        yield jobs[i:i + size]
        i += size


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
