"""The web page's "Restore first" (issue 27): the ``restore`` field of the photo routes.

``POST /api/photos``, ``/api/colorize``, ``/api/ab`` and ``/api/batch`` take ``restore``:
empty or absent (no restoration), ``1`` / ``on`` / ``default`` (the default steps,
``scratches,grain``, as ``tinct colorize --restore``), or steps as ``--restore`` takes them
(``scratches,grain,tone``, ``all``). The photo is then restored right after decoding, on
the worker, with :class:`tinct.restore.Restorer`, the code of ``tinct restore``; a stored
photo keeps its restored lightness, which the page shows on the "before" side of its slider.

The damage model is loaded by the first request that asks for a restoration (the server
starts as fast without it) and shared by every request after. For ``/api/photos``,
``/api/colorize`` and ``/api/batch`` that first load runs in the request's handler, on the
event loop (about half a second, once), so that a model that cannot be loaded is a 503 before
the photo takes a worker's place; ``/api/ab`` and ``/api/suggest`` with an image sent load it
on their worker.
"""

from __future__ import annotations

import threading

from fastapi import HTTPException

from ..restore import DEFAULT_STEPS, Restorer, RestoreError, parse_steps

ON = {"1", "on", "true", "yes", "default"}
OFF = {"", "0", "off", "false", "no"}


def parse_restore(form) -> tuple[str, ...] | None:
    """The ``restore`` field as steps in pipeline order, or None for no restoration; 422 naming it when wrong."""
    text = form.get("restore")
    if text is None:
        return None
    if not isinstance(text, str):
        raise HTTPException(422, "restore: expected text (steps such as scratches,grain), not a file")
    word = text.strip().lower()
    if word in OFF:
        return None
    if word in ON:
        return tuple(DEFAULT_STEPS)
    try:
        return parse_steps(word)
    except RestoreError as e:
        raise HTTPException(422, f"restore: {e}") from None


class Restorers:
    """One :class:`Restorer` per set of steps, sharing one loaded damage model; thread-safe.

    Args:
        damage_model: bundled name, checkpoint or run folder (``tinct serve --damage-model``).
        memory_budget: bytes one restoration may need (the server's per-job budget).
    """

    def __init__(self, damage_model: str = "default", memory_budget: int | None = None, backend: str = "auto"):
        self.damage_model, self.memory_budget, self.backend = damage_model, memory_budget, backend
        self._by_steps: dict[tuple[str, ...], Restorer] = {}
        self._lock = threading.Lock()

    def get(self, steps: tuple[str, ...]) -> Restorer:
        """The restorer of ``steps``; 503 naming the cause when the damage model cannot be loaded."""
        with self._lock:
            found = self._by_steps.get(steps)
            if found is None:
                found = self._by_steps[steps] = self._make(steps)
            return found

    def _make(self, steps: tuple[str, ...]) -> Restorer:
        from ..backends import BackendError
        from ..checkpoint import CheckpointError

        loaded = next((r for r in self._by_steps.values() if r.net is not None), None)
        try:
            if "scratches" not in steps:
                made = Restorer(None, steps)
            elif loaded is not None:
                made = Restorer(loaded.model, steps, loaded.net, loaded.meta)
            else:
                made = Restorer.load(self.damage_model, steps, backend=self.backend)
        except (RestoreError, CheckpointError, BackendError) as e:
            raise HTTPException(503, f"restore: this server cannot restore photos: {e}") from None
        if self.memory_budget:
            made.memory_budget = self.memory_budget
        return made
