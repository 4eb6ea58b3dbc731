"""The hint editor's API: a photo uploaded once, then edits that send only hints.

    POST /api/photos                  upload a photo once -> {"photo": id, "width", "height"}
                                      (``restore``: restored first, .restoring)
    GET  /api/photos/{id}/lightness   its full-resolution lightness (uint16, L x 655.35)
    POST /api/ab                      the low-resolution ab a colorization is composed from
    POST /api/suggest                 the model's likeliest colours at a point (swatches)
    POST /api/palette                 a reference photo's palette, as a hints file's reference

The page composes the result itself from the lightness (fetched once per photo) and the ab
of each edit (a few kilobytes): bilinear upsampling and Lab -> sRGB, as
:meth:`tinct.Colorizer.render` does (``static/lab.js``), so an edit costs one network pass
and no image is encoded, sent or decoded; saturation is applied in the page. The same id
works as ``photo`` on ``POST /api/colorize`` (the PNG, composed by the server).
"""

from __future__ import annotations

import time

import numpy as np
from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from .. import hints, likely
from .api import (MAX_HINTS_BYTES, Options, answers, decode_photo, decode_reference, number_field,
                  parse_options, predict_stored, reference_is_text, require_hints, restorer_for, stored_photo)
from .guard import UploadTooLarge
from .photos import PHOTO_FIELD_DOC, StoredPhoto, stored_or_404

router = APIRouter()
L_SCALE = 655.35  # lightness sent as uint16: L x 655.35 (0..65535), steps of 0.0015 L

_FIELDS = {
    "photo": {"type": "string", "description": PHOTO_FIELD_DOC},
    "image": {"type": "string", "format": "binary", "description": "the photo, when no photo id is given"},
    "model": {"type": "string", "description": "model name from /api/models (default: the server's first)"},
    "size": {"type": "integer", "description": "working size, as on /api/colorize"},
    "temperature": {"type": "number", "description": "annealed-mean temperature, as on /api/colorize"},
    "hints": {"type": "string", "maxLength": MAX_HINTS_BYTES, "description": "a hints file's JSON, as on /api/colorize"},
    "reference": {"type": "string", "format": "binary", "description": "a reference photo, as on /api/colorize"},
    "restore": {"type": "string", "description": "restore the photo first, as on /api/colorize (e.g. 1, or scratches,grain)"},
}


