"""The FastAPI application: pages, API, study, limits.

    create_app(settings)  -> app          (tests pass a tiny checkpoint in settings.models)
    run(settings)                          (``tinct serve``: load models, then uvicorn)

Models are loaded once, before the first request, and shared by every request. CPU work
(decode, colorize, encode) runs on a small bounded worker pool (:mod:`.jobs`), never on
the event loop, so pages, health checks and study votes stay responsive under load.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.middleware.trustedhost import TrustedHostMiddleware

from .. import __version__
from . import api, batch, editor, study_web
from .batch import BatchStore
from .guard import BodyFirst, Shield, allowed_hosts
from .jobs import Busy, JobPool
from .limits import MB, short
from .photos import PhotoStore
from .restoring import Restorers
from .settings import ModelEntry, ServeSettings, load_models
from .study import StudySet, VoteLimits, VoteStore

log = logging.getLogger("tinct.serve")
STATIC = Path(str(resources.files("tinct.serve") / "static"))


@dataclass
class ServerState:
    """What every request shares; lives in ``app.state.tinct``."""

    settings: ServeSettings
    models: dict[str, ModelEntry]
    jobs: JobPool
    store: VoteStore
    study: StudySet
    photos: PhotoStore
    batches: BatchStore
    restorers: Restorers

    @property
    def default_model(self) -> str:
        return next(iter(self.models))


def create_app(settings: ServeSettings, models: dict[str, ModelEntry] | None = None) -> FastAPI:
    """Build the app; loads ``settings.models`` unless already-loaded ``models`` are given.

    Raises:
        tinct.checkpoint.CheckpointError: a model cannot be loaded.
        ValueError: two models share a name.
    """
    models = models if models is not None else load_models(settings.models)
    models = {name: entry.with_memory_budget(settings.max_job_bytes) for name, entry in models.items()}
    state = ServerState(settings=settings, models=models,
                        jobs=JobPool(settings.workers, settings.queue),
                        store=VoteStore(settings.db, VoteLimits(settings.vote_interval, settings.votes_per_hour,
                                                                settings.trial_ttl, settings.max_open_trials)),
                        study=StudySet(settings.study_data, settings.cache_dir, settings.study_size),
                        photos=PhotoStore(int(settings.photo_store_mb * MB), ttl=settings.photo_ttl),
                        batches=BatchStore(settings.cache_dir / "batches", ttl=settings.batch_ttl),
                        restorers=Restorers(settings.damage_model, settings.max_job_bytes))

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        yield
        state.jobs.shutdown()
        state.store.close()
        state.batches.close()

    app = FastAPI(title="tinct", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Automatic image colorization: grey photo in, colour PNG out. "
                              "Also the 'which one is real?' study.")
    app.state.tinct = state
    # Added innermost first: a request meets Shield, then the Host check, then BodyFirst.
    app.add_middleware(BodyFirst, max_bytes=settings.max_upload_bytes, timeout=settings.body_timeout,
                       max_buffered=int(settings.max_buffered_mb * MB))
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=allowed_hosts(settings.host, settings.allowed_hosts),
                       www_redirect=False)
    app.add_middleware(Shield)
    app.add_exception_handler(Busy, _busy)
    app.add_exception_handler(RequestValidationError, _invalid)
    app.include_router(api.router)
    app.include_router(editor.router)
    app.include_router(batch.router)
    app.include_router(study_web.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    _add_pages(app)
    return app


async def _busy(request: Request, exc: Busy) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503, headers={"Retry-After": str(exc.retry_after)})


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    """FastAPI's 422, with each offending input cut (:func:`.limits.short`; never echoed in full)."""
    errors = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", ""))[:200], "type": e.get("type"),
               "input": short(e.get("input"))} for e in exc.errors()]
    return JSONResponse({"detail": errors}, status_code=422)


def _add_pages(app: FastAPI) -> None:
    @app.get("/api", tags=["api"])
    def api_index() -> dict:
        """What this API offers: its endpoints, the docs and the OpenAPI document."""
        return {"name": "tinct", "version": __version__, "docs": "/docs", "openapi": "/openapi.json",
                "endpoints": {"POST /api/colorize": "colorize one photo (multipart: image or photo, model, size, "
                                                    "saturation, temperature, hints, reference, restore)",
                              "POST /api/batch": "several photos into one zip (then GET /api/batch/{id}, "
                                                 "GET /api/batch/{id}/zip)",
                              "POST /api/photos": "upload a photo once for editing; its id is the photo field of "
                                                  "/api/colorize, /api/ab and /api/suggest",
                              "GET /api/photos/{id}/lightness": "a stored photo's lightness (uint16)",
                              "POST /api/ab": "the low-resolution ab a colorization is composed from",
                              "POST /api/suggest": "the model's likeliest colours at a point",
                              "POST /api/palette": "a reference photo's palette, as a hints file's reference",
                              "GET /api/models": "the models and the default",
                              "GET /healthz": "liveness and load",
                              "GET /api/study/next": "a study trial", "POST /api/study/vote": "vote on a trial",
                              "GET /api/study/results": "fooling rate per model"}}

    @app.get("/", include_in_schema=False)
    def index() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    @app.get("/study", include_in_schema=False)
    def study_page() -> FileResponse:
        return FileResponse(STATIC / "study.html", headers={"Cache-Control": "no-cache"})

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        """Swagger UI served from the installed package: no CDN."""
        if _swagger_dir() is None:
            return HTMLResponse('<!doctype html><meta charset="utf-8"><title>tinct API</title>'
                                '<p>Swagger UI is not installed (pip install swagger-ui-bundle-v2). '
                                'The OpenAPI document is at <a href="/openapi.json">/openapi.json</a>.</p>')
        return get_swagger_ui_html(openapi_url="/openapi.json", title="tinct API",
                                   swagger_js_url="/docs-assets/swagger-ui-bundle.js",
                                   swagger_css_url="/docs-assets/swagger-ui.css",
                                   swagger_favicon_url="/static/favicon.svg")

    swagger = _swagger_dir()
    if swagger is not None:
        app.mount("/docs-assets", StaticFiles(directory=swagger), name="docs-assets")


def _swagger_dir() -> Path | None:
    """Swagger UI 5 (OpenAPI 3.1, as FastAPI writes) from ``swagger-ui-bundle-v2``, if installed."""
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    path = Path(swagger_ui_path)
    return path if (path / "swagger-ui-bundle.js").is_file() and "swagger-ui-5" in path.name else None


def run(settings: ServeSettings, models: dict[str, ModelEntry] | None = None) -> None:
    """Serve until interrupted (Ctrl-C), with the header timeout and connection cap of :mod:`.connections`."""
    import uvicorn

    from .connections import uvicorn_options

    app = create_app(settings, models)
    names = ", ".join(app.state.tinct.models)
    study = len(app.state.tinct.study.photos)
    print(f"tinct serve: models {names}; study photos: {study}; votes in {settings.db}\n"
          f"tinct serve: open http://{settings.host}:{settings.port}/  (API docs at /docs)", flush=True)
    uvicorn.run(app, **uvicorn_options(settings))
