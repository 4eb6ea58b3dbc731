"""The REST API: ``POST /api/colorize``, ``GET /api/models``, ``GET /healthz``.

Every failure a client can cause is a 4xx with ``{"detail": "..."}``: 413 body or image
too large (pixels, or memory: the colorizer's budget, :mod:`.limits`), 415 not an image, 422 damaged image or bad
option, 503 busy or out of memory (with ``Retry-After``). The body has been read in full
(:class:`.guard.BodyFirst`) before a request takes a worker place; uploads are decoded,
colorized and encoded on the worker pool.
"""

from __future__ import annotations

import io
import re
import time
from dataclasses import dataclass

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile

from ..budget import MemoryBudgetError
from ..errors import is_out_of_memory
from ..io import ImageError, load_image, open_header
from .guard import UploadTooLarge
from .limits import SIZE_RANGE, check_budget, out_of_memory

router = APIRouter()

SATURATION_RANGE = (0.0, 4.0)
TEMPERATURE_RANGE = (0.01, 10.0)


@dataclass
class Options:
    model: str
    size: int | None
    saturation: float
    temperature: float | None


def parse_options(form, models: dict, default_model: str) -> Options:
    """Read and check the optional form fields; 422 naming the field when one is wrong."""
    model = str(form.get("model") or default_model)
    if model not in models:
        raise HTTPException(422, f"model: unknown model {model[:40]!r}; available: {', '.join(models)}")
    return Options(model=model,
                   size=_number(form, "size", int, SIZE_RANGE),
                   saturation=_number(form, "saturation", float, SATURATION_RANGE, default=1.0),
                   temperature=_number(form, "temperature", float, TEMPERATURE_RANGE))


def _number(form, name: str, kind, bounds, default=None):
    text = form.get(name)
    if text is None or (isinstance(text, str) and text.strip() == ""):
        return default
    if not isinstance(text, str):
        raise HTTPException(422, f"{name}: expected a number, got a file")
    try:
        value = kind(text)
    except ValueError:
        raise HTTPException(422, f"{name}: expected {'an integer' if kind is int else 'a number'}, got {text[:20]!r}") from None
    if not bounds[0] <= value <= bounds[1]:  # also refuses NaN
        raise HTTPException(422, f"{name}: must be between {bounds[0]} and {bounds[1]}, got {text[:20]}")
    return value


def render(colorizer, data: bytes, options: Options, max_pixels: int, max_job_bytes: int) -> tuple[bytes, tuple[int, int]]:
    """Worker job: decode (the pixel limit and the colorizer's memory budget checked from the
    header first), colorize, encode PNG.

    Returns (png bytes, (width, height)). Raises HTTPException: 413/415/422 for the image,
    503 when memory runs out anyway (:func:`tinct.errors.is_out_of_memory`).
    """
    def budget(w: int, h: int, mode: str) -> None:  # 413 from the header, before decoding
        check_budget(colorizer, w, h, mode, options.size, max_job_bytes)

    try:
        photo = load_image(data, max_pixels=max_pixels, name="upload", check=budget)
        out = colorizer.colorize(photo, size=options.size, saturation=options.saturation, temperature=options.temperature)
        buf = io.BytesIO()
        out.save(buf, format="PNG", compress_level=3)  # 3: much faster than the default, files ~10% larger
    except MemoryBudgetError as e:  # the colorizer's own check of the decoded photo (same budget)
        raise HTTPException(413, str(e)) from None
    except ImageError as e:
        raise HTTPException(_status_for_bad_image(data, max_pixels), str(e)) from None
    except Exception as e:
        if is_out_of_memory(e):
            raise out_of_memory() from None
        raise
    return buf.getvalue(), out.size


def _status_for_bad_image(data: bytes, max_pixels: int) -> int:
    """415 not an image, 413 too many pixels, 422 damaged (read again from the header)."""
    try:
        with open_header(io.BytesIO(data)) as im:  # not Image.open: Pillow's own pixel limit would raise here
            w, h = im.size
    except UnidentifiedImageError:  # no format recognised: not an image
        return 415
    except Image.DecompressionBombError:  # an MPO frame over Pillow's limit: too many pixels all the same
        return 413
    except (OSError, ValueError, SyntaxError, EOFError):  # recognised, but the header is damaged
        return 422
    return 413 if w * h > max_pixels else 422


