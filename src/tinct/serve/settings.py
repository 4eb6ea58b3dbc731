"""What ``tinct serve`` runs with: its settings and the models it loads once at startup."""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from ..colorizer import BUNDLED, Colorizer, resolve_model_path

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


@dataclass
class ServeSettings:
    """Everything the server needs; validated here, at the boundary.

    Attributes:
        models: model specs, each ``[NAME=]MODEL`` where MODEL is a bundled name, a
            checkpoint file or a run folder; the first one is the default.
        db: SQLite file of the study's votes; the study's image cache sits beside it.
        study_data: folder of colour photos for the study (None: no study photos).
        max_upload_mb: largest accepted request body (413 above it).
        max_megapixels: largest accepted image, checked from the header (decompression bombs).
        workers: threads that run colorizations (each uses torch's own thread pool).
        queue: requests allowed to wait for a worker; beyond ``workers + queue``, 503.
        study_size: long side, in pixels, of the images the study shows.
        max_job_mb: memory one colorization may need, the process's fixed cost included:
            the colorizer's own budget (:meth:`tinct.Colorizer.check_budget`, as
            ``tinct colorize --max-memory-gb``), estimated from the image's header and the
            working size before anything is decoded (413 above it; :mod:`.limits`). The
            default leaves room below 2.5 GB for the uploads the server holds.
        header_timeout: seconds for a request's line and headers to arrive (then closed).
        body_timeout: seconds for a request's body to arrive, after its headers (then 408).
        keep_alive_timeout: seconds an idle kept-alive connection stays open.
        max_connections: connections served at once (uvicorn's ``limit_concurrency``:
            503 beyond).
        max_buffered_mb: request bodies held in memory at once, all requests together (503
            beyond); a body is read in full before its request takes a worker place.
        allowed_hosts: Host header names accepted besides localhost and ``host`` (and this
            machine's names when ``host`` is 0.0.0.0); ``["*"]`` accepts any. Others get 400.
        vote_interval: seconds a study session must wait between two votes (429 sooner).
        votes_per_hour: votes one study session may cast in any hour (429 beyond).
        trial_ttl: seconds an unvoted study trial stays valid; older ones are deleted.
        max_open_trials: unvoted trials kept at most, all sessions together (oldest go first).
        photo_store_mb: the hint editor's stored photos (their lightness, 4 bytes a pixel) at
            most, all together; the least recently used go first (:mod:`.photos`).
        photo_ttl: seconds a stored photo stays after its last use.
        max_batch_files: photos one ``POST /api/batch`` may send (their bytes together within
            ``max_upload_mb``).
        batch_ttl: seconds a finished batch's zip is kept.
        damage_model: the damage-mask model of the ``restore`` field ("Restore first"): a
            bundled name, checkpoint or run folder, loaded when first asked for.
    """

    models: list[str] = field(default_factory=lambda: ["default"])
    host: str = "127.0.0.1"
    port: int = 8000
    db: Path = Path("tinct-serve/study.sqlite")
    study_data: Path | None = None
    max_upload_mb: float = 25.0
    max_megapixels: float = 40.0
    workers: int = 1
    queue: int = 4
    study_size: int = 512
    max_job_mb: float = 2200.0  # MiB; tinct colorize's default is 2.4 GB (2289 MiB)
    header_timeout: float = 10.0
    body_timeout: float = 60.0
    keep_alive_timeout: int = 5
    max_connections: int = 100
    max_buffered_mb: float = 200.0
    allowed_hosts: list[str] = field(default_factory=list)
    vote_interval: float = 1.0
    votes_per_hour: int = 300
    trial_ttl: float = 3600.0
    max_open_trials: int = 10_000
    photo_store_mb: float = 256.0
    photo_ttl: float = 1800.0
    max_batch_files: int = 100
    batch_ttl: float = 900.0
    damage_model: str = "default"

    def __post_init__(self):
        self.db = Path(self.db)
        self.study_data = Path(self.study_data) if self.study_data is not None else None
        if not self.models:
            raise ValueError("at least one --model is needed")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port must be between 0 and 65535, got {self.port}")
        if self.max_upload_mb <= 0 or self.max_megapixels <= 0:
            raise ValueError("--max-upload-mb and --max-megapixels must be > 0")
        if self.workers < 1 or self.queue < 0:
            raise ValueError(f"--workers must be >= 1 and --queue >= 0, got {self.workers} and {self.queue}")
        if not 64 <= self.study_size <= 4096:
            raise ValueError(f"study image size must be between 64 and 4096, got {self.study_size}")
        for name in ("max_job_mb", "header_timeout", "body_timeout", "max_buffered_mb", "trial_ttl",
                     "photo_store_mb", "photo_ttl", "batch_ttl"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if self.max_connections < self.workers + self.queue + 1 or self.keep_alive_timeout < 1:
            raise ValueError(f"max_connections must exceed workers + queue and keep_alive_timeout be >= 1, "
                             f"got {self.max_connections} and {self.keep_alive_timeout}")
        if self.max_batch_files < 1:
            raise ValueError(f"max_batch_files must be >= 1, got {self.max_batch_files}")
        if self.vote_interval < 0 or self.votes_per_hour < 1 or self.max_open_trials < 1:
            raise ValueError("vote_interval must be >= 0, votes_per_hour and max_open_trials >= 1")
        if self.study_data is not None and not self.study_data.is_dir():
            raise ValueError(f"--study-data {self.study_data}: no such folder")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def max_job_bytes(self) -> int:
        return int(self.max_job_mb * 1024 * 1024)

    @property
    def max_pixels(self) -> int:
        return int(self.max_megapixels * 1e6)

    @property
    def cache_dir(self) -> Path:
        """Study images (originals resized, colorizations) are cached here, beside the db."""
        return self.db.parent / f"{self.db.stem}-cache"


@dataclass
class ModelEntry:
    """A loaded model as the server offers it.

    Attributes:
        name: what clients pick it by (``model`` form field, ``/api/models``).
        fingerprint: short hash of the checkpoint file; cache keys include it, so new
            weights under an old name never reuse old colorizations.
    """

    name: str
    spec: str
    colorizer: Colorizer
    fingerprint: str
    description: str

    def with_memory_budget(self, limit: int) -> "ModelEntry":
        """This entry with its own colorizer (sharing the loaded network) whose memory budget
        (:attr:`tinct.Colorizer.memory_budget`) is ``limit`` bytes: each app its own limit."""
        colorizer = copy.copy(self.colorizer)
        colorizer.memory_budget = int(limit)
        return dataclasses.replace(self, colorizer=colorizer)

    def info(self) -> dict:
        """What ``GET /api/models`` says of the model; ``hints``: whether it follows colour points
        (every model does: :meth:`tinct.Colorizer.follow`); ``hint_inputs``: whether its network
        takes them as inputs; ``reference``: whether it follows a reference photo's palette;
        ``distribution``: whether it outputs one over ab bins (``POST /api/suggest`` needs it)."""
        spec = self.colorizer.spec
        return {"name": self.name, "description": self.description, "size": self.colorizer.size,
                "output": spec.tag, "hints": True, "hint_inputs": bool(spec.hints),
                "reference": self.colorizer.follows_reference, "distribution": spec.is_bins}


def split_spec(text: str) -> tuple[str, str]:
    """``"NAME=MODEL"`` or ``"MODEL"`` -> (name, model spec); the name defaults from the spec.

    A bundled model keeps its name; a run folder gives its folder name; a checkpoint gives
    its stem, or its folder's name for ``best.pt``/``last.pt``/``final.safetensors``.
    """
    name, sep, spec = text.partition("=")
    if sep and _NAME.match(name) and not Path(text).exists():
        return name, spec
    spec = text
    if spec in BUNDLED:
        return spec, spec
    path = Path(spec)
    stem = path.name if path.is_dir() else path.stem
    if not path.is_dir() and stem in ("best", "last", "final") and path.parent.name:
        stem = path.parent.name
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", stem).strip("-.") or "model"
    return name[:64], spec


def load_models(specs: list[str], device: str = "cpu", precision: str = "fp32") -> dict[str, ModelEntry]:
    """Load every model once; the first is the default (dicts keep insertion order).

    Raises:
        tinct.checkpoint.CheckpointError: a model that cannot be loaded.
        ValueError: two models under the same name.
    """
    entries: dict[str, ModelEntry] = {}
    for text in specs:
        name, spec = split_spec(text)
        if name in entries:
            raise ValueError(f"two models are named {name!r}; name them with NAME=MODEL")
        path = resolve_model_path(spec)
        colorizer = Colorizer.load(path, device=device, precision=precision)
        description = BUNDLED[spec][1] if spec in BUNDLED else f"checkpoint {path.name} ({colorizer.spec.tag})"
        entries[name] = ModelEntry(name, spec, colorizer, _file_digest(path), description)
    return entries


def _file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:12]
