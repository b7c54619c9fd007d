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
        with self._lock:
            last = self._last
            if last is not None and time.monotonic() - last.at < _FRESH_FOR:
                return last.error
            attempt = self._running
            if attempt is None:
                attempt = self._running = _Attempt()
                threading.Thread(
                    target=self._run,
                    args=(attempt,),
                    name="eventstore-probe",
                    daemon=True,
                ).start()
        if not attempt.done.wait(wait):
            return pg_errors.ConnectionTimeout(
                f"the server gave no answer within {wait:g} seconds"
            )
        return attempt.error

    def forget(self) -> None:
        """Drop the last outcome, so the next `check` asks the server again."""
        with self._lock:
            self._last = None

    def _run(self, attempt: _Attempt) -> None:
        try:
            self.connect()
        except Exception as exc:  # whatever it is, it is the answer
            attempt.error = exc
        attempt.at = time.monotonic()
        with self._lock:
            self._last = attempt
            self._running = None
        attempt.done.set()


@attrs.define
class AsyncServerProbe:
    """
    `ServerProbe` for an async store: the same shared attempt, awaited off the event loop.

    The attempt and the wait for it run in a worker thread (libpq's
    connect is blocking), so other tasks run meanwhile.

    Args:
        connect: Opens and closes one connection; raises what psycopg raises.
    """

    connect: Callable[[], None]
    _probe: ServerProbe = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        self._probe = ServerProbe(self.connect)

    async def check(self, wait: float) -> BaseException | None:
        """Await `ServerProbe.check` in a worker thread."""
        return await asyncio.to_thread(self._probe.check, wait)

    def forget(self) -> None:
        """Drop the last outcome, so the next `check` asks the server again."""
        self._probe.forget()
