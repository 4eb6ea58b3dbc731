"""The REST API: ``POST /api/colorize``, ``GET /api/models``, ``GET /healthz``.

Every failure a client can cause is a 4xx with ``{"detail": "..."}``: 413 body or image
too large (pixels, or memory: the colorizer's budget, :mod:`.limits`), 415 not an image, 422 damaged image or bad
option, 503 busy or out of memory (with ``Retry-After``). The body has been read in full
(:class:`.guard.BodyFirst`) before a request takes a worker place; uploads are decoded,
colorized and encoded on the worker pool.

Colour hints (docs/GUIDE.md): the ``hints`` field holds a hints file's JSON
(:func:`tinct.hints.from_text`, checked before a worker place is taken), the ``reference``
file a colour photo, decoded like the photo (same pixel limit and memory budget, before
it) and replacing the hints' own reference. Bad hints, or hints for a model that takes
none, are a 422 whose message echoes the client's values cut short (:func:`.limits.short_message`).
"""

from __future__ import annotations

import io
import re
import time
from contextlib import contextmanager
from dataclasses import dataclass

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from PIL import Image, UnidentifiedImageError
from starlette.datastructures import UploadFile

from .. import hints
from ..budget import MemoryBudgetError
from ..errors import is_out_of_memory
from ..io import ImageError, load_image, open_header
from .guard import UploadTooLarge
from .limits import MB, SIZE_RANGE, check_budget, out_of_memory, short_message
from .photos import PHOTO_FIELD_DOC, StoredPhoto, stored_or_404
from .restoring import parse_restore

router = APIRouter()

SATURATION_RANGE = (0.0, 4.0)
TEMPERATURE_RANGE = (0.01, 10.0)
MAX_HINTS_BYTES = MB  # the hints JSON; 1000 points (hints.MAX_POINTS) and a palette take ~100 KB


@dataclass
class Options:
    model: str
    size: int | None
    saturation: float
    temperature: float | None
    guide: hints.Guide | None = None
    restore: tuple[str, ...] | None = None  # steps to restore the photo with first (.restoring)


def parse_hints(form, colorizer) -> hints.Guide | None:
    """The ``hints`` field (a hints file's JSON, as text or a file) as a Guide, or None; 422
    for bad hints or for hints given to a model that takes none."""
    field = form.get("hints")
    text = field.file.read(MAX_HINTS_BYTES + 1) if isinstance(field, UploadFile) else field
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise HTTPException(422, "hints: not UTF-8 text") from None
    if text is not None and len(text) > MAX_HINTS_BYTES:
        raise HTTPException(422, f"hints: over {MAX_HINTS_BYTES // MB} MB")
    if text is None or not text.strip():
        return None
    try:
        guide = hints.from_text(text, "hints")
    except hints.HintError as e:
        raise HTTPException(422, short_message(str(e))) from None
    if guide:
        require_hints(colorizer, reference=guide.reference is not None)
    return guide


def require_hints(colorizer, reference: bool = False) -> None:
    """422 unless the model can follow these hints (:meth:`tinct.Colorizer.require_hints`'s message)."""
    try:
        colorizer.require_hints(reference)
    except hints.HintError as e:
        raise HTTPException(422, str(e)) from None


def parse_options(form, models: dict, default_model: str) -> Options:
    """Read and check the optional form fields; 422 naming the field when one is wrong."""
    model = str(form.get("model") or default_model)
    if model not in models:
        raise HTTPException(422, f"model: unknown model {model[:40]!r}; available: {', '.join(models)}")
    return Options(model=model,
                   size=number_field(form, "size", int, SIZE_RANGE),
                   saturation=number_field(form, "saturation", float, SATURATION_RANGE, default=1.0),
                   temperature=number_field(form, "temperature", float, TEMPERATURE_RANGE),
                   guide=parse_hints(form, models[model].colorizer), restore=parse_restore(form))


def number_field(form, name: str, kind, bounds, default=None):
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


def decode_photo(colorizer, data: bytes, size: int | None, max_pixels: int, max_job_bytes: int,
                 filename: str = "upload", restorer=None) -> StoredPhoto:
    """Decode an upload (the pixel limit and the colorizer's memory budget checked from the
    header first) down to what colorizing it needs: its full-resolution lightness and alpha;
    with ``restorer`` (a :class:`tinct.restore.Restorer`, its budget checked too), restored first.
    Raises ImageError / MemoryBudgetError (see :func:`answers`) or HTTPException 413."""
    seen = {"mode": "RGB"}

    def budget(w: int, h: int, mode: str) -> None:  # 413 from the header, before decoding
        seen["mode"] = mode
        check_budget(colorizer, w, h, mode, size, max_job_bytes)
        if restorer is not None:
            restorer.check_budget((h, w), mode=mode)

    photo = load_image(data, max_pixels=max_pixels, name="upload", check=budget)
    if restorer is not None:
        photo = restorer.restore_photo(photo)
    photo = colorizer.read_photo(photo, size)
    return StoredPhoto(colorizer.luminance(photo.pixels), photo.alpha, filename, seen["mode"])


