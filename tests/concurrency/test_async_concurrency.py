"""Concurrency on asyncio: racing tasks, cancellation mid-append, a slow task among fast ones, lost updates."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import psycopg
import pytest

from eventstore import (
    AppendRequest,
    AsyncEventStore,
    AsyncInMemoryEventStore,
    ConcurrencyError,
    HealthStatus,
    NewEvent,
    RetryPolicy,
    Snapshot,
)
from eventstore.postgres import AsyncPostgresEventStore, PoolConfig
from eventstore.testing import async_assert_one_winner_per_round
from tests import server_faults
from tests.repository.domain import AsyncCounterRepository, Counter, make_registry

BACKENDS = ["memory", pytest.param("postgres", marks=pytest.mark.postgres)]
TASKS = 50
ROUNDS = 50
DEADLINE = 60.0


@pytest.fixture(params=BACKENDS)
async def store(request: pytest.FixtureRequest) -> AsyncIterator[AsyncEventStore]:
    if request.param == "memory":
        async with AsyncInMemoryEventStore() as memory:
            yield memory
        return
    async with AsyncPostgresEventStore(
        request.getfixturevalue("postgres_dsn"),
        schema=request.getfixturevalue("postgres_schema"),
        pool_config=PoolConfig(min_size=1, max_size=10, timeout=30.0),
    ) as postgres:
        await postgres.migrate()
        yield postgres


async def test_fifty_tasks_racing_one_expected_version_have_one_winner_each_round(
    store: AsyncEventStore,
) -> None:
    async with asyncio.timeout(DEADLINE):
        await async_assert_one_winner_per_round(
            store, tasks=TASKS, rounds=ROUNDS, stream_id="race"
        )


async def test_concurrent_updates_with_retries_never_lose_an_increment(
    store: AsyncEventStore,
) -> None:
    async def no_wait(_seconds: float) -> None:
        await asyncio.sleep(0)

    policy = RetryPolicy(max_retries=3, jitter=False, async_sleep=no_wait)
    repo = AsyncCounterRepository(
        store, make_registry(), retry_policy=policy, snapshot_every=25
    )
    await repo.create(Counter.open("shared", "hits"))
    tasks, calls_each = 8, 40
    barrier = asyncio.Barrier(tasks)

    async def work() -> tuple[int, list[BaseException]]:
        await barrier.wait()
        successes, failures = 0, list[BaseException]()
        for _ in range(calls_each):
            try:
                await repo.update("shared", lambda counter: counter.increment())
            except Exception as exc:  # the outcome under test, whatever it is
                failures.append(exc)
            else:
                successes += 1
        return successes, failures

    async with asyncio.timeout(DEADLINE):
        outcomes = await asyncio.gather(*(work() for _ in range(tasks)))
    successes = sum(done for done, _ in outcomes)
    failures = [failure for _, failed in outcomes for failure in failed]
    final = await repo.get("shared")
    assert final.total == successes
    assert final.version == 1 + successes
    assert successes + len(failures) == tasks * calls_each
    assert successes > 0
    for failure in failures:
        assert isinstance(failure, ConcurrencyError)
        assert failure.attempts == policy.max_attempts


async def test_with_enough_retries_every_async_update_lands(
    store: AsyncEventStore,
) -> None:
    policy = RetryPolicy(max_retries=1000, base_delay=0.0, max_delay=0.0, jitter=False)
    repo = AsyncCounterRepository(store, make_registry(), retry_policy=policy)
    await repo.create(Counter.open("shared", "hits"))

    async def work() -> None:
        for _ in range(25):
            await repo.update("shared", lambda counter: counter.increment())

    async with asyncio.timeout(DEADLINE):
        await asyncio.gather(*(work() for _ in range(4)))
    counter = await repo.get("shared")
    assert counter.total == 100


async def test_an_async_command_is_awaited(store: AsyncEventStore) -> None:
    repo = AsyncCounterRepository(store, make_registry())
    await repo.create(Counter.open("c", "hits"))

    async def increment_later(counter: Counter) -> None:
        await asyncio.sleep(0)
        counter.increment()

    saved = await repo.update("c", increment_later)
    assert saved.total == 1
    loaded = await repo.get("c")
    assert loaded.total == 1


@pytest.mark.postgres
@pytest.mark.parametrize("kind", ["one stream", "append_many"])
async def test_a_task_cancelled_mid_append_leaves_all_or_nothing_and_every_connection_back(
    postgres_dsn: str, postgres_schema: str, kind: str
) -> None:
    config = PoolConfig(min_size=2, max_size=2, timeout=10.0)
    async with AsyncPostgresEventStore(
        postgres_dsn, schema=postgres_schema, pool_config=config
    ) as store:
        await store.migrate()
        events = [NewEvent("t", {"n": n}) for n in range(5)]
        with server_faults.held_before_commit(
            postgres_dsn, postgres_schema, server_faults.in_stream("held")
        ) as hold:
            append: Coroutine[Any, Any, object]
            if kind == "one stream":
                append = store.append("held", events, expected_version=0)
            else:
                append = store.append_many(
                    [
                        AppendRequest("held", events, expected_version=0),
                        AppendRequest(
                            "other",
                            [NewEvent("t", {}), NewEvent("t", {})],
                            expected_version=0,
                        ),
                    ]
                )
            task = asyncio.create_task(append)
            await asyncio.to_thread(hold.wait_until_held)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
        async with asyncio.timeout(DEADLINE):
            held = await store.stream_version("held")
            other = await store.stream_version("other")
            assert held in (0, 5)
            if kind == "append_many":
                assert other == (2 if held else 0)
            # Every connection is back and usable: both at once, twice over.
            for _ in range(2):
                versions = await asyncio.gather(
                    *(store.stream_version("held") for _ in range(config.max_size))
                )
                assert versions == [held] * config.max_size
            report = await store.health()
            assert report.pool is not None
            assert report.pool.in_use == 0
            # The stream takes the next append at the version it really has.
            result = await store.append(
                "held", [NewEvent("t", {})], expected_version=held
            )
            assert result.version == held + 1


@pytest.mark.postgres
async def test_a_call_cancelled_at_any_moment_never_lends_on_a_connection_in_a_pipeline(
    postgres_dsn: str, postgres_schema: str
) -> None:
    # health() runs its statements in a pipeline; a cancellation as psycopg
    # enters it left the connection in pipeline mode, which the pool lent
    # on, and every streamed read on it failed from then on.
    config = PoolConfig(min_size=1, max_size=1, timeout=10.0)
    async with AsyncPostgresEventStore(
        postgres_dsn, schema=postgres_schema, pool_config=config
    ) as store:
        await store.migrate()
        await store.append("s", [NewEvent("t", {"n": n}) for n in range(400)])
        async with asyncio.timeout(DEADLINE):
            for round_ in range(300):
                task = asyncio.create_task(store.health())
                # Spread over the call: a cancellation lands in every step of it.
                await asyncio.sleep((round_ % 30) * 0.0001)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                conn = await store.pool.getconn()
                try:
                    assert (
                        conn.pgconn.pipeline_status == psycopg.pq.PipelineStatus.OFF
                    ), f"lent in pipeline mode after {round_ + 1} cancellations"
                finally:
                    await store.pool.putconn(conn)
            # Streamed pages (300 events or more) work on what the pool lends.
            page = await store.read_all(limit=1000)
            assert len(page) == 400
            assert (await store.health()).status is HealthStatus.OK


@pytest.mark.postgres
async def test_a_slow_append_does_not_block_other_tasks(
    postgres_dsn: str, postgres_schema: str
) -> None:
    async with AsyncPostgresEventStore(
        postgres_dsn,
        schema=postgres_schema,
        pool_config=PoolConfig(min_size=2, max_size=4, timeout=10.0),
    ) as store:
        await store.migrate()
        with server_faults.held_before_commit(
            postgres_dsn, postgres_schema, server_faults.in_stream("slow")
        ) as hold:
            slow = asyncio.create_task(store.append("slow", [NewEvent("t", {})]))
            await asyncio.to_thread(hold.wait_until_held)
            # While the slow append waits on the server, the loop keeps
            # running: a ticker never misses a beat by much, and other tasks
            # append and read.
            gaps: list[float] = []

            async def tick() -> None:
                last = time.monotonic()
                for _ in range(20):
                    await asyncio.sleep(0.01)
                    now = time.monotonic()
                    gaps.append(now - last)
                    last = now

            async def others() -> int:
                for n in range(20):
                    await store.append(f"fast-{n}", [NewEvent("t", {"n": n})])
                return sum([await store.stream_version(f"fast-{n}") for n in range(20)])

            async with asyncio.timeout(DEADLINE):
                _, appended = await asyncio.gather(tick(), others())
            assert appended == 20
            assert not slow.done()
            assert max(gaps) < 0.5, gaps
            hold.release()
            async with asyncio.timeout(DEADLINE):
                result = await slow
        assert result.version == 1


SAVERS = 16


async def test_concurrent_snapshot_saves_of_one_stream_keep_only_the_newest_two(
    store: AsyncEventStore,
) -> None:
    # As on the sync store: 16 tasks saving snapshots of one stream at once,
    # 8 rounds; after each, only the newest two are kept.
    await store.append("s", [NewEvent("e", {}) for _ in range(SAVERS * 8)])
    for rnd in range(8):
        barrier = asyncio.Barrier(SAVERS)

        await asyncio.wait_for(
            asyncio.gather(
                *(
                    _save_snapshot_at(store, rnd * SAVERS + i + 1, barrier)
                    for i in range(SAVERS)
                )
            ),
            DEADLINE,
        )
        newest = (rnd + 1) * SAVERS
        kept = [
            snapshot.version
            for version in (newest, newest - 1, newest - 2)
            if (snapshot := await store.load_snapshot("s", max_version=version))
            is not None
        ]
        assert kept == [newest, newest - 1], f"round {rnd}: {kept}"


async def _save_snapshot_at(
    store: AsyncEventStore, version: int, barrier: asyncio.Barrier
) -> None:
    await barrier.wait()
    await store.save_snapshot(Snapshot("s", version, "t", 1, {"v": version}))
