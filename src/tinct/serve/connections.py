"""uvicorn's side of the limits: a header timeout, the connection cap, keep-alive.

uvicorn times out idle keep-alive connections (``timeout_keep_alive``) and caps concurrent
connections (``limit_concurrency``: 503 beyond), but waits forever for the request line
and headers of a connection that sends them slowly or never finishes them. The protocol
here is uvicorn's own h11 one, plus one timer: the headers of each request must arrive
within ``header_timeout`` seconds of the connection opening (or of the previous answer on
a kept-alive connection), otherwise the connection is closed. The body's own deadline is
:class:`tinct.serve.guard.BodyFirst`.
"""

from __future__ import annotations

import asyncio

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeaderTimeoutH11(H11Protocol):
    """uvicorn's h11 protocol, closing connections whose request headers are not in within ``header_timeout``."""

    header_timeout: float = 10.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        self._header_timer: asyncio.TimerHandle | None = None
        super().connection_made(transport)
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def handle_events(self) -> None:
        super().handle_events()
        if self.conn.their_state is not h11.IDLE:  # a request line and its headers are in
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may already parse a pipelined request
        if not self.transport.is_closing() and self.conn.their_state is h11.IDLE:
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        self._header_timer = self.loop.call_later(self.header_timeout, self._expired)

    def _disarm(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _expired(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


def protocol(header_timeout: float) -> type[HeaderTimeoutH11]:
    """The protocol class to give uvicorn (``uvicorn.run(app, http=...)``) for this timeout."""
    return type("HeaderTimeoutH11", (HeaderTimeoutH11,), {"header_timeout": float(header_timeout)})


def uvicorn_options(settings) -> dict:
    """Keyword arguments for ``uvicorn.run`` from :class:`tinct.serve.ServeSettings`."""
    return {"host": settings.host, "port": settings.port, "log_level": "warning", "timeout_graceful_shutdown": 5,
            "http": protocol(settings.header_timeout), "limit_concurrency": settings.max_connections,
            "timeout_keep_alive": settings.keep_alive_timeout, "h11_max_incomplete_event_size": 16 * 1024}
