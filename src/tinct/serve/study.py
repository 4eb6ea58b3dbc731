"""The "which one is real?" study: photo pairs, the vote store and the fooling rate.

Design: each trial shows one study photo twice, side by side in random order: the
original, and the colorization of its grey version by one model. The participant picks
the one they believe is real. A vote for the colorized side means the model fooled them;
per model, the fooling rate is the share of such votes, 50% being indistinguishable from
the original. Trials and votes live in SQLite (WAL mode); images are served by trial id
and slot, so neither a URL nor a file name tells which side is which, and no path a
client sends ever reaches the disk.

The study must not be gameable: the two images of a pair are uncompressed PNGs of the same
size and mode (so byte for byte the same length), served by one route that reads both
and sends one, with the same headers; a session has at most one open trial (asking again
gives it back) and unvoted trials expire; a session's votes are rate-limited.
"""

from __future__ import annotations

import hashlib
import math
import random
import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import color
from ..io import ImageError, atomic_write, find_images, load_image, to_pil
from .settings import ModelEntry

Z95 = 1.959963984540054  # two-sided 95% normal quantile

_SCHEMA = """
CREATE TABLE IF NOT EXISTS trials (
    id TEXT PRIMARY KEY, created REAL NOT NULL, session TEXT NOT NULL,
    photo TEXT NOT NULL, photo_name TEXT NOT NULL, model TEXT NOT NULL,
    colorized_slot INTEGER NOT NULL CHECK (colorized_slot IN (0, 1)));
CREATE TABLE IF NOT EXISTS votes (
    trial TEXT PRIMARY KEY REFERENCES trials(id), created REAL NOT NULL, session TEXT NOT NULL,
    photo TEXT NOT NULL, photo_name TEXT NOT NULL, model TEXT NOT NULL,
    shown_order TEXT NOT NULL, choice INTEGER NOT NULL, chose_colorized INTEGER NOT NULL,
    response_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS trials_session ON trials(session);
CREATE INDEX IF NOT EXISTS trials_created ON trials(created);
CREATE INDEX IF NOT EXISTS votes_session ON votes(session, created);
"""
_UNVOTED = "NOT EXISTS (SELECT 1 FROM votes v WHERE v.trial = trials.id)"


class TooFast(Exception):
    """A session voting faster than the study allows; retry after ``retry_after`` seconds."""

    def __init__(self, message: str, retry_after: float):
        super().__init__(message)
        self.retry_after = max(1, math.ceil(retry_after))


