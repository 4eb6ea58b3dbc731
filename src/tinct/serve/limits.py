"""What one colorization may cost over REST: the working-size range, the memory budget as
HTTP answers, out of memory as 503.

The budget itself is the library's (:meth:`tinct.Colorizer.memory_needed` and
:meth:`~tinct.Colorizer.check_budget`, :mod:`tinct.budget`): estimated from the image's
header (size and mode, nothing decoded) and the working size before anything large is
allocated, the process's fixed cost (model, runtimes) included, exactly as ``tinct
colorize`` decides. What is the server's own:

- the ``size`` field is capped at :data:`SIZE_RANGE` (422 beyond);
- the limit is ``--max-job-mb`` (each app's colorizers carry it as their
  ``memory_budget``: :meth:`tinct.serve.settings.ModelEntry.with_memory_budget`), and a
  request over it is a 413 that names the estimate and the largest working size that fits;
- a failed allocation anyway (:func:`tinct.errors.is_out_of_memory`) is a 503 with
  ``Retry-After``;
- a client's value echoed in an error is cut to :data:`ECHO_LIMIT` characters (:func:`short`).
"""

from __future__ import annotations

import re

from fastapi import HTTPException

from ..budget import MemoryBudgetError

SIZE_RANGE = (32, 768)  # working size over REST; a photo at 768 fits the default --max-job-mb
MB = 2**20
ECHO_LIMIT = 64  # a client's value is echoed in an error cut to this many characters, never in full


def short(value, limit: int = ECHO_LIMIT):
    """A client's value as an error may echo it: scalars kept, anything long cut."""
    if value is None or isinstance(value, (bool, int, float)):
        return value
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


def short_message(message: str, limit: int = ECHO_LIMIT) -> str:
    """An error message that quotes a client's value (``HintError``'s do), fit to answer:
    each run of more than ``limit`` characters without a space is cut to ``limit``, and the
    whole to ``4 * limit``."""
    cut = re.sub(rf"\S{{{limit + 1},}}", lambda m: f"{m.group()[:limit]}...", message)
    return short(cut, 4 * limit)


def out_of_memory() -> HTTPException:
    return HTTPException(503, "out of memory for this image right now; retry later, or send a smaller image or size",
                         headers={"Retry-After": "10"})


def check_budget(colorizer, w: int, h: int, mode: str, size: int | None, limit: int) -> None:
    """Raise 413 when the colorizer's budget refuses a ``w x h`` image of ``mode`` at ``size``
    under ``limit`` bytes; the message gives the estimate and the largest working size that fits."""
    try:
        colorizer.check_budget((h, w), size, mode, limit)
    except MemoryBudgetError:
        raise HTTPException(413, too_large(colorizer, w, h, mode, size, limit)) from None


def too_large(colorizer, w: int, h: int, mode: str, size: int | None, limit: int) -> str:
    need = colorizer.memory_needed((h, w), size, mode)
    asked = int(size or colorizer.size)
    fits = largest_size_that_fits(colorizer, w, h, mode, asked, limit)
    hint = (f"size {fits} or less fits" if fits else
            "no working size fits: send a smaller image (or one less long and thin)")
    return (f"this {w}x{h} image needs about {need / MB:,.0f} MB to colorize at size {asked}, over the server's "
            f"{limit / MB:,.0f} MB limit per colorization (--max-job-mb); {hint}")


def largest_size_that_fits(colorizer, w: int, h: int, mode: str, below: int, limit: int) -> int | None:
    """The largest working size under ``below`` (a multiple of the model's stride, within
    :data:`SIZE_RANGE`) whose :meth:`~tinct.Colorizer.memory_needed` is within ``limit``."""
    stride = colorizer.spec.stride
    for s in range(below - below % stride, max(stride, SIZE_RANGE[0]) - 1, -stride):
        if s < below and colorizer.memory_needed((h, w), s, mode) <= limit:
            return s
    return None
