"""
What a forked child inherits: stores whose connections are its parent's.

A process that forks (gunicorn's ``--preload``, multiprocessing's ``fork``
start method) hands its children copies of every open socket. A store
created before the fork would then talk to PostgreSQL on its parent's
sessions from two processes at once, mixing their messages: answers meant
for the other process, hangs, a parent whose session the child's
``close()`` ended. So each child marks the stores it inherited, and they
refuse to work there (`AsyncConnections.inherit`): a child creates its own.
psycopg's own connections do the rest: one collected in a process that did
not open it never closes its parent's session.
"""

from __future__ import annotations

import os
import weakref
from typing import Protocol

__all__ = ["track"]


class _Inheritable(Protocol):
    def inherit(self) -> None: ...


_live: weakref.WeakSet[_Inheritable] = weakref.WeakSet()


def track(connections: _Inheritable) -> None:
    """Have *connections* told, in a child forked while it lives, that it was inherited."""
    _live.add(connections)


def _in_child() -> None:
    for connections in list(_live):
        connections.inherit()
    _live.clear()


os.register_at_fork(after_in_child=_in_child)