def decode_reference(colorizer, reference: bytes, size: int | None, max_pixels: int, max_job_bytes: int):
    """A reference photo's palette, a global hint ``(314,)`` (:func:`tinct.hints.reference_hint`),
    decoded with the photo's pixel limit and memory budget (the messages naming the reference)."""
    def budget(w: int, h: int, mode: str) -> None:
        try:
            check_budget(colorizer, w, h, mode, size, max_job_bytes)
        except HTTPException as e:
            raise HTTPException(e.status_code, f"reference: {e.detail}") from None

    ref = load_image(reference, max_pixels=max_pixels, name="reference", check=budget)
    return hints.reference_hint(ref)  # only the palette is kept: the photo is decoded after, not beside it


def predict_stored(colorizer, photo: StoredPhoto, options: Options, guide: hints.Guide | None, max_job_bytes: int):
    """The low-resolution ab ``(2, h, w)`` (Lab units, saturation not applied) a colorization of
    ``photo`` is composed from: the steps of :meth:`tinct.Colorizer.colorize` after decoding."""
    check_budget(colorizer, photo.width, photo.height, photo.mode, options.size, max_job_bytes)
    ab = colorizer.predict_ab_batched([photo.L], options.size, options.temperature, 8, [guide or None])[0]
    colorizer.require_finite(ab, photo.name)
    return ab


@contextmanager
def answers(max_pixels: int, first: bytes | None = None, then: bytes | None = None):
    """Worker-side errors as HTTP answers: 413 over the budget, 413/415/422 for a bad image
    (``first``, or ``then`` once ``step.next()`` was called: which upload failed), 422
    for bad hints (a grey reference, a pixel point outside the photo), 503 out of memory."""
    step = _Step(first, then)
    try:
        yield step
    except MemoryBudgetError as e:  # the colorizer's own check of the decoded photo (same budget)
        raise HTTPException(413, str(e)) from None
    except ImageError as e:
        status = _status_for_bad_image(step.data, max_pixels) if step.data is not None else 422
        raise HTTPException(status, str(e)) from None
    except hints.HintError as e:
        raise HTTPException(422, short_message(str(e))) from None
    except Exception as e:
        if is_out_of_memory(e):
            raise out_of_memory() from None
        raise


class _Step:
    def __init__(self, first, then):
        self.data, self._then = first, then

    def next(self) -> None:
        self.data = self._then


def render(colorizer, data: bytes | None, options: Options, max_pixels: int, max_job_bytes: int,
           reference: bytes | None = None, photo: StoredPhoto | None = None,
           restorer=None) -> tuple[bytes, tuple[int, int]]:
    """Worker job: decode ``data`` (restored with ``restorer`` when given; or take the stored
    ``photo``), colorize, encode PNG. A ``reference`` photo is decoded first, and only its
    palette kept (it replaces ``options.guide``'s reference).

    Returns (png bytes, (width, height)). Raises HTTPException (:func:`answers`).
    """
    guide = hints.Guide().merged(options.guide)  # each point carries its size (the file's point_size)
    with answers(max_pixels, reference if reference is not None else data, data) as step:
        if reference is not None:
            guide = guide.merged(hints.Guide(reference=decode_reference(colorizer, reference, options.size,
                                                                        max_pixels, max_job_bytes)))
            step.next()
        if photo is None:
            photo = decode_photo(colorizer, data, options.size, max_pixels, max_job_bytes, restorer=restorer)
        ab = predict_stored(colorizer, photo, options, guide, max_job_bytes)
        out = colorizer.render(photo.L, ab, options.saturation, photo.alpha)
        buf = io.BytesIO()
        out.save(buf, format="PNG", compress_level=3)  # 3: much faster than the default, files ~10% larger
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
        "type": "object",
        "properties": {
            "image": {"type": "string", "format": "binary",
                      "description": "the photo (JPEG, PNG, TIFF, WebP, BMP, GIF); required unless photo is given"},
            "photo": {"type": "string", "description": PHOTO_FIELD_DOC},
            "model": {"type": "string", "description": "model name from /api/models (default: the server's first)"},
            "size": {"type": "integer", "minimum": SIZE_RANGE[0], "maximum": SIZE_RANGE[1],
                     "description": "working size: short side the network sees (default: the model's)"},
            "saturation": {"type": "number", "minimum": SATURATION_RANGE[0], "maximum": SATURATION_RANGE[1],
                           "default": 1.0, "description": "scale the predicted colour"},
            "temperature": {"type": "number", "minimum": TEMPERATURE_RANGE[0], "maximum": TEMPERATURE_RANGE[1],
                            "description": "annealed-mean temperature for distribution models"},
            "restore": {"type": "string", "description": "restore the photo before colouring it, as tinct colorize "
                                                         "--restore: 1 (scratches,grain) or steps such as "
                                                         "scratches,grain,tone; empty: no (a stored photo keeps "
                                                         "what it was uploaded with)"},
            "hints": {"type": "string", "maxLength": MAX_HINTS_BYTES,
                      "description": "colour hints: a hints file's JSON, as the web editor saves it "
                                     '(e.g. {"version": 1, "units": "relative", "points": [{"x": 0.5, "y": 0.2, '
                                     '"colour": "#ff0000"}]}; docs/GUIDE.md); any model'},
            "reference": {"type": "string", "format": "binary",
                          "description": "a colour photo whose palette guides the whole result (replaces the "
                                         "hints' reference); same limits as image; a model over the 313 ab bins (the default) or a "
                                         "hint model (422 otherwise)"},
        }}}},
}
_ERRORS = {408: {"description": "the body did not arrive within the body timeout"},
           413: {"description": "upload or image too large (bytes, pixels, or memory at this size)"},
           415: {"description": "not an image (photo or reference)"},
           422: {"description": "damaged image, bad option, bad hints, or hints for a model that takes none"},
           503: {"description": "busy (every worker and queue place taken) or out of memory; see Retry-After"}}


