"""A store a forked child inherits refuses to work there, and leaves its parent's sessions alone."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import warnings
from collections.abc import Callable, Iterator

import pytest

from eventstore import ConfigError, HealthStatus, NewEvent, StoreClosedError
from eventstore.postgres import AsyncPostgresEventStore, PoolConfig, PostgresEventStore

# os.fork is POSIX's, as the embedded server and CI are: no skip to hide the tests.
pytestmark = pytest.mark.postgres

DEADLINE = 30.0


def _in_child(work: Callable[[], str]) -> str:
    """Run *work* in a forked child; return what it reported (or how it failed)."""
    read_end, write_end = os.pipe()
    with warnings.catch_warnings():
        # Python 3.12+ warns that forking a process with threads (the
        # pool's) may deadlock: the very case under test.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid == 0:  # the child: report, and leave without running pytest's teardown
        try:
            os.close(read_end)
            try:
                outcome = work()
            except BaseException as exc:  # reported, whatever it is
                outcome = f"raised {type(exc).__name__}: {exc}"
            os.write(write_end, outcome.encode())
        finally:
            os._exit(0)
    os.close(write_end)
    deadline = time.monotonic() + DEADLINE
    try:
        while os.waitpid(pid, os.WNOHANG) == (0, 0):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                pytest.fail("the forked child hung")
            time.sleep(0.01)
        chunks = []
        while chunk := os.read(read_end, 65536):
            chunks.append(chunk)
        return b"".join(chunks).decode()
    finally:
        os.close(read_end)


@pytest.fixture
def parent_store(
    postgres_dsn: str, postgres_schema: str
) -> Iterator[PostgresEventStore]:
    # As gunicorn --preload builds it: created, migrated and used before the fork.
    config = PoolConfig(min_size=2, max_size=2, timeout=5.0)
    with PostgresEventStore(
        postgres_dsn, schema=postgres_schema, pool_config=config
    ) as store:
        store.migrate()
        store.append("parent", [NewEvent("t", {})])
        yield store


def test_a_child_is_refused_the_store_it_inherited_and_its_close_spares_the_parent(
    parent_store: PostgresEventStore,
) -> None:
    def child() -> str:
        outcomes = []
        for call in (
            lambda: parent_store.append("child", [NewEvent("t", {})]),
            lambda: parent_store.stream_version("parent"),
            lambda: list(parent_store.read_stream("parent")),
            parent_store.read_all,
        ):
            try:
                call()
                outcomes.append("worked")
            except ConfigError as exc:
                outcomes.append("refused" if "fork" in str(exc) else str(exc))
        report = parent_store.health()
        outcomes.append(
            f"health {report.status.value}: {'fork' in (report.error or '')}"
        )
        parent_store.close()  # the tidy worker's first step
        try:
            parent_store.stream_version("parent")
        except StoreClosedError:
            outcomes.append("closed")
        return ", ".join(outcomes)

    for round_ in range(3):  # the parent's sessions live on each time
        assert _in_child(child) == (
            "refused, refused, refused, refused, health unavailable: True, closed"
        )
        # Every pooled session of the parent still answers, the child's close notwithstanding.
        for _ in range(4):
            assert parent_store.stream_version("parent") == round_ + 1
        parent_store.append("parent", [NewEvent("t", {})])
        assert parent_store.health().status is HealthStatus.OK
    assert parent_store.stream_version("child") == 0


def test_a_store_created_in_the_child_works_beside_the_parents(
    parent_store: PostgresEventStore, postgres_dsn: str, postgres_schema: str
) -> None:
    def child() -> str:
        with PostgresEventStore(postgres_dsn, schema=postgres_schema) as own:
            return str(own.append("child", [NewEvent("t", {})]).version)

    assert _in_child(child) == "1"
    assert parent_store.stream_version("child") == 1


def test_an_async_store_inherited_by_a_child_is_refused_and_closes_there(
    postgres_dsn: str, postgres_schema: str
) -> None:
    store = AsyncPostgresEventStore(
        postgres_dsn, schema=postgres_schema, pool_config=PoolConfig(min_size=1)
    )
    loop = asyncio.new_event_loop()
    try:
        loop.run_until_complete(store.migrate())
        loop.run_until_complete(store.append("parent", [NewEvent("t", {})]))

        def child() -> str:
            async def use() -> str:
                try:
                    await store.append("child", [NewEvent("t", {})])
                except ConfigError as exc:
                    outcome = "refused" if "fork" in str(exc) else str(exc)
                else:
                    outcome = "worked"
                await store.close()  # on the child's own loop: leaves the parent's be
                return outcome

            return asyncio.run(use())

        assert _in_child(child) == "refused"
        assert loop.run_until_complete(store.stream_version("parent")) == 1
        assert loop.run_until_complete(store.stream_version("child")) == 0
    finally:
        loop.run_until_complete(store.close())
        loop.close()
