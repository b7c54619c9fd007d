"""
`IdleCheck`: the pool's check of its idle connections, waited for only so long.

After a connection is found broken the store has the pool test its idle
ones (psycopg_pool's ``check``), so that the next call, or a read's retry,
gets a live connection rather than another dead one. The pool tests them
one after another, each with a round trip that has no time limit: on a
network that drops packets, each waits as long as TCP does. So the check
runs on its own (a thread, or a task), one at a time, and the call that
asked waits for it at most as long as it would wait for the server's own
answer; the check goes on meanwhile, and the connections it holds are out
of the pool until it is done with them.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any, Final

import attrs
import psycopg_pool

__all__ = ["AsyncIdleCheck", "IdleCheck"]

_log = logging.getLogger("eventstore.postgres")

_STOP_WAIT: Final = 1.0
"""Most seconds closing an async store waits for a check it cancelled."""


@attrs.define
class IdleCheck:
    """
    One check of a pool's idle connections at a time, in a thread of its own.

    Args:
        pool: The pool whose idle connections are checked.
    """

    pool: psycopg_pool.ConnectionPool[Any]
    _running: threading.Thread | None = attrs.field(default=None, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)

    def run(self, wait: float) -> None:
        """
        Start a check unless one is under way, and wait for it at most *wait* seconds.

        Never raises: a check that fails (the server still down) is logged,
        and the calls after it say what is wrong.
        """
        with self._lock:
            running = self._running
            if running is None or not running.is_alive():
                running = self._running = threading.Thread(
                    target=self._check, name="eventstore-pool-check", daemon=True
                )
                running.start()
        running.join(wait)

    def _check(self) -> None:
        try:
            self.pool.check()
        except Exception:  # nobody waits for it: the next calls will tell
            _log.debug("pool check after a broken connection failed", exc_info=True)


@attrs.define
class AsyncIdleCheck:
    """
    `IdleCheck` for an async pool: the check runs as a task of the pool's event loop.

    Args:
        pool: The pool whose idle connections are checked.
    """

    pool: psycopg_pool.AsyncConnectionPool[Any]
    _running: asyncio.Task[None] | None = attrs.field(default=None, init=False)

    async def run(self, wait: float) -> None:
        """Start a check unless one is under way, and await it at most *wait* seconds."""
        running = self._running
        if running is None or running.done():
            running = self._running = asyncio.create_task(self._check())
        # asyncio.wait, unlike wait_for, leaves the check running at the limit.
        await asyncio.wait([running], timeout=wait)

    async def stop(self) -> None:
        """Cancel a check still under way (the pool is closing), waiting for it at most a second."""
        running = self._running
        if running is not None and not running.done():
            running.cancel()
            # A cancelled execute first asks the server to cancel, over a new
            # connection: on a silent network that waits psycopg's own limits.
            await asyncio.wait([running], timeout=_STOP_WAIT)

    async def _check(self) -> None:
        try:
            await self.pool.check()
        except Exception:  # nobody waits for it: the next calls will tell
            _log.debug("pool check after a broken connection failed", exc_info=True)
