"""Several photos in, one zip out, with progress (``POST /api/batch``).

    POST /api/batch             photos (repeated ``images`` field) and the /api/colorize options
                                -> 202 {"batch": id, "total": n, "status": url, "zip": url}
    GET  /api/batch/{id}        {"state": "running" | "done", "done": i, "total": n, "failed": [...]}
    GET  /api/batch/{id}/zip    the zip, once done: <name>-colorized.png per photo, and
                                errors.txt naming each photo that failed and why

The whole batch is one job of the worker pool (one place, like one request), run after the
request is answered; the photos are colorized one after the other, a bad one recorded and
skipped (the batch goes on). The zip is written on disk beside the study's cache
(``<db folder>/<db stem>-cache/batches``) under a temporary name and renamed when complete.
Finished batches are kept ``ttl`` seconds; at most ``max_jobs`` batches are kept (503 when
that many are still running).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import secrets
import threading
import time
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import FileResponse
from starlette.datastructures import UploadFile

from .. import hints
from .api import (_COLORIZE_BODY, answers, decode_reference, parse_options, reference_is_text, render, require_hints,
                  restorer_for, safe_stem)
from .guard import UploadTooLarge

log = logging.getLogger("tinct.serve")
router = APIRouter()


@dataclass
class BatchJob:
    id: str
    total: int
    model: str
    done: int = 0
    failed: list[dict] = field(default_factory=list)
    state: str = "running"  # running | done
    path: Path | None = None
    finished: float | None = None

    def status(self) -> dict:
        return {"batch": self.id, "state": self.state, "done": self.done, "total": self.total, "model": self.model,
                "failed": list(self.failed), "zip": f"/api/batch/{self.id}/zip" if self.state == "done" else None}


class BatchStore:
    """Batches by id; finished ones dropped (file and all) after ``ttl`` seconds or when room is needed."""

    def __init__(self, folder: Path, max_jobs: int = 8, ttl: float = 900.0, clock=time.monotonic):
        self.folder, self.max_jobs, self.ttl, self._clock = Path(folder), int(max_jobs), float(ttl), clock
        self._jobs: dict[str, BatchJob] = {}
        self._lock = threading.Lock()

    def new(self, total: int, model: str) -> BatchJob:
        with self._lock:
            self._expire()
            finished = sorted((j for j in self._jobs.values() if j.state == "done"), key=lambda j: j.finished)
            while len(self._jobs) >= self.max_jobs and finished:
                self._drop(finished.pop(0).id)
            if len(self._jobs) >= self.max_jobs:
                raise HTTPException(503, f"{self.max_jobs} batches are running; retry later", headers={"Retry-After": "10"})
            job = BatchJob(secrets.token_urlsafe(12), total, model)
            self._jobs[job.id] = job
        return job

    def get(self, key: str) -> BatchJob:
        with self._lock:
            self._expire()
            job = self._jobs.get(key)
        if job is None:
            raise HTTPException(404, "batch: unknown or expired id (a finished batch is kept for "
                                     f"{self.ttl / 60:.0f} minutes)")
        return job

    def _drop(self, key: str) -> None:
        job = self._jobs.pop(key)
        if job.path is not None:
            job.path.unlink(missing_ok=True)

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, j in self._jobs.items() if j.finished is not None and now - j.finished > self.ttl]:
            self._drop(key)

    def close(self) -> None:
        """Drop every batch and its zip (the server is stopping)."""
        with self._lock:
            for key in list(self._jobs):
                self._drop(key)

    def finish(self, job: BatchJob, path: Path | None) -> None:
        with self._lock:
            job.path, job.state, job.finished = path, "done", self._clock()


def _names(filenames: list[str]) -> list[str]:
    """``<stem>-colorized.png`` per upload, unique (``-2``, ``-3`` ... for repeated stems)."""
    seen: dict[str, int] = {}
    out = []
    for f in filenames:
        stem = safe_stem(f)
        seen[stem] = seen.get(stem, 0) + 1
        out.append(f"{stem}{'' if seen[stem] == 1 else '-' + str(seen[stem])}-colorized.png")
    return out


def run_batch(store: BatchStore, job: BatchJob, colorizer, uploads: list[tuple[str, bytes]], options, settings,
              restorer=None) -> None:
    """Worker job: colorize each upload (restored first with ``restorer``) into the zip, recording failures; never raises."""
    store.folder.mkdir(parents=True, exist_ok=True)
    final = store.folder / f"batch-{job.id}.zip"
    tmp = final.with_suffix(".zip.part")
    try:
        with zipfile.ZipFile(tmp, "w", zipfile.ZIP_STORED) as zf:  # PNGs are compressed already
            for i, name in enumerate(_names([u[0] for u in uploads])):
                filename, data = uploads[i]
                uploads[i] = (filename, b"")  # the upload's bytes go as soon as it is done
                try:
                    png, _ = render(colorizer, data, options, settings.max_pixels, settings.max_job_bytes, restorer=restorer)
                    zf.writestr(name, png)
                except HTTPException as e:
                    job.failed.append({"name": filename, "error": str(e.detail).removeprefix("upload: ")})
                except Exception as e:  # noqa: BLE001 - one photo's surprise must not end the batch
                    log.exception("batch %s: %s failed", job.id, filename)
                    job.failed.append({"name": filename, "error": f"internal error ({type(e).__name__})"})
                job.done += 1
            if job.failed:
                zf.writestr("errors.txt", "".join(f"{f['name']}: {f['error']}\n" for f in job.failed))
        os.replace(tmp, final)
        store.finish(job, final)
    except Exception:  # noqa: BLE001 - e.g. the disk is full: the batch ends, with what it says
        log.exception("batch %s failed", job.id)
        tmp.unlink(missing_ok=True)
        job.failed.append({"name": "(batch)", "error": "the server could not write the zip"})
        job.done = job.total
        store.finish(job, None)


_BATCH_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["images"],
    "properties": {"images": {"type": "array", "items": {"type": "string", "format": "binary"},
                              "description": "the photos (repeat the field); at most the server's max_batch_files"},
                   **{k: v for k, v in _COLORIZE_BODY["content"]["multipart/form-data"]["schema"]["properties"].items()
                      if k not in ("image", "photo")}}}}}}}


@router.post("/api/batch", tags=["api"], status_code=202, openapi_extra=_BATCH_BODY,
             responses={202: {"description": '{"batch": id, "total": n, "status": url, "zip": url}'},
                        413: {"description": "the photos together over the upload limit"},
                        422: {"description": "no photos, too many, or a bad option"},
                        503: {"description": "busy"}})
async def start_batch(request: Request) -> dict:
    """Colorize several photos into one zip, with the options (and hints or reference) of
    ``/api/colorize`` for every photo. Answers at once; follow ``status``, then fetch ``zip``."""
    state = request.app.state.tinct
    limit = state.settings.max_batch_files
    state.jobs.check()
    async with request.form(max_files=limit + 1, max_fields=9) as form:
        files = [f for f in form.getlist("images") if isinstance(f, UploadFile)]
        if not files:
            raise HTTPException(422, "images: no photos; send each as a multipart field 'images'")
        if len(files) > limit:
            raise HTTPException(422, f"images: {len(files)} photos, at most {limit} per batch")
        ref = form.get("reference")
        options = parse_options(form, state.models, state.default_model)
        uploads = [(f.filename or f"photo{i + 1}", await f.read()) for i, f in enumerate(files)]
        reference = None if reference_is_text(ref) or ref is None else await ref.read()
    colorizer = state.models[options.model].colorizer
    s = state.settings
    if sum(len(d) for _, d in uploads) + len(reference or b"") > s.max_upload_bytes:
        raise UploadTooLarge(s.max_upload_bytes)
    if reference is not None:  # one palette for every photo, checked before the batch starts (a 4xx if bad)
        require_hints(colorizer, reference=True)

        def palette():
            with answers(s.max_pixels, reference):
                return decode_reference(colorizer, reference, options.size, s.max_pixels, s.max_job_bytes)

        with state.jobs.take() as ticket:
            ref = await state.jobs.run(ticket, palette)
        options = dataclasses.replace(options, guide=hints.Guide().merged(options.guide).merged(hints.Guide(reference=ref)))
    restorer = restorer_for(state, options)
    with state.jobs.take() as ticket:
        job = state.batches.new(len(uploads), options.model)
        state.jobs.submit(ticket, run_batch, state.batches, job, colorizer, uploads, options, s, restorer)
    return {"batch": job.id, "total": job.total, "status": f"/api/batch/{job.id}", "zip": f"/api/batch/{job.id}/zip"}


@router.get("/api/batch/{batch}", tags=["api"], responses={404: {"description": "unknown or expired batch"}})
def batch_status(batch: str, request: Request) -> dict:
    """A batch's progress: photos done of the total, those that failed and why; ``zip`` once done."""
    return request.app.state.tinct.batches.get(batch).status()


@router.get("/api/batch/{batch}/zip", tags=["api"], response_class=FileResponse,
            responses={200: {"content": {"application/zip": {}}}, 404: {"description": "unknown or expired batch"},
                       409: {"description": "not finished yet"}})
def batch_zip(batch: str, request: Request) -> FileResponse:
    """The finished batch's zip: one PNG per photo that worked, errors.txt for the others."""
    job = request.app.state.tinct.batches.get(batch)
    if job.state != "done":
        raise HTTPException(409, f"batch not finished: {job.done} of {job.total} photos done")
    if job.path is None or not job.path.is_file():
        raise HTTPException(410, "batch: its zip could not be written or is gone; start it again")
    return FileResponse(job.path, media_type="application/zip", filename=f"tinct-colorized-{job.total}.zip",
                        headers={"Cache-Control": "no-store"})