@router.post("/api/colorize", tags=["api"], response_class=Response,
             responses={200: {"content": {"image/png": {}}, "description": "the colorized photo, PNG"}, **_ERRORS},
             openapi_extra={"requestBody": _COLORIZE_BODY})
async def colorize(request: Request) -> Response:
    """Colorize one photo (multipart form: ``image`` plus optional fields); returns a PNG of the same size."""
    state = request.app.state.tinct
    state.jobs.check()  # busy now: 503 before parsing (the body is already read: guard.BodyFirst)
    async with request.form(max_files=3, max_fields=10) as form:
        upload, ref = form.get("image"), form.get("reference")
        photo = stored_photo(form, upload, state.photos)
        if reference_is_text(ref):
            ref = None
        options = parse_options(form, state.models, state.default_model)
        data = await upload.read() if photo is None else None
        reference = await ref.read() if ref is not None else None
        if reference == b"" and not ref.filename:  # a form's empty file input: no reference
            reference = None
        filename = upload.filename if photo is None else photo.name
    if reference is not None:
        require_hints(state.models[options.model].colorizer, reference=True)
    if len(data or b"") + len(reference or b"") > state.settings.max_upload_bytes:
        raise UploadTooLarge(state.settings.max_upload_bytes)
    with state.jobs.take() as ticket:  # only now, with the whole upload in hand, a place in the pool
        started = time.perf_counter()
        png, (w, h) = await state.jobs.run(ticket, render, state.models[options.model].colorizer, data, options,
                                           state.settings.max_pixels, state.settings.max_job_bytes, reference, photo,
                                           restorer_for(state, options, photo))
    headers = {"Content-Disposition": f'inline; filename="{safe_stem(filename)}-colorized.png"',
               "X-Tinct-Model": options.model, "X-Tinct-Size": f"{w}x{h}",
               "X-Tinct-Seconds": f"{time.perf_counter() - started:.3f}", "Cache-Control": "no-store"}
    return Response(png, media_type="image/png", headers=headers)


def restorer_for(state, options: Options, photo: StoredPhoto | None = None):
    """The restorer of ``options.restore`` for a photo sent now; None when it asks for none, or
    when the photo is a stored one (restored, or not, when it was uploaded)."""
    return state.restorers.get(options.restore) if options.restore and photo is None else None


def stored_photo(form, upload, store) -> StoredPhoto | None:
    """The ``photo`` field's stored photo (404 when unknown), or None when ``image`` is sent; 422 for neither or both."""
    key = form.get("photo")
    if key is not None and str(key).strip():
        if isinstance(upload, UploadFile):
            raise HTTPException(422, "image and photo: send one of them, not both")
        return stored_or_404(store, str(key).strip())
    if not isinstance(upload, UploadFile):
        raise HTTPException(422, "image: missing; send the photo as multipart form field 'image' "
                                 "(or a photo id from POST /api/photos as 'photo')")
    return None


def reference_is_text(ref) -> bool:
    """A form's empty file input arrives as an empty text field (no reference); other text is a 422."""
    if isinstance(ref, str):
        if ref.strip():
            raise HTTPException(422, "reference: expected an image file, got a text field")
        return True
    return False


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