def _body(*names: str, required: tuple[str, ...] = (), **extra) -> dict:
    props = {n: _FIELDS[n] for n in names} | extra
    return {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": list(required), "properties": props}}}}}


async def _read_upload(form, name: str, limit: int) -> bytes:
    upload = form.get(name)
    if not isinstance(upload, UploadFile):
        raise HTTPException(422, f"{name}: missing; send the photo as multipart form field {name!r}")
    data = await upload.read()
    if len(data) > limit:
        raise UploadTooLarge(limit)
    return data


@router.post("/api/photos", tags=["editor"], status_code=201, openapi_extra=_body("image", "model", "restore", required=("image",)),
             responses={201: {"description": '{"photo": id, "width": w, "height": h, "name": file name}'},
                        413: {"description": "too large (bytes, pixels, memory, or the photo store)"},
                        415: {"description": "not an image"}, 422: {"description": "damaged image"}})
async def add_photo(request: Request) -> JSONResponse:
    """Decode a photo once and keep it for later edits (the ``photo`` field of the other routes).

    The server keeps its lightness for a while (``photo_ttl`` after its last use, least recently
    used dropped first when the store is full); then the id answers 404 and the photo is sent again."""
    state = request.app.state.tinct
    state.jobs.check()
    async with request.form(max_files=1, max_fields=3) as form:
        data = await _read_upload(form, "image", state.settings.max_upload_bytes)
        filename = form["image"].filename or "photo"
        options = parse_options(form, state.models, state.default_model)
    colorizer = state.models[options.model].colorizer
    restorer = restorer_for(state, options)

    def job() -> StoredPhoto:
        with answers(state.settings.max_pixels, data):
            return decode_photo(colorizer, data, None, state.settings.max_pixels, state.settings.max_job_bytes, filename,
                                restorer)

    with state.jobs.take() as ticket:
        photo = await state.jobs.run(ticket, job)
    key = state.photos.add(photo)
    return JSONResponse({"photo": key, "width": photo.width, "height": photo.height, "name": photo.name},
                        status_code=201, headers={"Cache-Control": "no-store"})


@router.get("/api/photos/{photo}/lightness", tags=["editor"], response_class=Response,
            responses={200: {"content": {"application/octet-stream": {}},
                             "description": "uint16 little-endian, row-major H x W: L x 655.35 (X-Tinct-Size: WxH)"},
                       404: {"description": "unknown or expired photo id"}})
def lightness(photo: str, request: Request) -> Response:
    """A stored photo's full-resolution CIELAB lightness, what the page composes its result with."""
    stored = stored_or_404(request.app.state.tinct.photos, photo)
    raw = (stored.L.numpy() * L_SCALE + 0.5).clip(0, 65535).astype("<u2")
    return Response(raw.tobytes(), media_type="application/octet-stream",
                    headers={"X-Tinct-Size": f"{stored.width}x{stored.height}", "Cache-Control": "no-store"})


async def _edit_request(request: Request, extra: tuple[str, ...] = ()):
    """The fields an edit sends: the photo (an id, or an image), options with hints, a reference; and ``extra``."""
    state = request.app.state.tinct
    state.jobs.check()
    async with request.form(max_files=3, max_fields=12) as form:
        upload, ref = form.get("image"), form.get("reference")
        photo = stored_photo(form, upload, state.photos)
        options = parse_options(form, state.models, state.default_model)
        values = {name: form.get(name) for name in extra}
        data = await upload.read() if photo is None else None
        reference = None if reference_is_text(ref) or ref is None else await ref.read()
        name = upload.filename if photo is None else photo.name
    colorizer = state.models[options.model].colorizer
    if reference is not None:
        require_hints(colorizer, reference=True)
    if len(data or b"") + len(reference or b"") > state.settings.max_upload_bytes:
        raise UploadTooLarge(state.settings.max_upload_bytes)
    return state, colorizer, options, photo, data, reference, name or "photo", values


def _prepared(state, colorizer, options: Options, photo, data, reference, name):
    """On a worker: the photo (decoded now when it was sent) and the guide with the reference's palette."""
    s = state.settings
    guide = hints.Guide().merged(options.guide)
    if reference is not None:
        guide = guide.merged(hints.Guide(reference=decode_reference(colorizer, reference, options.size,
                                                                    s.max_pixels, s.max_job_bytes)))
    if photo is None:
        photo = decode_photo(colorizer, data, options.size, s.max_pixels, s.max_job_bytes, name,
                             restorer_for(state, options))
    return photo, guide


@router.post("/api/ab", tags=["editor"], response_class=Response,
             openapi_extra=_body("photo", "image", "model", "size", "temperature", "hints", "reference"),
             responses={200: {"content": {"application/octet-stream": {}},
                              "description": "float32 little-endian, 2 x h x w (a then b, Lab units; X-Tinct-Grid: "
                                             "wxh); saturation not applied"},
                        404: {"description": "unknown or expired photo id"},
                        422: {"description": "bad option or hints (as /api/colorize)"}})
async def ab(request: Request) -> Response:
    """The colours only: the low-resolution ab that :meth:`tinct.Colorizer.render` upsamples
    (bilinear, align_corners=False) and composes with the photo's own lightness. With the
    lightness from ``GET /api/photos/{id}/lightness`` a client makes the image ``/api/colorize``
    gives (the web page does, in ``static/lab.js``)."""
    state, colorizer, options, photo, data, reference, name, _ = await _edit_request(request)
    def job():
        with answers(state.settings.max_pixels, reference if reference is not None else data, data) as step:
            stored, guide = _prepared(state, colorizer, options, photo, data, reference, name)
            step.next()
            return predict_stored(colorizer, stored, options, guide, state.settings.max_job_bytes)

    with state.jobs.take() as ticket:
        started = time.perf_counter()
        out = await state.jobs.run(ticket, job)
    raw = out.float().contiguous().numpy().astype("<f4")
    return Response(raw.tobytes(), media_type="application/octet-stream",
                    headers={"X-Tinct-Grid": f"{raw.shape[2]}x{raw.shape[1]}", "X-Tinct-Model": options.model,
                             "X-Tinct-Seconds": f"{time.perf_counter() - started:.3f}", "Cache-Control": "no-store"})


@router.post("/api/suggest", tags=["editor"],
             openapi_extra=_body("photo", "image", "model", "size", "hints", "reference", required=("x", "y"),
                                 x={"type": "number", "minimum": 0, "maximum": 1, "description": "fraction of the width"},
                                 y={"type": "number", "minimum": 0, "maximum": 1, "description": "fraction of the height"},
                                 k={"type": "integer", "minimum": 1, "maximum": 32, "default": 6,
                                    "description": "how many colours"}),
             responses={200: {"description": '{"x", "y", "colours": [{"colour": "#rrggbb", "a", "b", "probability"}]}'},
                        404: {"description": "unknown or expired photo id"},
                        422: {"description": "bad x, y, k, option or hints; a model without bins"}})
async def suggest(request: Request) -> dict:
    """The colours the model thinks likeliest at (x, y), best first: the top bins of its 313-bin
    distribution there given the other hints (:func:`tinct.likely.likely_colours`; neighbouring
    bins skipped), each with its probability and a displayable hex of the bin's ab (the hint's
    colour when chosen: its lightness does not matter, the photo's own is kept)."""
    state, colorizer, options, photo, data, reference, name, values = await _edit_request(request, ("x", "y", "k"))
    x = number_field(values, "x", float, (0.0, 1.0))
    y = number_field(values, "y", float, (0.0, 1.0))
    k = number_field(values, "k", int, (1, 32), default=6)
    if x is None or y is None:
        raise HTTPException(422, "x and y: required, fractions of the width and height in [0, 1]")
    if not colorizer.spec.is_bins:
        raise HTTPException(422, f"model: {options.model} outputs {colorizer.spec.tag!r}, not a colour distribution; "
                                 "swatches need a bin model")

    def job():
        with answers(state.settings.max_pixels, reference if reference is not None else data, data) as step:
            stored, guide = _prepared(state, colorizer, options, photo, data, reference, name)
            step.next()
            return likely.likely_colours(colorizer, stored.L, x, y, k, options.size, guide or None)

    with state.jobs.take() as ticket:
        colours = await state.jobs.run(ticket, job)
    return {"x": x, "y": y, "model": options.model, "colours": [c.as_dict() for c in colours]}


@router.post("/api/palette", tags=["editor"], openapi_extra=_body("image", required=("image",)),
             responses={200: {"description": '{"distribution": [313 numbers]}: the hints file\'s reference'},
                        413: {"description": "too large"}, 415: {"description": "not an image"},
                        422: {"description": "damaged, or grey (no colours to follow)"}})
async def palette(request: Request) -> dict:
    """A colour photo's palette as a hints file's ``reference`` (:func:`tinct.hints.reference_hint`,
    its 313-bin distribution), so hints that carry it stand alone: the page puts it in the
    hints it sends and saves."""
    state = request.app.state.tinct
    state.jobs.check()
    async with request.form(max_files=1, max_fields=1) as form:
        data = await _read_upload(form, "image", state.settings.max_upload_bytes)
    colorizer = state.models[state.default_model].colorizer

    def job():
        with answers(state.settings.max_pixels, data):
            return decode_reference(colorizer, data, None, state.settings.max_pixels, state.settings.max_job_bytes)

    with state.jobs.take() as ticket:
        ref = await state.jobs.run(ticket, job)
    return {"distribution": [round(float(v), 6) for v in np.asarray(ref[:-1])]}

