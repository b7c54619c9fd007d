"""
Faults injected by the server, inside an append's own transaction.

A deferred constraint trigger on the store's events table runs at commit
time, after the append's rows have drawn their log positions and just
before the commit: there it can wait for the test, sleep, or end its own
backend. The store runs exactly the code it runs in production; only the
server behaves differently.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

DEADLINE = 60.0
HOLD_KEY = 0x45_56_54  # an advisory-lock key no store uses


def _install(
    conn: psycopg.Connection[Any],
    schema: str,
    body: sql.Composable,
    when: sql.Composable,
    *,
    at_commit: bool = True,
) -> None:
    function = sql.Identifier(schema, "test_fault")
    conn.execute(
        sql.SQL(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql "
            "AS $$ BEGIN {body}; RETURN NULL; END $$"
        ).format(function=function, body=body)
    )
    conn.execute(
        sql.SQL(
            "CREATE CONSTRAINT TRIGGER test_fault AFTER INSERT ON {events} "
            "{timing} FOR EACH ROW WHEN ({when}) "
            "EXECUTE FUNCTION {function}()"
        ).format(
            events=sql.Identifier(schema, "events"),
            timing=sql.SQL(
                "DEFERRABLE INITIALLY DEFERRED" if at_commit else "NOT DEFERRABLE"
            ),
            when=when,
            function=function,
        )
    )


def remove(dsn: str, schema: str) -> None:
    """Drop the fault trigger of *schema*'s events table."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP TRIGGER IF EXISTS test_fault ON {}").format(
                sql.Identifier(schema, "events")
            )
        )


def from_application(name: str) -> sql.Composable:
    """A trigger condition: the appending connection's ``application_name`` is *name*."""
    return sql.SQL("current_setting('application_name') = {}").format(sql.Literal(name))


def in_stream(stream_id: str) -> sql.Composable:
    """A trigger condition: the event belongs to *stream_id*."""
    return sql.SQL("NEW.stream_id = {}").format(sql.Literal(stream_id))


def kill_before_commit(dsn: str, schema: str, when: sql.Composable) -> None:
    """Make an append matching *when* end its own backend just before it commits."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        body = sql.SQL("PERFORM pg_terminate_backend(pg_backend_pid())")
        _install(conn, schema, body, when)


def fail_before_commit(
    dsn: str, schema: str, when: sql.Composable, sqlstate: str
) -> None:
    """Make every append matching *when* fail just before its commit with *sqlstate*."""
    body = sql.SQL("RAISE EXCEPTION 'injected by the test' USING ERRCODE = {}").format(
        sql.Literal(sqlstate)
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        _install(conn, schema, body, when)


def sessions_opened(dsn: str) -> int:
    """Return how many sessions the server has opened on *dsn*'s database so far."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    assert row is not None
    return int(row[0])


def sleep_before_commit(dsn: str, schema: str) -> None:
    """
    Make every append pause before it commits, for 0 to 20 ms.

    The pause depends on the event id, so appends that drew their positions
    in one order commit in another.
    """
    body = sql.SQL(
        "PERFORM pg_sleep(CASE abs(hashtext(NEW.event_id::text)) % 5 "
        "WHEN 0 THEN 0.02 WHEN 1 THEN 0.002 WHEN 2 THEN 0.001 WHEN 3 THEN 0.0005 "
        "ELSE 0 END)"
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        _install(conn, schema, body, sql.SQL("true"))


@contextmanager
def held_before_commit(
    dsn: str, schema: str, when: sql.Composable, *, at_commit: bool = True
) -> Iterator[Hold]:
    """
    Hold every append matching *when* just before its commit, until released.

    Args:
        at_commit: ``False`` holds it right after it inserted the matching
            event instead, before the rest of its transaction runs.

    Yields:
        A `Hold`: `wait_until_held` returns once an append waits there;
        `release` lets it (and every later one) commit. Leaving the block
        releases too.
    """
    admin = psycopg.connect(dsn, autocommit=True)
    try:
        admin.execute("SELECT pg_advisory_lock(%s)", (HOLD_KEY,))
        body = sql.SQL("PERFORM pg_advisory_xact_lock_shared({})").format(
            sql.Literal(HOLD_KEY)
        )
        _install(admin, schema, body, when, at_commit=at_commit)
        hold = Hold(admin)
        try:
            yield hold
        finally:
            hold.release()
    finally:
        admin.close()


class Hold:
    """Appends held before their commit by `held_before_commit`."""

    def __init__(self, admin: psycopg.Connection[Any]) -> None:
        self._admin = admin
        self._held = True

    def wait_until_held(self, count: int = 1) -> None:
        """Return once *count* appends wait before their commit (or fail at the deadline)."""
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            row = self._admin.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                "AND NOT granted AND objid = %s",
                (HOLD_KEY,),
            ).fetchone()
            if row is not None and row[0] >= count:
                return
            time.sleep(0.005)
        raise AssertionError(f"fewer than {count} appends ever waited before commit")

    def release(self) -> None:
        """Let the held appends commit."""
        if self._held:
            self._held = False
            self._admin.execute("SELECT pg_advisory_unlock(%s)", (HOLD_KEY,))
