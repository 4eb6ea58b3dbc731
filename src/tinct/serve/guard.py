"""ASGI middleware around the whole app: what every request goes through before a route.

    Shield          outermost: security headers on every response; an error no route
                    handled becomes one JSON answer (503 for out of memory, 500 otherwise)
                    and one log line, never a traceback sent to the client
    BodyFirst       the whole body is read, within ``--body-timeout`` and the upload limit,
                    before the app sees the request: a slow client holds a connection, never
                    a worker place; a client that goes away mid-upload is simply dropped
    allowed_hosts   the Host names starlette's TrustedHostMiddleware lets in

The header timeout and the connection cap are uvicorn's side (:mod:`.connections`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket

from fastapi import HTTPException
from starlette.datastructures import MutableHeaders

from ..errors import is_out_of_memory
from .limits import MB, out_of_memory

log = logging.getLogger("tinct.serve")

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'; base-uri 'self'; object-src 'none'; form-action 'self'",
    "Referrer-Policy": "no-referrer",
    "Cross-Origin-Opener-Policy": "same-origin",
}
LOCAL_HOSTS = ["localhost", "127.0.0.1", "[::1]"]
_WILDCARD_BINDS = {"", "0.0.0.0", "::", "[::]"}


class UploadTooLarge(HTTPException):
    """The body (or the file in it) is over ``--max-upload-mb`` (413)."""

    def __init__(self, limit: int):
        super().__init__(413, f"upload larger than the {limit / MB:.3g} MB limit")


async def send_json(send, status: int, detail: str, headers: dict | None = None, close: bool = False) -> None:
    """A complete ``{"detail": ...}`` response, straight on the ASGI ``send``."""
    body = json.dumps({"detail": detail}).encode()
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode(), str(v).encode()) for k, v in (headers or {}).items()]
    if close:
        raw.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class Shield:
    """Outermost middleware: security headers everywhere, and no unhandled error reaches the client raw."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = False

        async def send_secured(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers.setdefault(name, value)
            await send(message)

        try:
            await self.app(scope, receive, send_secured)
        except Exception as exc:  # noqa: BLE001 - the one place every unhandled error ends
            where = f"{scope.get('method')} {scope.get('path')}"
            if is_out_of_memory(exc):
                log.warning("%s: out of memory (%s)", where, str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__)
            else:
                log.error("%s: internal error", where, exc_info=exc)
            if started:  # the answer is half sent: nothing else can be said on this connection
                return
            if is_out_of_memory(exc):
                oom = out_of_memory()
                return await send_json(send_secured, oom.status_code, oom.detail, oom.headers)
            await send_json(send_secured, 500, "internal error (logged on the server)")


class BodyFirst:
    """Read the request body in full before the app runs: within a deadline, under a size limit.

    Args:
        max_bytes: the upload limit; a body over ``max_bytes + slack`` is refused (413): from
            its ``Content-Length`` before anything is read, or as it streams (chunked).
        timeout: seconds for the whole body to arrive, from the end of the headers (408 after).
        max_buffered: bytes of bodies held at once by all requests together; a request that
            would pass it gets 503 (the memory a crowd of uploads may take is bounded).
        slack: room for the multipart form around a file of ``max_bytes``.
    """

    def __init__(self, app, max_bytes: int, timeout: float = 60.0, max_buffered: int = 200 * MB,
                 slack: int = 64 * 1024):
        self.app, self.max_bytes, self.body_limit = app, max_bytes, max_bytes + slack
        self.timeout, self.max_buffered = timeout, max_buffered
        self.buffered = 0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.body_limit):
            if not length.isdigit():
                return await send_json(send, 400, "bad Content-Length", close=True)
            return await send_json(send, 413, UploadTooLarge(self.max_bytes).detail, close=True)
        chunks: list[bytes] = []
        held = 0
        try:
            try:
                async with asyncio.timeout(self.timeout):
                    while True:
                        message = await receive()
                        if message["type"] == "http.disconnect":
                            return  # the client went away mid-upload: no one to answer, nothing to log
                        body = message.get("body", b"")
                        if held + len(body) > self.body_limit:
                            return await send_json(send, 413, UploadTooLarge(self.max_bytes).detail, close=True)
                        if self.buffered + len(body) > self.max_buffered:
                            return await send_json(send, 503, "server busy: too many uploads arriving at once; "
                                                   "retry in 2 s", {"Retry-After": "2"}, close=True)
                        self.buffered += len(body)
                        held += len(body)
                        chunks.append(body)
                        if not message.get("more_body", False):
                            break
            except TimeoutError:
                return await send_json(send, 408, f"request body not received within {self.timeout:g} s", close=True)
            body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
            chunks.clear()
            replayed = False

            async def replay():
                nonlocal replayed
                if replayed:
                    return await receive()  # after the body: only a disconnect can come
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}

            await self.app(scope, replay, send)
        finally:
            self.buffered -= held


def allowed_hosts(bind: str, extra: list[str] | None) -> list[str]:
    """Host header names to accept: localhost, the bound address, the machine's own names
    when bound to every interface, and ``extra`` (``["*"]`` accepts any)."""
    hosts = list(LOCAL_HOSTS)
    if bind in _WILDCARD_BINDS:
        hosts += _own_names()
    else:
        hosts.append(f"[{bind}]" if ":" in bind and not bind.startswith("[") else bind)
    hosts += list(extra or [])
    return list(dict.fromkeys(h.lower() for h in hosts if h))


def _own_names() -> list[str]:
    """This machine's host name, its FQDN and the addresses they resolve to, plus the
    address of the interface that routes outwards (no packet is sent)."""
    names = [socket.gethostname(), socket.getfqdn()]
    try:
        for *_, addr in socket.getaddrinfo(socket.gethostname(), None):
            names.append(f"[{addr[0]}]" if ":" in addr[0] else addr[0])
    except OSError:
        pass
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect(("192.0.2.1", 9))  # TEST-NET-1: picks the outgoing interface, sends nothing
            names.append(s.getsockname()[0])
    except OSError:
        pass
    return names