@dataclass
class VoteLimits:
    """How fast one session may vote, and how long unvoted trials live (see docs/SERVE.md)."""

    interval: float = 1.0  # seconds between two votes of a session
    per_hour: int = 300  # votes of a session in any 3600 s
    trial_ttl: float = 3600.0  # seconds an unvoted trial stays valid
    max_open_trials: int = 10_000  # unvoted trials kept, all sessions together"""


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``k / n`` (``(0, 1)`` when n = 0)."""
    if n == 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class ModelResult:
    model: str
    votes: int
    fooled: int

    @property
    def rate(self) -> float:
        return self.fooled / self.votes if self.votes else 0.0

    @property
    def interval(self) -> tuple[float, float]:
        return wilson_interval(self.fooled, self.votes)

    def as_dict(self) -> dict:
        low, high = self.interval
        return {"model": self.model, "votes": self.votes, "fooled": self.fooled,
                "fooling_rate": self.rate, "ci95": [low, high]}


class VoteStore:
    """Trials and votes in one SQLite file; safe to call from several threads."""

    def __init__(self, path: str | Path, limits: VoteLimits | None = None):
        self.path = Path(path)
        self.limits = limits or VoteLimits()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, timeout=30, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: durable across a process crash
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, sql: str, args: tuple = ()) -> list[sqlite3.Row]:
        with self._lock:
            return self._db.execute(sql, args).fetchall()

    def journal_mode(self) -> str:
        return self._run("PRAGMA journal_mode")[0][0]

    def new_trial(self, session: str, photo: str, photo_name: str, model: str, colorized_slot: int) -> str:
        """Store a trial; first delete expired unvoted trials and, past ``max_open_trials``, the oldest unvoted."""
        trial, now = secrets.token_hex(16), time.time()
        with self._lock:
            self._db.execute(f"DELETE FROM trials WHERE created < ? AND {_UNVOTED}", (now - self.limits.trial_ttl,))
            self._db.execute(f"DELETE FROM trials WHERE id IN (SELECT id FROM trials WHERE {_UNVOTED} "
                             "ORDER BY created DESC LIMIT -1 OFFSET ?)", (self.limits.max_open_trials - 1,))
            self._db.execute("INSERT INTO trials VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (trial, now, session, photo, photo_name, model, int(colorized_slot)))
        return trial

    def open_trial(self, session: str) -> sqlite3.Row | None:
        """The session's newest unvoted, unexpired trial, if any (asking again gives it back)."""
        rows = self._run(f"SELECT * FROM trials WHERE session = ? AND created >= ? AND {_UNVOTED} "
                         "ORDER BY created DESC LIMIT 1", (session, time.time() - self.limits.trial_ttl))
        return rows[0] if rows else None

    def drop_trial(self, trial: str) -> None:
        self._run(f"DELETE FROM trials WHERE id = ? AND {_UNVOTED}", (trial,))

    def open_trials(self) -> int:
        return self._run(f"SELECT COUNT(*) FROM trials WHERE {_UNVOTED}")[0][0]

    def trial(self, trial: str) -> sqlite3.Row | None:
        """A trial by id; None if unknown, or unvoted and expired."""
        rows = self._run("SELECT * FROM trials WHERE id = ?", (trial,))
        if not rows:
            return None
        voted = self._run("SELECT 1 FROM votes WHERE trial = ?", (trial,))
        return rows[0] if voted or rows[0]["created"] >= time.time() - self.limits.trial_ttl else None

    def vote(self, trial: str, choice: int, response_ms: int) -> bool:
        """Record the vote for ``trial``; True if it fooled the participant.

        Raises:
            KeyError: unknown or expired trial.
            ValueError: the trial already has a vote.
            TooFast: the trial's session voted less than ``interval`` s ago, or ``per_hour``
                times in the last hour.
        """
        t = self.trial(trial)
        if t is None:
            raise KeyError(trial)
        fooled = int(choice == t["colorized_slot"])
        order = "colorized,original" if t["colorized_slot"] == 0 else "original,colorized"
        with self._lock:  # the check and the insert together: concurrent votes cannot both pass
            now = time.time()
            if self._db.execute("SELECT 1 FROM votes WHERE trial = ?", (trial,)).fetchone():
                raise ValueError(f"trial {trial} already has a vote")
            last, count, oldest = self._db.execute(
                "SELECT MAX(created), COUNT(*), MIN(created) FROM votes WHERE session = ? AND created > ?",
                (t["session"], now - 3600)).fetchone()
            if last is not None and now - last < self.limits.interval:
                raise TooFast(f"too fast: one vote per {self.limits.interval:g} s", self.limits.interval - (now - last))
            if count >= self.limits.per_hour:
                raise TooFast(f"vote limit reached: {self.limits.per_hour} votes an hour per session",
                              oldest + 3600 - now)
            self._db.execute("INSERT INTO votes VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (trial, now, t["session"], t["photo"], t["photo_name"], t["model"], order,
                              int(choice), fooled, int(response_ms)))
        return bool(fooled)

    def session_votes(self, session: str) -> int:
        return self._run("SELECT COUNT(*) FROM votes WHERE session = ?", (session,))[0][0]

    def seen(self, session: str) -> set[tuple[str, str]]:
        """(photo, model) pairs this session has voted on."""
        return {(r["photo"], r["model"]) for r in self._run("SELECT photo, model FROM votes WHERE session = ?", (session,))}

    def results(self) -> list[ModelResult]:
        rows = self._run("SELECT model, COUNT(*) AS n, SUM(chose_colorized) AS k FROM votes GROUP BY model ORDER BY model")
        return [ModelResult(r["model"], r["n"], r["k"] or 0) for r in rows]

    def votes(self) -> list[dict]:
        return [dict(r) for r in self._run("SELECT * FROM votes ORDER BY created")]


