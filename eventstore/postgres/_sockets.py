"""Looks at a connection's socket that wait for nothing, or for a bounded time."""

from __future__ import annotations

import select
from typing import Any

import psycopg

__all__ = ["has_unread", "socket_ready"]


def socket_ready(fileno: int, seconds: float) -> bool:
    """Whether socket *fileno* has something to read within *seconds*."""
    if hasattr(select, "poll"):  # select.select refuses descriptors past 1023
        poller = select.poll()
        poller.register(fileno, select.POLLIN)
        return bool(poller.poll(seconds * 1000))
    ready, _, _ = select.select([fileno], [], [], seconds)
    return bool(ready)


def has_unread(conn: Any) -> bool:
    """
    Whether the server sent idle connection *conn* something: a look at its socket that waits for nothing.

    An idle session hears nothing from the server until the server ends it
    (``idle_session_timeout``, ``pg_terminate_backend``, a shutdown): then
    the reason waits on the socket, or its end. A connection with no socket
    to look at counts as spoken to, for a round trip to tell.
    """
    try:
        return socket_ready(conn.fileno(), 0.0)
    except (OSError, ValueError, psycopg.Error):
        return True
