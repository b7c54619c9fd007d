"""
`ServerProbe`: learn, in one direct connection attempt, why the pool cannot connect.

psycopg_pool opens connections in its own threads and, when the server
refuses, logs the reason and tries again later; a caller waiting for a
connection learns nothing until the pool timeout passes. The store instead
asks the server directly whenever it has reason to doubt it (before its first
connection, and after a connection failed), so a refused connection is
reported at once, with the server's own words.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from typing import Final

import attrs
from psycopg import errors as pg_errors

__all__ = ["AsyncServerProbe", "ServerProbe"]

_FRESH_FOR: Final = 0.5
"""Seconds a probe's outcome is reused, however many callers ask at once."""


@attrs.define
class _Attempt:
    done: threading.Event = attrs.field(factory=threading.Event)
    at: float = 0.0
    error: BaseException | None = None
    # Called once the outcome is known, from the attempt's thread.
    _waiters: list[Callable[[], None]] = attrs.field(factory=list)
    _lock: threading.Lock = attrs.field(factory=threading.Lock)

    def when_done(self, wake: Callable[[], None]) -> None:
        """Call *wake* once the outcome is known: now, if it is already."""
        with self._lock:
            if not self.done.is_set():
                self._waiters.append(wake)
                return
        wake()

    def finish(self) -> None:
        with self._lock:
            self.done.set()
            waiters, self._waiters = self._waiters, []
        for wake in waiters:
            wake()


@attrs.define
class ServerProbe:
    """
    One connection attempt at a time; its outcome shared by every caller for half a second.

    The attempt runs in a thread of its own so that a caller with a short
    budget (a health check) can stop waiting while libpq, which counts
    ``connect_timeout`` in whole seconds of at least 2, is still trying.

    Args:
        connect: Opens and closes one connection; raises what psycopg raises.
    """

    connect: Callable[[], None]
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _last: _Attempt | None = attrs.field(default=None, init=False)
    _running: _Attempt | None = attrs.field(default=None, init=False)

    def check(self, wait: float) -> BaseException | None:
        """
        Return why the server cannot be reached now, or ``None`` when it can.

        Args:
            wait: Most seconds to wait for the attempt's outcome.

        Returns:
            ``None`` when a connection succeeded; the psycopg error when it
            failed; a `psycopg.errors.ConnectionTimeout` when no outcome
            came within *wait* seconds.

        """
        attempt = self.attempt()
        if not attempt.done.wait(wait):
            return no_answer_within(wait)
        return attempt.error

    def attempt(self) -> _Attempt:
        """Return the last attempt while it is fresh, or the one under way (started if none is)."""
        with self._lock:
            last = self._last
            if last is not None and time.monotonic() - last.at < _FRESH_FOR:
                return last
            attempt = self._running
            if attempt is None:
                attempt = self._running = _Attempt()
                threading.Thread(
                    target=self._run,
                    args=(attempt,),
                    name="eventstore-probe",
                    daemon=True,
                ).start()
            return attempt

    def forget(self) -> None:
        """Drop the last outcome, so the next `check` asks the server again."""
        with self._lock:
            self._last = None

    def _run(self, attempt: _Attempt) -> None:
        try:
            self.connect()
        except BaseException as exc:  # whatever it is, it is the answer
            # (and the attempt must finish, or every later caller waits it out)
            attempt.error = exc
        attempt.at = time.monotonic()
        with self._lock:
            self._last = attempt
            self._running = None
        attempt.finish()


def no_answer_within(wait: float) -> pg_errors.ConnectionTimeout:
    """Return the outcome of a probe that had no answer within *wait* seconds."""
    return pg_errors.ConnectionTimeout(
        f"the server gave no answer within {wait:g} seconds"
    )


@attrs.define
class AsyncServerProbe:
    """
    `ServerProbe` for an async store: the same shared attempt, awaited off the event loop.

    The attempt runs in a thread of its own (libpq's connect is blocking),
    and each caller awaits its outcome on the event loop: a thousand
    callers waiting out a silent server hold no thread each, and leave the
    loop's executor free for the work that needs it (psycopg resolves host
    names there).

    Args:
        connect: Opens and closes one connection; raises what psycopg raises.
    """

    connect: Callable[[], None]
    _probe: ServerProbe = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._probe = ServerProbe(self.connect)

    async def check(self, wait: float) -> BaseException | None:
        """Await the outcome of `ServerProbe.check`, without blocking the event loop."""
        attempt = self._probe.attempt()
        if attempt.done.is_set():
            return attempt.error
        loop = asyncio.get_running_loop()
        answered: asyncio.Future[None] = loop.create_future()

        def settle() -> None:
            if not answered.done():  # not already given up on
                answered.set_result(None)

        def wake() -> None:
            # From the attempt's thread; the loop may be gone by then.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle)

        attempt.when_done(wake)
        try:
            # Not wait_for: on Python 3.11 it swallows a cancellation that
            # comes as the answer does (gh-86296), and the cancelled call
            # went on to write.
            async with asyncio.timeout(wait):
                await answered
        except TimeoutError:
            return no_answer_within(wait)
        return attempt.error

    def forget(self) -> None:
        """Drop the last outcome, so the next `check` asks the server again."""
        self._probe.forget()