def safe_stem(filename: str | None) -> str:
    """A download name from the client's file name: letters, digits, ``._-`` only; never a path."""
    stem = (filename or "photo").replace("\\", "/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._")[:80] or "photo"


_COLORIZE_BODY = {
    "required": True,
    "content": {"multipart/form-data": {"schema": {
        "type": "object", "required": ["image"],
        "properties": {
            "image": {"type": "string", "format": "binary", "description": "the photo (JPEG, PNG, TIFF, WebP, BMP, GIF)"},
            "model": {"type": "string", "description": "model name from /api/models (default: the server's first)"},
            "size": {"type": "integer", "minimum": SIZE_RANGE[0], "maximum": SIZE_RANGE[1],
                     "description": "working size: short side the network sees (default: the model's)"},
            "saturation": {"type": "number", "minimum": SATURATION_RANGE[0], "maximum": SATURATION_RANGE[1],
                           "default": 1.0, "description": "scale the predicted colour"},
            "temperature": {"type": "number", "minimum": TEMPERATURE_RANGE[0], "maximum": TEMPERATURE_RANGE[1],
                            "description": "annealed-mean temperature for distribution models"},
        }}}},
}
_ERRORS = {408: {"description": "the body did not arrive within the body timeout"},
           413: {"description": "upload or image too large (bytes, pixels, or memory at this size)"},
           415: {"description": "not an image"}, 422: {"description": "damaged image or bad option"},
           503: {"description": "busy (every worker and queue place taken) or out of memory; see Retry-After"}}


@router.post("/api/colorize", tags=["api"], response_class=Response,
             responses={200: {"content": {"image/png": {}}, "description": "the colorized photo, PNG"}, **_ERRORS},
             openapi_extra={"requestBody": _COLORIZE_BODY})
async def colorize(request: Request) -> Response:
    """Colorize one photo (multipart form: ``image`` plus optional fields); returns a PNG of the same size."""
    state = request.app.state.tinct
    state.jobs.check()  # busy now: 503 before parsing (the body is already read: guard.BodyFirst)
    async with request.form(max_files=1, max_fields=8) as form:
        upload = form.get("image")
        if not isinstance(upload, UploadFile):
            raise HTTPException(422, "image: missing; send the photo as multipart form field 'image'")
        options = parse_options(form, state.models, state.default_model)
        data = await upload.read()
        filename = upload.filename
    if len(data) > state.settings.max_upload_bytes:
        raise UploadTooLarge(state.settings.max_upload_bytes)
    with state.jobs.take() as ticket:  # only now, with the whole upload in hand, a place in the pool
        started = time.perf_counter()
        png, (w, h) = await state.jobs.run(ticket, render, state.models[options.model].colorizer, data, options,
                                           state.settings.max_pixels, state.settings.max_job_bytes)
    headers = {"Content-Disposition": f'inline; filename="{safe_stem(filename)}-colorized.png"',
               "X-Tinct-Model": options.model, "X-Tinct-Size": f"{w}x{h}",
               "X-Tinct-Seconds": f"{time.perf_counter() - started:.3f}", "Cache-Control": "no-store"}
    return Response(png, media_type="image/png", headers=headers)


@router.get("/api/models", tags=["api"])
def list_models(request: Request) -> dict:
    """The models this server offers; the first is the default."""
    state = request.app.state.tinct
    return {"default": state.default_model, "models": [m.info() for m in state.models.values()]}


@router.get("/healthz", tags=["api"])
def healthz(request: Request) -> dict:
    """Liveness plus load: jobs running or waiting out of the pool's capacity."""
    state = request.app.state.tinct
    return {"status": "ok", "models": list(state.models), "jobs": state.jobs.taken, "capacity": state.jobs.capacity,
            "limits": {"max_upload_mb": state.settings.max_upload_mb, "max_megapixels": state.settings.max_megapixels,
                       "max_job_mb": state.settings.max_job_mb, "size": list(SIZE_RANGE)}}
