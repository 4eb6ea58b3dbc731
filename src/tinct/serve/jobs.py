"""CPU work off the event loop, with a bounded number of places.

A request takes a :class:`Ticket` once its upload is in hand (a slow client never holds a
place); with every place taken it is answered 503 at once (:class:`Busy`), so an
overloaded server never queues without bound. A ticket handed to the pool is given back
when the work really ends (done, failed or cancelled before it started), not when the
request goes away, so the pool's queue never holds more than ``workers + queue`` jobs.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any


class Busy(Exception):
    """Every worker and queue place is taken; the client should retry later."""

    def __init__(self, retry_after: int):
        super().__init__(f"server busy: every worker and queue place is taken; retry in {retry_after} s")
        self.retry_after = retry_after


class Ticket:
    """One place in the pool, released exactly once."""

    def __init__(self, pool: JobPool):
        self._pool = pool
        self._held = True
        self._handed_over = False

    def release(self) -> None:
        with self._pool._lock:
            if self._held:
                self._held = False
                self._pool._taken -= 1

    def __enter__(self) -> Ticket:
        return self

    def __exit__(self, *exc) -> None:
        if not self._handed_over:  # never reached the pool: give the place back now
            self.release()


class JobPool:
    """``workers`` threads plus ``queue`` waiting places.

    Args:
        workers: threads running jobs at once.
        queue: jobs allowed to wait for a thread.
        retry_after: seconds suggested to clients that are turned away.
    """

    def __init__(self, workers: int = 1, queue: int = 4, retry_after: int = 2):
        self.workers, self.capacity, self.retry_after = workers, workers + queue, retry_after
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="tinct-worker")
        self._lock = threading.Lock()
        self._taken = 0

    @property
    def taken(self) -> int:
        return self._taken

    def check(self) -> None:
        """:class:`Busy` when every place is taken right now (takes nothing)."""
        if self._taken >= self.capacity:
            raise Busy(self.retry_after)

    def take(self) -> Ticket:
        """A place, or :class:`Busy` when there is none (never waits)."""
        with self._lock:
            if self._taken >= self.capacity:
                raise Busy(self.retry_after)
            self._taken += 1
        return Ticket(self)

    async def run(self, ticket: Ticket, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on a worker thread under ``ticket``; await its result."""
        ticket._handed_over = True
        future: Future = self._executor.submit(fn, *args)
        future.add_done_callback(lambda _: ticket.release())  # also runs if cancelled while queued
        return await asyncio.wrap_future(future)

    def submit(self, ticket: Ticket, fn: Callable[..., Any], *args: Any) -> Future:
        """Start ``fn(*args)`` on a worker thread under ``ticket`` without waiting (a batch job:
        the request answers at once, the work goes on)."""
        ticket._handed_over = True
        future: Future = self._executor.submit(fn, *args)
        future.add_done_callback(lambda _: ticket.release())
        return future

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
