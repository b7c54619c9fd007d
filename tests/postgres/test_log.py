"""The global log on PostgreSQL: a long transaction delays readers and loses nothing."""

from __future__ import annotations

import time
from typing import Any

import psycopg
import pytest

from eventstore import (
    AsyncInMemoryEventStore,
    InMemoryEventStore,
    InvalidArgumentTypeError,
    LogPosition,
    NewEvent,
)
from eventstore.postgres import AsyncPostgresEventStore, PostgresEventStore
from eventstore.testing import (
    async_read_log,
    async_wait_for_position,
    read_log,
    wait_for_position,
)

pytestmark = pytest.mark.postgres


def test_an_open_transaction_holds_the_log_back_until_it_ends(
    postgres_store: PostgresEventStore, postgres_dsn: str
) -> None:
    store = postgres_store
    first = store.append("s", [NewEvent("t", {"n": 1})])
    wait_for_position(store, first.positions[0])
    with psycopg.connect(postgres_dsn) as long_running:
        # Any transaction that holds a transaction id, anywhere in the
        # cluster, is older than the next append.
        long_running.execute("SELECT pg_current_xact_id()")
        second = store.append("s", [NewEvent("t", {"n": 2})])
        with pytest.raises(AssertionError, match="not visible"):
            wait_for_position(store, second.positions[0], timeout=0.3)
        assert [e.data["n"] for e in store.read_all()] == [1]
        long_running.rollback()
    wait_for_position(store, second.positions[0])
    assert [e.data["n"] for e in store.read_all()] == [1, 2]


def test_wait_for_position_returns_at_once_for_a_visible_event(
    postgres_store: PostgresEventStore,
) -> None:
    position = postgres_store.append("s", [NewEvent("t", {})]).positions[0]
    # Visible first: an older transaction anywhere in the cluster (autovacuum's
    # ANALYZE) may hold a fresh event back, and that wait is not measured here.
    wait_for_position(postgres_store, position)
    assert [e.position for e in postgres_store.read_all()] == [position]
    started = time.monotonic()
    wait_for_position(postgres_store, position, timeout=30.0)
    elapsed = time.monotonic() - started
    # One read_all takes milliseconds; 2 s leaves room for a loaded CI machine
    # and still fails a wait that polls on, or sleeps out, its 30 s deadline.
    assert elapsed < 2.0, f"took {elapsed:.2f}s for an event already visible"


async def test_async_wait_for_position_waits_out_an_open_transaction(
    async_postgres_store: AsyncPostgresEventStore, postgres_dsn: str
) -> None:
    store = async_postgres_store
    first = await store.append("s", [NewEvent("t", {"n": 1})])
    await async_wait_for_position(store, first.positions[0])
    with psycopg.connect(postgres_dsn) as long_running:
        long_running.execute("SELECT pg_current_xact_id()")
        second = await store.append("s", [NewEvent("t", {"n": 2})])
        with pytest.raises(AssertionError, match="not visible"):
            await async_wait_for_position(store, second.positions[0], timeout=0.3)
        long_running.rollback()
    await async_wait_for_position(store, second.positions[0])
    assert [e.data["n"] for e in await store.read_all()] == [1, 2]


async def test_the_log_helpers_name_their_twin_for_a_store_of_the_other_kind() -> None:
    # An async store in a sync helper used to fail deep inside, on a coroutine.
    position = LogPosition(1, 1)
    async with AsyncInMemoryEventStore() as async_store:
        wrong: Any = async_store
        with pytest.raises(InvalidArgumentTypeError, match="an async twin"):
            wait_for_position(wrong, position)
        with pytest.raises(InvalidArgumentTypeError, match="an async twin"):
            read_log(wrong, 1)
    with InMemoryEventStore() as sync_store:
        wrong = sync_store
        with pytest.raises(InvalidArgumentTypeError, match="a sync twin"):
            await async_wait_for_position(wrong, position)
        with pytest.raises(InvalidArgumentTypeError, match="a sync twin"):
            await async_read_log(wrong, 1)


def test_positions_of_one_append_share_its_transaction_and_ascend(
    postgres_store: PostgresEventStore,
) -> None:
    one = postgres_store.append("s", [NewEvent("t", {"k": k}) for k in range(3)])
    two = postgres_store.append("s", [NewEvent("t", {})])
    assert len({p.transaction_id for p in one.positions}) == 1
    assert list(one.positions) == sorted(one.positions)
    assert two.positions[0] > one.positions[-1]
    wait_for_position(postgres_store, two.positions[0])
    log = postgres_store.read_all()
    assert [e.position for e in log] == [*one.positions, *two.positions]
    after = postgres_store.read_all(LogPosition.parse(str(one.positions[1])))
    assert [e.position for e in after] == [one.positions[2], two.positions[0]]


def test_a_checkpoint_beyond_the_end_reads_nothing(
    postgres_store: PostgresEventStore,
) -> None:
    postgres_store.append("s", [NewEvent("t", {})])
    assert postgres_store.read_all(LogPosition(2**62, 1)) == []
