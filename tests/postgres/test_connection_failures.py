"""A server that refuses or never answers: our error at once, with its reason, and honest health."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.conninfo import make_conninfo

from eventstore import HealthStatus, PoolExhaustedError, StoreUnavailableError
from eventstore.postgres import PoolConfig, PostgresEventStore
from eventstore.testing.postgres_server import EmbeddedServer

pytestmark = pytest.mark.postgres

PASSWORD = "Pw-5ecret-never-shown"  # noqa: S105  # a throwaway role of a throwaway server


@pytest.fixture(scope="module")
def server() -> Iterator[EmbeddedServer]:
    # A server of its own, always embedded: the test changes its pg_hba.conf
    # so that one role must give a password.
    with EmbeddedServer.start() as server:
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute(f"CREATE ROLE pwuser LOGIN PASSWORD '{PASSWORD}'")
            conn.execute("CREATE ROLE limited LOGIN CONNECTION LIMIT 0")
            row = conn.execute("SHOW hba_file").fetchone()
            assert row is not None
            hba = Path(row[0])
            hba.write_text(
                "local all pwuser scram-sha-256\n" + hba.read_text(encoding="utf-8"),
                encoding="utf-8",
            )
            conn.execute("SELECT pg_reload_conf()")
        yield server


@pytest.fixture
def closed_port() -> Iterator[int]:
    # Bound but not listening: connections to it are refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]


@pytest.fixture
def silent_port() -> Iterator[int]:
    # Listening but never answering: the kernel completes the handshake,
    # then libpq waits for the server's reply until connect_timeout.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield sock.getsockname()[1]


def refusing_dsns(
    server: EmbeddedServer, closed_port: int
) -> dict[str, tuple[str, str]]:
    """Each case: a DSN the server refuses, and the reason it gives."""
    return {
        "database missing": (
            make_conninfo(server.dsn, dbname="nosuchdb", password=PASSWORD),
            'database "nosuchdb" does not exist',
        ),
        "authentication failed": (
            make_conninfo(server.dsn, user="pwuser", password=PASSWORD + "-wrong"),
            'password authentication failed for user "pwuser"',
        ),
        "too many connections": (
            make_conninfo(server.dsn, user="limited", password=PASSWORD),
            'too many connections for role "limited"',
        ),
        "connection refused": (
            f"postgresql://app:{PASSWORD}@127.0.0.1:{closed_port}/app",
            "Connection refused",
        ),
    }


CASES = [
    "database missing",
    "authentication failed",
    "too many connections",
    "connection refused",
]


def test_a_short_wrong_password_leaves_the_servers_reason_readable(
    server: EmbeddedServer,
) -> None:
    # Blanking every "s" of the message would hide the reason, and a
    # one-letter password is not revealed by the words that contain it.
    dsn = make_conninfo(server.dsn, user="pwuser", password="s")  # noqa: S106
    store = PostgresEventStore(dsn)
    try:
        with pytest.raises(StoreUnavailableError) as caught:
            store.stream_version("s")
        assert 'password authentication failed for user "pwuser"' in str(caught.value)
    finally:
        store.close()


@pytest.mark.parametrize("case", CASES)
def test_a_refused_connection_fails_the_first_call_at_once_with_the_servers_reason(
    server: EmbeddedServer, closed_port: int, case: str
) -> None:
    dsn, reason = refusing_dsns(server, closed_port)[case]
    store = PostgresEventStore(dsn)  # default settings: a 30 s pool timeout
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError) as caught:
            store.migrate()
        elapsed = time.monotonic() - started
        assert elapsed < 2.0, f"took {elapsed:.2f} s"
        message = str(caught.value)
        assert reason in message
        assert PASSWORD not in message
        assert isinstance(caught.value.__cause__, psycopg.OperationalError)
        # Later calls too, reads included.
        with pytest.raises(StoreUnavailableError, match=reason):
            store.stream_version("s")
    finally:
        store.close()


@pytest.mark.parametrize("case", CASES)
def test_health_with_a_refusing_server_is_unavailable_at_once_with_an_empty_pool(
    server: EmbeddedServer, closed_port: int, case: str
) -> None:
    dsn, reason = refusing_dsns(server, closed_port)[case]
    store = PostgresEventStore(dsn)
    try:
        started = time.monotonic()
        report = store.health()
        elapsed = time.monotonic() - started
        assert elapsed < 1.0, f"took {elapsed:.2f} s"
        assert report.status is HealthStatus.UNAVAILABLE
        assert report.error is not None
        assert reason in report.error
        assert PASSWORD not in str(report.to_dict())
        assert report.pool is not None
        pool = report.pool.to_dict()
        assert (pool["size"], pool["in_use"], pool["waiting"]) == (0, 0, 0)
        assert pool["utilization_pct"] == 0.0
    finally:
        store.close()


def test_a_server_that_never_answers_fails_within_connect_timeout(
    silent_port: int,
) -> None:
    store = PostgresEventStore(
        f"postgresql://app:{PASSWORD}@127.0.0.1:{silent_port}/app", connect_timeout=2.0
    )
    try:
        started = time.monotonic()
        with pytest.raises(StoreUnavailableError) as caught:
            store.stream_version("s")
        elapsed = time.monotonic() - started
        # libpq's whole-second clock: at least 2 s, and not the 30 s pool timeout.
        assert 1.5 < elapsed < 5.0, f"took {elapsed:.2f} s"
        assert "timeout" in str(caught.value).lower()
        assert PASSWORD not in str(caught.value)
        assert isinstance(caught.value.__cause__, psycopg.OperationalError)
    finally:
        store.close()


@pytest.mark.parametrize("health_timeout", [0.3, 1.0])
def test_health_of_a_server_that_never_answers_keeps_to_its_timeout(
    silent_port: int, health_timeout: float
) -> None:
    store = PostgresEventStore(
        f"postgresql://app@127.0.0.1:{silent_port}/app",
        connect_timeout=2.0,  # longer than health_timeout; short, so close() is quick
        health_timeout=health_timeout,
    )
    try:
        started = time.monotonic()
        report = store.health()
        elapsed = time.monotonic() - started
        assert elapsed < health_timeout + 0.5, f"took {elapsed:.2f} s"
        assert report.status is HealthStatus.UNAVAILABLE
        assert report.error is not None
        assert "no answer" in report.error
    finally:
        store.close()


def test_a_store_that_was_refused_works_once_the_database_exists(
    server: EmbeddedServer,
) -> None:
    store = PostgresEventStore(
        make_conninfo(server.dsn, dbname="arriveslater"),
        pool_config=PoolConfig(min_size=1, max_size=2),
    )
    try:
        with pytest.raises(StoreUnavailableError, match="does not exist"):
            store.migrate()
        with psycopg.connect(server.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE arriveslater")
        # The refusal is remembered for half a second, and the pool retries
        # with a growing delay: the store recovers within a few seconds.
        deadline = time.monotonic() + 10.0
        while time.monotonic() < deadline:
            try:
                assert store.migrate() >= 1
                break
            except StoreUnavailableError:
                time.sleep(0.1)
        assert store.migrate() >= 1
        assert store.health().status is HealthStatus.OK
    finally:
        store.close()


def test_an_exhausted_pool_still_says_exhausted_not_unavailable(
    server: EmbeddedServer,
) -> None:
    store = PostgresEventStore(
        server.dsn, pool_config=PoolConfig(min_size=1, max_size=1, timeout=0.3)
    )
    try:
        store.migrate()
        with store.pool.connection():
            with pytest.raises(PoolExhaustedError):
                store.stream_version("s")
            report = store.health()
            assert report.status is HealthStatus.DEGRADED
            assert report.pool is not None
            assert (report.pool.size, report.pool.in_use) == (1, 1)
        assert store.health().status is HealthStatus.OK
    finally:
        store.close()