@dataclass
class StudyPhoto:
    id: str  # content hash: the photo's identity in trials, votes and cache names
    name: str  # file name only, for the results
    path: Path


class StudySet:
    """The study's photos and their cached (original, colorized) pairs.

    Both images of a pair are made the same way: the original is resized so its long side
    is ``size``; its grey version (L only) is colorized at that size; both are saved as
    uncompressed 8-bit RGB PNGs, so the two files have exactly the same length (a
    compressed size would tell the smooth colorization from the original). Cache names are
    ``<photo hash>-<model fingerprint>``, so renamed photos keep their cache and retrained
    models get fresh colorizations.
    """

    def __init__(self, folder: Path | None, cache_dir: Path, size: int = 512):
        self.cache_dir, self.size = Path(cache_dir), size
        self.photos: dict[str, StudyPhoto] = {}
        self.broken: set[str] = set()
        if folder is not None:
            for path in find_images(folder):
                digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
                self.photos.setdefault(digest, StudyPhoto(digest, path.name, path))

    def available(self) -> list[str]:
        return [pid for pid in self.photos if pid not in self.broken]

    def pick(self, models: list[str], seen: set[tuple[str, str]], rng: random.Random) -> tuple[str, str] | None:
        """A (photo, model) pair, preferring ones this participant has not voted on yet."""
        pairs = [(p, m) for p in self.available() for m in models]
        if not pairs:
            return None
        fresh = [pair for pair in pairs if pair not in seen]
        return rng.choice(fresh or pairs)

    def paths(self, photo: str, model: ModelEntry) -> tuple[Path, Path]:
        """(original, colorized) cache files of a pair; both uncompressed PNG (``-u``)."""
        return (self.cache_dir / f"{photo}-original-{self.size}-u.png",
                self.cache_dir / f"{photo}-{model.fingerprint}-{self.size}-u.png")

    def pair_bytes(self, photo: str, model: ModelEntry) -> tuple[bytes, bytes] | None:
        """(original, colorized) file contents, both read on every call (the same work
        whichever one is sent); None when either is no longer cached."""
        try:
            return tuple(p.read_bytes() for p in self.paths(photo, model))  # type: ignore[return-value]
        except OSError:
            return None

    def is_cached(self, photo: str, model: ModelEntry) -> bool:
        return all(p.is_file() for p in self.paths(photo, model))

    def prepare(self, photo: str, model: ModelEntry) -> tuple[Path, Path]:
        """Make the pair's cache files if missing (CPU work: run it on a worker).

        Raises:
            tinct.io.ImageError: the study photo cannot be read or is grey (it is then left out).
        """
        original_path, colorized_path = self.paths(photo, model)
        if original_path.is_file() and colorized_path.is_file():
            return original_path, colorized_path
        try:
            source = load_image(self.photos[photo].path)
            if source.is_gray:  # a grey "original" would give the answer away
                raise ImageError(f"{self.photos[photo].name}: a grey photo; the study needs colour originals")
        except ImageError:
            self.broken.add(photo)
            raise
        original = to_pil(source.rgb)
        original.thumbnail((self.size, self.size), Image.LANCZOS)  # downscale only, aspect kept
        grey = to_pil(color.grey(np.asarray(original.convert("RGB"), dtype=np.float32) / 255.0))
        colorized = model.colorizer.colorize(grey).convert("RGB")
        if not original_path.is_file():
            _save_uncompressed(original.convert("RGB"), original_path)
        _save_uncompressed(colorized, colorized_path)
        if original_path.stat().st_size != colorized_path.stat().st_size:  # same size and mode: cannot happen
            colorized_path.unlink()
            raise ImageError(f"{self.photos[photo].name}: the pair's files differ in length")
        return original_path, colorized_path


def _save_uncompressed(im: Image.Image, path: Path) -> None:
    """PNG with zlib level 0 (stored): the length depends only on the size and mode."""
    atomic_write(path, lambda tmp: im.save(tmp, format="PNG", compress_level=0))
