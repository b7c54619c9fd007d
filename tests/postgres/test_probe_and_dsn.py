"""The direct server probe and DSN parsing, without a server: pure logic with fakes."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time

import pytest
from psycopg import errors as pg_errors

from eventstore import ConfigError
from eventstore.postgres import AsyncPostgresEventStore, PostgresEventStore
from eventstore.postgres._dsn import redact_parse_error
from eventstore.postgres._probe import AsyncServerProbe, ServerProbe

SECRET = "S3cret-pw"  # noqa: S105  # what must never be printed


class CountingConnect:
    def __init__(self, error: Exception | None = None, delay: float = 0.0) -> None:
        self.calls = 0
        self.error = error
        self.delay = delay
        self._lock = threading.Lock()

    def __call__(self) -> None:
        with self._lock:
            self.calls += 1
        time.sleep(self.delay)  # stands for libpq's connection attempt
        if self.error is not None:
            raise self.error


def test_callers_at_once_share_one_connection_attempt() -> None:
    connect = CountingConnect(pg_errors.OperationalError("refused"), delay=0.2)
    probe = ServerProbe(connect)
    barrier = threading.Barrier(8, timeout=10)
    results: list[BaseException | None] = []

    def ask() -> None:
        barrier.wait()
        results.append(probe.check(5.0))

    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert connect.calls == 1
    assert len(results) == 8
    assert all(result is connect.error for result in results)


def test_an_outcome_is_reused_briefly_and_forget_asks_again() -> None:
    connect = CountingConnect()
    probe = ServerProbe(connect)
    assert probe.check(5.0) is None
    assert probe.check(5.0) is None
    assert connect.calls == 1
    probe.forget()
    assert probe.check(5.0) is None
    assert connect.calls == 2


def test_a_caller_with_a_short_wait_gets_a_timeout_while_the_attempt_goes_on() -> None:
    connect = CountingConnect(delay=1.0)
    probe = ServerProbe(connect)
    started = time.monotonic()
    error = probe.check(0.1)
    assert time.monotonic() - started < 0.8
    assert isinstance(error, pg_errors.ConnectionTimeout)
    # The same attempt then answers a patient caller: the server is up.
    assert probe.check(5.0) is None
    assert connect.calls == 1


async def test_async_callers_wait_on_the_loop_and_leave_its_executor_free() -> None:
    # One worker in the loop's executor: a caller that held it while waiting
    # would queue every other caller, and psycopg's host-name lookups, behind it.
    loop = asyncio.get_running_loop()
    executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    loop.set_default_executor(executor)
    connect = CountingConnect(delay=0.5)
    probe = AsyncServerProbe(connect)
    started = time.monotonic()
    checks = [asyncio.create_task(probe.check(5.0)) for _ in range(20)]
    await asyncio.sleep(0.05)  # every caller is waiting now
    await asyncio.wait_for(loop.run_in_executor(None, int), 0.3)
    assert await asyncio.gather(*checks) == [None] * 20
    assert time.monotonic() - started < 2.0
    assert connect.calls == 1


async def test_an_async_caller_with_a_short_wait_gets_a_timeout() -> None:
    connect = CountingConnect(pg_errors.OperationalError("refused"), delay=1.0)
    probe = AsyncServerProbe(connect)
    error = await probe.check(0.1)
    assert isinstance(error, pg_errors.ConnectionTimeout)
    assert await probe.check(5.0) is connect.error
    assert await probe.check(5.0) is connect.error  # the fresh outcome, reused
    assert connect.calls == 1


@pytest.mark.parametrize(
    ("dsn", "named"),
    [
        (f"host=localhost password={SECRET} dbname", 'missing "="'),
        (f"host=localhost password='{SECRET} dbname=x", "unterminated quoted string"),
        (f"host=localhost pasword={SECRET}", 'invalid connection option "pasword"'),
        (
            f"postgresql://u:{SECRET}@host/db?foo=bar",
            'invalid URI query parameter: "foo"',
        ),
        (f"postgresql://u:{SECRET}@[::1/db", "IPv6 host address"),
        (f"postgresql://u:{SECRET}%zz@host/db", "invalid percent-encoded token"),
        (f"postgresql://u@host/db?password={SECRET}&x", 'URI query parameter: "***"'),
        (f"host=a password=my {SECRET}", 'missing "=" after "***"'),
    ],
)
def test_an_unparsable_dsn_says_what_is_wrong_and_never_the_password(
    dsn: str, named: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        PostgresEventStore(dsn)
    message = str(caught.value)
    assert message.startswith("the DSN could not be parsed: ")
    assert named in message
    assert SECRET not in message
    assert SECRET[:6] not in message
    assert caught.value.__cause__ is None
    assert caught.value.__suppress_context__


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://app:pa@{SECRET}@localhost/db",
        f"postgres://app@{SECRET}@localhost",
        f"postgresql://app:pa@{SECRET}@localhost?sslmode=disable",
        # libpq's user info runs to the first "@" before any "/", "?" included.
        f"postgresql://app:p?x@{SECRET}@localhost/db",
    ],
)
def test_a_uri_with_an_unescaped_at_in_its_user_info_is_refused(dsn: str) -> None:
    # libpq ends the user info at the first "@": the rest of the password
    # became the host name, shown in reprs, errors, health and logs.
    for store_class in (PostgresEventStore, AsyncPostgresEventStore):
        with pytest.raises(ConfigError, match="unescaped '@'") as caught:
            store_class(dsn)
        assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://app:pa%40{SECRET}@localhost/db",
        f"postgresql://app:p?x{SECRET}@localhost/db",
        "postgresql://app@localhost?application_name=a@b",
        "postgresql://app@localhost/db?application_name=a@b",
        "postgresql://app@h1:5432,h2:5433/db",
        "postgresql://app@[::1]:5432/db",
    ],
)
def test_uris_with_one_user_info_are_fine(dsn: str) -> None:
    PostgresEventStore(dsn).close()


def test_redaction_keeps_fragments_outside_the_password() -> None:
    dsn = "host=db port=x5 password=hunter2 dbname"
    message = 'missing "=" after "dbname" in connection info string'
    # "dbname" follows the password, so it may be part of it: blanked.
    assert redact_parse_error(dsn, message) == (
        'missing "=" after "***" in connection info string'
    )
    unrelated = 'invalid connection option "pasword"'
    assert redact_parse_error("pasword=hunter2", unrelated) == unrelated


async def test_the_client_keys_passphrase_is_a_secret_like_the_password() -> None:
    dsn = f"host=/nonexistent dbname=x password=pw-{SECRET} sslpassword={SECRET}"
    with PostgresEventStore(dsn) as store:
        shown = repr(store)
    async with AsyncPostgresEventStore(dsn) as async_store:
        async_shown = repr(async_store)
    for text in (shown, async_shown):
        assert SECRET not in text
        assert "sslpassword" not in text
        assert "dbname=x" in text
    # A DSN that does not parse is explained without it too.
    with pytest.raises(ConfigError) as caught:
        PostgresEventStore(f"host=/nonexistent sslpassword={SECRET} dbname")
    assert SECRET not in str(caught.value)
