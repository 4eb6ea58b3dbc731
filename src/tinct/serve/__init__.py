"""``tinct serve``: a web page, a REST API and the "which one is real?" study.

    app.py        create_app(settings): pages, routes, limits; run(settings) for the CLI
    api.py        POST /api/colorize, GET /api/models, GET /healthz, the upload size limit
    jobs.py       bounded worker pool: CPU work off the event loop, 503 when full
    limits.py     the size range; the colorizer's memory budget as 413 (what fits) and out of memory as 503
    guard.py      middleware: security headers, one JSON answer per error, the body read before a worker
    connections.py uvicorn's side: header timeout, connection cap, keep-alive
    study.py      study photos and cached pairs, SQLite vote store, Wilson interval
    study_web.py  study routes and the results page
    settings.py   ServeSettings and the models loaded once at startup
    static/       the pages' HTML, JS and CSS (served locally: no CDN)

See docs/SERVE.md.
"""

from .app import create_app, run
from .settings import ModelEntry, ServeSettings, load_models

__all__ = ["ModelEntry", "ServeSettings", "create_app", "load_models", "run"]
