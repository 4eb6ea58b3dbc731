"""What runs inside a Ray worker: the model loaded once, then batches of file references.

:class:`ColorizeBatch` is the Ray actor class :func:`tinct.cluster.driver.run` starts once
per worker. Each :meth:`ColorizeBatch.batch` call gets a batch of (input, output)
:class:`tinct.cluster.storage.Ref` pairs and colorizes them with
:func:`tinct.batch.colorize_files`, the code of the single-machine command, so decoding,
batching, the network, encoding, the atomic writes and the one-line failure messages are
the same. It returns one ``(input, error)`` pair per photo: the input as the user would name
it, ``error`` ``""`` when done. Photos on a filesystem URI are staged: read into a scratch folder of
the worker, colorized there, the output uploaded (:func:`tinct.cluster.storage.upload`);
messages name the URI, not the scratch file.

A batch is Ray's unit of retry. When a worker dies mid-batch, Ray restarts it and runs the
batch again; a photo whose output was written since the run began (``Settings.started_ns``)
is then counted done without being colorized again, so each photo is done once.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .storage import Ref, exists_since, read_bytes, upload


@dataclass(frozen=True)
class Settings:
    """Everything a worker needs besides its batches (pickled once per actor).

    Attributes:
        model: bundled model name or a checkpoint path every worker can read.
        backend: "auto", "onnx" or "torch"; ``device``: "cpu" or "cuda" (GPU workers).
        size, saturation, temperature, max_pixels, max_memory: as ``tinct colorize``'s options.
        io_threads: decoding and encoding threads beside the network, per worker.
        batch_size: photos of the same working shape per forward pass.
        hints: a :class:`tinct.hints.Guide` every photo gets, or None.
        hints_dir, out_dir: per-photo hints files (local paths), see :func:`tinct.batch.hints_file_for`.
        started_ns: when the run began (driver's clock): outputs newer than that are this run's.
    """

    model: str
    backend: str = "auto"
    device: str = "cpu"
    size: int | None = None
    saturation: float = 1.0
    temperature: float | None = None
    max_pixels: int = 180_000_000
    max_memory: int = 2_400_000_000
    io_threads: int = 2
    batch_size: int = 4
    hints: object = None
    hints_dir: str | None = None
    out_dir: str | None = None
    started_ns: int = 0


class ColorizeBatch:
    """One Ray actor: loads the model in ``__init__``, colorizes a batch per call."""

    def __init__(self, settings: Settings):
        from ..colorizer import Colorizer
        from ..errors import TinctError

        self.settings, self.colorizer, self.load_error = settings, None, ""
        try:
            self.colorizer = Colorizer.load(settings.model, device=settings.device, backend=settings.backend)
            self.colorizer.memory_budget = settings.max_memory
        except TinctError as e:  # a model or backend this node cannot load: said by ready(), in one line
            self.load_error = str(e)

    def ready(self) -> str:
        """Answers once the model is loaded (the driver gives batches to started workers only):
        ``""``, or why this worker cannot load it."""
        return self.load_error

    def batch(self, jobs: list[tuple[Ref, Ref]]) -> list[tuple[str, str]]:
        """``jobs``: (input, output) file references. Returns ``(input, error)`` per photo
        (``error`` ``""`` when done), the input as the user would name it."""
        done, todo = [], []
        for src, dst in jobs:
            if exists_since(dst, self.settings.started_ns):  # written by an earlier try of this batch
                done.append((str(src), ""))
            else:
                todo.append((src, dst))
        local = [job for job in todo if not job[0].root and not job[1].root]
        staged = [job for job in todo if job[0].root or job[1].root]
        for src, error in self._colorize([(Path(s.path), Path(d.path)) for s, d in local]):
            done.append((str(src), error or ""))
        if staged:
            done += self._staged(staged)
        return done

    def _colorize(self, jobs: list[tuple[Path, Path]]) -> list[tuple[Path, str | None]]:
        """:func:`tinct.batch.colorize_files` on local paths: (input, message or None) each."""
        from ..batch import colorize_files

        s, seen = self.settings, []
        if jobs:
            colorize_files(self.colorizer, jobs, size=s.size, saturation=s.saturation, temperature=s.temperature,
                           max_pixels=s.max_pixels, workers=s.io_threads, batch_size=s.batch_size,
                           on_progress=lambda src, error: seen.append((src, error)), hints=s.hints,
                           hints_dir=s.hints_dir, out_dir=Path(s.out_dir) if s.out_dir else None)
        return seen

    def _staged(self, jobs: list[tuple[Ref, Ref]]) -> list[tuple[str, str]]:
        """Photos on filesystem URIs: read into scratch files, colorized, outputs uploaded."""
        from ..errors import describe

        scratch = tempfile.mkdtemp(prefix="tinct-ray-")
        try:
            local, names, done = [], {}, []
            for i, (src, dst) in enumerate(jobs):
                folder = Path(scratch) / str(i)
                folder.mkdir()
                here_src = folder / Path(src.path).name if not src.root else folder / ("in" + Path(src.path).suffix)
                here_dst = folder / ("out" + Path(dst.path).suffix) if dst.root else Path(dst.path)
                try:
                    if src.root:
                        here_src.write_bytes(read_bytes(src))
                    else:
                        here_src = Path(src.path)
                except Exception as e:
                    found = describe(e, str(src), "reading")
                    if found is None:
                        raise
                    done.append((str(src), _named(found[0], src)))
                    continue
                names[str(here_src)] = (src, dst, here_dst)
                local.append((here_src, here_dst))
            for here_src, error in self._colorize(local):
                src, dst, here_dst = names[str(here_src)]
                if error is None:
                    try:
                        if dst.root:
                            upload(here_dst, dst)
                    except Exception as e:
                        found = describe(e, str(dst), "writing")
                        if found is None:
                            raise
                        error = f"{src}: cannot write output: {found[0]}"
                done.append((str(src), "" if error is None else error.replace(str(here_src), str(src))))
            return done
        finally:
            shutil.rmtree(scratch, ignore_errors=True)


def _named(message: str, src: Ref) -> str:
    """A message that names ``src`` (a filesystem library's message may name only its path)."""
    return message if str(src) in message else f"{src}: {message}"


def worker_size(nodes: list[dict], workers: int | None, worker_cpus: float | None,
                worker_gpus: float) -> tuple[int, float]:
    """How many workers to start, and the CPUs each reserves. ``nodes``: each alive node's
    resources (``{"CPU": 16.0, "GPU": 2.0}``).

    GPU workers: the GPUs over ``worker_gpus``, one CPU each unless ``worker_cpus`` says more.
    CPU workers: by default one per node with all its CPUs (the smallest count among nodes that
    have CPUs: a head started with ``--num-cpus=0`` takes no worker): one network on all of a
    node's cores keeps pace with the single-machine command, where one worker per core lost ~10%
    to the shared caches (docs/SCALE.md). With ``workers`` given and no ``worker_cpus``, the
    cluster's CPUs shared among them.

    Raises:
        ValueError: no node can hold one such worker (more CPUs or GPUs each than any node has):
            the run would wait for ever.
    """
    total = sum(n.get("CPU", 0.0) for n in nodes)
    with_cpus = [n.get("CPU", 0.0) for n in nodes if n.get("CPU", 0.0) >= 1]
    if worker_gpus:
        cpus = worker_cpus or 1.0
        fits = sum(min(int(n.get("GPU", 0.0) // worker_gpus), int(n.get("CPU", 0.0) // cpus)) for n in nodes)
    else:
        cpus = worker_cpus or max(1.0, float(int(total // workers)) if workers else min(with_cpus, default=1.0))
        fits = sum(int(n.get("CPU", 0.0) // cpus) for n in nodes)
    if fits == 0:
        has = f"{max(with_cpus, default=0):g} CPUs" + (f" and {max((n.get('GPU', 0.0) for n in nodes), default=0):g} GPUs"
                                                     if worker_gpus else "")
        raise ValueError(f"no node can hold a worker of {cpus:g} CPUs" + (f" and {worker_gpus:g} GPUs" if worker_gpus else "")
                         + f" (the largest node has {has}); lower --worker-cpus / --worker-gpus or --workers")
    return workers or fits, cpus
