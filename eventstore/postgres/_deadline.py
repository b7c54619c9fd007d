"""
`CutOff`: a connection whose answer is late is shut down, so the wait for it ends.

`health` promises an answer within `health_timeout`. The server keeps to
it with statement and lock timeouts, but a server that stops answering
altogether (a frozen host, a network that swallows packets) cannot: the
client's read of the socket then waits as long as TCP does, which is for
ever when the packets still reach a live host (keepalives answered, data
acknowledged). So the client shuts the connection's socket down at its own
deadline: the read that waits on it ends at once with an error, the
statement is reported late, and the pool discards the connection.

A socket is shut down only while the statement it carries is under way:
once the ``with`` block ends, the connection may go back to the pool and
to another caller, and nothing touches it any more.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
from types import TracebackType
from typing import Any, Final

import attrs
import psycopg

__all__ = ["CUT_MARGIN", "AsyncCutOff", "CutOff"]

CUT_MARGIN: Final = 0.25
"""Seconds the client waits beyond the server's own limit before it cuts: the
server's answer (a cancelled statement) is preferred, as it keeps the
connection."""


def _shut_down(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> None:
    # On a duplicate: shutting down acts on the socket both share, and the
    # duplicate is closed here while libpq keeps its own descriptor. A
    # connection already closed has no socket left to cut.
    with contextlib.suppress(OSError, psycopg.Error):
        duplicate = socket.fromfd(
            conn.pgconn.socket, socket.AF_INET, socket.SOCK_STREAM
        )
        try:
            duplicate.shutdown(socket.SHUT_RDWR)
        finally:
            duplicate.close()


@attrs.define
class CutOff:
    """
    Shut *conn*'s socket down if the block it guards lasts more than *seconds*.

    A plain context manager; the deadline is kept by a timer thread.

    Args:
        conn: The connection the guarded statements run on.
        seconds: How long they may take, all told.

    Example:
        >>> with CutOff(conn, 1.25) as cut:  # doctest: +SKIP
        ...     conn.execute("SELECT 1")
        >>> cut.fired  # doctest: +SKIP
        False
    """

    conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]
    seconds: float
    fired: bool = attrs.field(default=False, init=False)
    _armed: bool = attrs.field(default=False, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False)
    _timer: threading.Timer | None = attrs.field(default=None, init=False)

    def __enter__(self) -> CutOff:
        self._armed = True
        self._timer = threading.Timer(self.seconds, self._fire)
        self._timer.daemon = True
        self._timer.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._lock:
            self._armed = False
        if self._timer is not None:
            self._timer.cancel()

    def _fire(self) -> None:
        with self._lock:
            if self._armed:
                self.fired = True
                _shut_down(self.conn)


@attrs.define
class AsyncCutOff:
    """
    `CutOff` on the running event loop: no thread, a callback at the deadline.

    Args:
        conn: The connection the guarded statements run on.
        seconds: How long they may take, all told.
    """

    conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]
    seconds: float
    fired: bool = attrs.field(default=False, init=False)
    _handle: asyncio.TimerHandle | None = attrs.field(default=None, init=False)

    def __enter__(self) -> AsyncCutOff:
        loop = asyncio.get_running_loop()
        self._handle = loop.call_later(self.seconds, self._fire)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._handle is not None:
            # The callback runs on this loop, so once cancelled it cannot run.
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        if self._handle is not None:
            self.fired = True
            _shut_down(self.conn)
