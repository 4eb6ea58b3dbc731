"""Study routes: the trial API behind ``/study`` and the ``/study/results`` page."""

from __future__ import annotations

import html
import random
import re
import secrets

from fastapi import APIRouter, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field

from ..io import ImageError
from .study import TooFast

router = APIRouter()
_SESSION = re.compile(r"^[0-9a-f]{32}$")
_TRIAL = r"^[0-9a-f]{32}$"
_rng = random.SystemRandom()


class Vote(BaseModel):
    trial: str = Field(pattern=_TRIAL, description="trial id from /api/study/next")
    choice: int = Field(ge=0, le=1, description="the image picked as real: 0 = left/first, 1 = right/second")
    response_ms: int = Field(ge=0, le=3_600_000, description="milliseconds from both images shown to the click")


@router.get("/api/study/next", tags=["study"])
async def next_trial(request: Request, session: str | None = None) -> dict:
    """A trial: two image URLs in random order (one original, one colorized).

    ``session`` is the participant's anonymous id (32 hex digits); a missing or malformed
    one is replaced by a fresh id, returned for the client to keep. A session has at most
    one open trial: until it is voted on (or expires), asking again gives the same one.
    """
    state = request.app.state.tinct
    if not session or not _SESSION.match(session):
        session = secrets.token_hex(16)
    store, study = state.store, state.study
    trial = await run_in_threadpool(_reusable, state, session)
    if trial is None:
        photo, model = await _pick_prepared(state, session)
        colorized_slot = _rng.randrange(2)
        trial = await run_in_threadpool(store.new_trial, session, photo, study.photos[photo].name, model, colorized_slot)
    votes = await run_in_threadpool(store.session_votes, session)
    return {"session": session, "trial": trial, "votes": votes,
            "images": [f"/api/study/image/{trial}/0", f"/api/study/image/{trial}/1"]}


def _reusable(state, session: str) -> str | None:
    """The session's open trial if its pair can still be shown; a stale one is dropped."""
    row = state.store.open_trial(session)
    if row is None:
        return None
    entry = state.models.get(row["model"])
    if entry is not None and row["photo"] in state.study.photos and state.study.is_cached(row["photo"], entry):
        return row["id"]
    state.store.drop_trial(row["id"])
    return None


async def _pick_prepared(state, session: str) -> tuple[str, str]:
    """A (photo, model) pair with its images made (on the worker pool when not cached)."""
    study = state.study
    seen = await run_in_threadpool(state.store.seen, session)
    for _ in range(len(study.photos) + 1):  # each failed photo is left out, so this ends
        pick = study.pick(list(state.models), seen, _rng)
        if pick is None:
            raise HTTPException(404, "no study photos: start the server with --study-data DIR (a folder of colour photos)")
        photo, model = pick
        entry = state.models[model]
        if not study.is_cached(photo, entry):
            with state.jobs.take() as ticket:
                try:
                    await state.jobs.run(ticket, study.prepare, photo, entry)
                except ImageError:
                    continue
        return photo, model
    raise HTTPException(404, "no readable study photos in --study-data")  # pragma: no cover


@router.get("/api/study/image/{trial}/{slot}", tags=["study"], response_class=Response,
            responses={200: {"content": {"image/png": {}}}})
def trial_image(request: Request, trial: str = PathParam(pattern=_TRIAL), slot: int = PathParam(ge=0, le=1)):
    """One of a trial's two images, by slot. The two are the same format and byte length,
    read the same way and sent with the same headers: nothing but the pixels differs."""
    state = request.app.state.tinct
    row = state.store.trial(trial)
    entry = state.models.get(row["model"]) if row is not None else None
    if row is None or entry is None or row["photo"] not in state.study.photos:
        raise HTTPException(404, "unknown or expired trial")
    pair = state.study.pair_bytes(row["photo"], entry)  # both read, whichever is sent
    if pair is None:
        raise HTTPException(404, "image no longer cached; ask for a new trial")
    original, colorized = pair
    return Response(colorized if slot == row["colorized_slot"] else original, media_type="image/png",
                    headers={"Cache-Control": "private, no-store"})


@router.post("/api/study/vote", tags=["study"])
def vote(request: Request, body: Vote) -> dict:
    """Record which image the participant thinks is real (one vote per trial; a session may
    vote once a second and 300 times an hour by default: 429 with ``Retry-After`` beyond)."""
    store = request.app.state.tinct.store
    try:
        store.vote(body.trial, body.choice, body.response_ms)
    except KeyError:
        raise HTTPException(404, "unknown or expired trial") from None
    except ValueError as e:
        raise HTTPException(409, str(e)) from None
    except TooFast as e:
        raise HTTPException(429, str(e), headers={"Retry-After": str(e.retry_after)}) from None
    session = store.trial(body.trial)["session"]
    return {"recorded": True, "votes": store.session_votes(session)}


@router.get("/api/study/results", tags=["study"])
def results_json(request: Request) -> dict:
    """Per model: votes, votes for the colorized image, fooling rate and its 95% Wilson interval."""
    rows = request.app.state.tinct.store.results()
    return {"total_votes": sum(r.votes for r in rows), "models": [r.as_dict() for r in rows]}


@router.get("/study/results", response_class=HTMLResponse, include_in_schema=False)
def results_page(request: Request) -> HTMLResponse:
    rows = request.app.state.tinct.store.results()
    total = sum(r.votes for r in rows)
    body = "".join(
        f"<tr><td>{html.escape(r.model)}</td><td class=num>{r.votes}</td><td class=num>{r.fooled}</td>"
        f"<td class=num>{r.rate:.1%}</td><td class=num>{r.interval[0]:.1%} &ndash; {r.interval[1]:.1%}</td></tr>"
        for r in rows) or "<tr><td colspan=5>No votes yet.</td></tr>"
    page = _RESULTS.replace("{total}", str(total)).replace("{rows}", body)
    return HTMLResponse(page, headers={"Cache-Control": "no-store"})


_RESULTS = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>tinct study results</title><link rel="stylesheet" href="/static/style.css"></head>
<body><header><a class="brand" href="/">tinct</a><nav><a href="/">Colorize</a><a href="/study">Study</a>
<a href="/study/results" aria-current="page">Results</a><a href="/docs">API</a></nav></header>
<main><h1>Which one is real? &mdash; results</h1>
<p>Total votes: <strong id="total">{total}</strong></p>
<table id="results"><thead><tr><th>Model</th><th>Votes</th><th>Picked the colorized one</th>
<th>Fooling rate</th><th>95% interval (Wilson)</th></tr></thead><tbody>{rows}</tbody></table>
<p class="note">The fooling rate is the share of votes that picked the colorized photo as the real one.
50% means people could not tell it from the original; 0% means they always could.
The interval is the Wilson score interval for a binomial proportion; votes from one person
are not independent, so read it as a lower bound on the uncertainty.</p>
</main></body></html>
"""
