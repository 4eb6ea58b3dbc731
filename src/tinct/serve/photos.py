"""Photos the web editor works on, decoded once and kept for a while (``POST /api/photos``).

An edit in the hint editor re-renders the same photo with other hints: sending and
decoding the photo again each time would cost more than the network. So the page uploads
it once; the server keeps its full-resolution lightness (what every colorization of it
needs: :meth:`tinct.Colorizer.luminance`, float32, 4 bytes a pixel) under a random id,
and later requests name the id (the ``photo`` field) instead of sending the image.

The store is bounded: at most ``max_bytes`` of lightness and ``max_items`` photos, the
least recently used dropped first, and a photo unused for ``ttl`` seconds is dropped. A
dropped or unknown id is a 404 saying to upload the photo again (the page does so itself).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
from fastapi import HTTPException

from .limits import MB

PHOTO_FIELD_DOC = ("a photo id from POST /api/photos, instead of image (the photo is not sent or decoded again; "
                   "404 once the server has dropped it: upload it again)")


@dataclass
class StoredPhoto:
    """A decoded photo as the editor needs it.

    Attributes:
        L: full-resolution lightness ``(H, W)``, float32, in [0, 100].
        alpha: the photo's alpha channel ``(H, W)`` uint8, or None.
        name: the upload's file name (for messages and download names).
        mode: the decoded image's PIL mode as its header gave it (for the memory budget).
    """

    L: torch.Tensor
    alpha: np.ndarray | None
    name: str
    mode: str

    @property
    def width(self) -> int:
        return int(self.L.shape[1])

    @property
    def height(self) -> int:
        return int(self.L.shape[0])

    @property
    def nbytes(self) -> int:
        return self.L.numel() * self.L.element_size() + (self.alpha.nbytes if self.alpha is not None else 0)


class PhotoStore:
    """Photos by random id, least recently used dropped first; thread-safe.

    Args:
        max_bytes: the stored photos' bytes at most, all together.
        max_items: photos kept at most.
        ttl: seconds a photo stays after its last use.
    """

    def __init__(self, max_bytes: int, max_items: int = 64, ttl: float = 1800.0, clock=time.monotonic):
        self.max_bytes, self.max_items, self.ttl, self._clock = int(max_bytes), int(max_items), float(ttl), clock
        self._items: OrderedDict[str, tuple[StoredPhoto, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._items)

    @property
    def bytes(self) -> int:
        return self._bytes

    def fits(self, nbytes: int) -> bool:
        return nbytes <= self.max_bytes

    def add(self, photo: StoredPhoto) -> str:
        """Keep ``photo``; its id. Older photos go to make room.

        Raises:
            HTTPException: 413 when the photo alone is over ``max_bytes``.
        """
        if not self.fits(photo.nbytes):
            raise HTTPException(413, f"{photo.width}x{photo.height} is too large for the editor's photo store "
                                     f"({photo.nbytes / MB:,.0f} MB of {self.max_bytes / MB:,.0f} MB); "
                                     "send it to /api/colorize instead")
        key = secrets.token_urlsafe(16)
        with self._lock:
            self._expire()
            while self._items and (len(self._items) >= self.max_items or self._bytes + photo.nbytes > self.max_bytes):
                self._drop(next(iter(self._items)))
            self._items[key] = (photo, self._clock())
            self._bytes += photo.nbytes
        return key

    def get(self, key: str) -> StoredPhoto | None:
        """The photo under ``key`` (and it counts as used now), or None."""
        with self._lock:
            self._expire()
            item = self._items.get(key)
            if item is None:
                return None
            self._items[key] = (item[0], self._clock())
            self._items.move_to_end(key)
            return item[0]

    def _drop(self, key: str) -> None:
        photo, _ = self._items.pop(key)
        self._bytes -= photo.nbytes

    def _expire(self) -> None:
        now = self._clock()
        for key in [k for k, (_, used) in self._items.items() if now - used > self.ttl]:
            self._drop(key)


def stored_or_404(store: PhotoStore, key) -> StoredPhoto:
    """The photo of a ``photo`` field's id; 404 naming what to do when it is unknown or dropped."""
    photo = store.get(key) if isinstance(key, str) else None
    if photo is None:
        raise HTTPException(404, "photo: unknown or expired id (the server keeps photos for a while only); "
                                 "upload the photo again: POST /api/photos")
    return photo
