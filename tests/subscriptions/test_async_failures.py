"""
`AsyncSubscription` under failures on a real PostgreSQL: late commits, killed backends, crashes, takeovers, lost notifications.

The async twins of the sync tests in ``test_postgres_subscriptions.py`` and
``test_delivery.py``: real runner tasks on real connections, the faults
injected by the server or by another session, every wait bounded.
"""

from __future__ import annotations

import asyncio
import bisect
import threading
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import psycopg
import pytest
from psycopg import sql

from eventstore import (
    AsyncSubscription,
    Delivery,
    NewEvent,
    RecordedEvent,
    RetryPolicy,
    StoreUnavailableError,
    Subscription,
    SubscriptionState,
)
from eventstore.postgres import (
    AsyncPostgresEventStore,
    PoolConfig,
    PostgresEventStore,
    _sql,
)
from eventstore.postgres._subscriptions import Listener
from eventstore.postgres._subscriptions_async import AsyncListener
from eventstore.testing import async_wait_for_position, wait_for_position
from tests import server_faults

pytestmark = pytest.mark.postgres

DEADLINE = 60.0
NO_WAIT = RetryPolicy(max_retries=2, base_delay=0.0, max_delay=0.0, jitter=False)

WRITERS = 6
APPENDS_PER_WRITER = 420
EVENTS_PER_APPEND = 2  # 6 * 420 * 2 = 5,040 events
MEMBERS = 3

LONG_POLL = 30.0
"""A poll interval no delivery in a test may wait for."""

WELL_BEFORE_THE_POLL = 5.0
"""The most seconds a delivery that owes nothing to polling may take."""


class _RunnerDied(BaseException):
    """The runner's process dies: no error of the handler's, nothing retries it."""


async def _eventually(
    condition: Callable[[], object | Awaitable[object]],
    what: str,
    timeout: float = DEADLINE,
) -> None:
    """Wait until *condition* (sync or async) holds, for at most *timeout* seconds."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.005) + 1):
        outcome = condition()
        if isinstance(outcome, Awaitable):
            outcome = await outcome
        if outcome:
            return
        assert time.monotonic() < deadline, what
        await asyncio.sleep(0.005)
    raise AssertionError(what)


def _wait_until(
    condition: Callable[[], object], what: str, timeout: float = DEADLINE
) -> None:
    """Wait, in a thread, until *condition* holds, for at most *timeout* seconds."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / 0.005) + 1):
        if condition():
            return
        assert time.monotonic() < deadline, what
        time.sleep(0.005)
    raise AssertionError(what)


async def _finish(tasks: list[asyncio.Task[None]], stop: asyncio.Event) -> list[Any]:
    """Set *stop* and wait, bounded, for the runner *tasks*; return their outcomes."""
    stop.set()
    try:
        async with asyncio.timeout(DEADLINE):
            return await asyncio.gather(*tasks, return_exceptions=True)
    finally:
        for task in tasks:
            task.cancel()


async def _query(dsn: str, query: sql.Composed | str, params: Any = None) -> list[Any]:
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        cursor = await conn.execute(query, params)
        return [] if cursor.description is None else await cursor.fetchall()


async def _terminate(dsn: str, pid: int) -> None:
    """End backend *pid* from another session, and return once it is gone."""
    ((ended,),) = await _query(dsn, "SELECT pg_terminate_backend(%s, 10000)", (pid,))
    assert ended, f"backend {pid} did not end"


async def _lock_pid(dsn: str, application_name: str) -> int | None:
    """The backend holding a runner's lock (a bigint advisory key), for *application_name*."""
    rows = await _query(
        dsn,
        "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
        "AND a.application_name = %s",
        (application_name,),
    )
    return int(rows[0][0]) if rows else None


async def _waits_for_a_lock(dsn: str, application_name: str) -> bool:
    rows = await _query(
        dsn,
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE wait_event_type = 'Lock' AND application_name = %s",
        (application_name,),
    )
    return bool(rows[0][0])


def _listener_pid(dsn: str, schema: str) -> int | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE query = %s",
            (_sql.listen_statement(schema).decode(),),
        ).fetchone()
        return None if row is None else int(row[0])


@pytest.fixture
def projection(postgres_dsn: str, postgres_schema: str) -> sql.Identifier:
    """A read model in the store's schema: one row per event it was given."""
    table = sql.Identifier(postgres_schema, "projection")
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                sql.Identifier(postgres_schema)
            )
        )
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (stream_id text, version bigint, n bigint)"
            ).format(table)
        )
    return table


async def _rows(dsn: str, table: sql.Identifier) -> list[tuple[Any, ...]]:
    query = sql.SQL("SELECT stream_id, version FROM {} ORDER BY n").format(table)
    return [tuple(row) for row in await _query(dsn, query)]


def _project(
    table: sql.Identifier,
) -> Callable[[list[RecordedEvent], psycopg.AsyncConnection[Any]], Awaitable[None]]:
    async def handler(
        events: list[RecordedEvent], conn: psycopg.AsyncConnection[Any]
    ) -> None:
        async with conn.cursor() as cursor:
            await cursor.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(table),
                [(e.stream_id, e.version, e.data["n"]) for e in events],
            )

    return handler


def _every_row(count: int) -> list[tuple[str, int]]:
    """The rows `_append(store, count)` projects, each once."""
    return sorted((f"s-{n % 5}", n // 5 + 1) for n in range(count))


async def _append(store: AsyncPostgresEventStore, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        await store.append(f"s-{n % 5}", [NewEvent("t", {"n": n})])


async def _behind(subscription: AsyncSubscription, count: int) -> None:
    """Wait until *subscription* sees *count* events behind it (the log has them)."""

    async def check() -> bool:
        return (await subscription.status()).events_behind == count

    await _eventually(check, f"the log never showed {count} events")


# --- late commits: a consumer group ------------------------------------------


async def _write(
    store: AsyncPostgresEventStore,
    writer: int,
    start: asyncio.Barrier,
    written: list[uuid.UUID],
) -> None:
    await start.wait()
    for n in range(APPENDS_PER_WRITER):
        events = [
            NewEvent("t", {"writer": writer, "n": n, "k": k})
            for k in range(EVENTS_PER_APPEND)
        ]
        await store.append(
            f"writer-{writer}", events, expected_version=n * EVENTS_PER_APPEND
        )
        written.extend(e.event_id for e in events)


async def _sample_the_log(
    dsn: str, schema: str, done: asyncio.Event, samples: list[tuple[int, int]]
) -> None:
    """Until *done*, note what a reader by position sees: its highest position, and how many events."""
    query = sql.SQL("SELECT max(position), count(*) FROM {}").format(
        sql.Identifier(schema, "events")
    )
    async with await psycopg.AsyncConnection.connect(dsn, autocommit=True) as conn:
        for _ in range(100_000):
            if done.is_set():
                return
            cursor = await conn.execute(query)
            row = await cursor.fetchone()
            if row is not None and row[0] is not None:
                samples.append((int(row[0]), int(row[1])))
            await asyncio.sleep(0.002)


def _a_commit_landed_behind_a_later_position(
    samples: list[tuple[int, int]], positions: list[int]
) -> bool:
    """
    Whether an event committed after an event of a higher position had.

    A sample saw position *m* committed and *c* events in all; if more
    events than *c* at or below *m* exist at the end, one of them committed
    after *m* did.
    """
    return any(bisect.bisect_right(positions, m) > c for m, c in samples)


async def test_an_async_consumer_group_handles_every_late_committed_event_exactly_once(
    postgres_dsn: str, postgres_schema: str
) -> None:
    """Three async members, six writers committing out of position order: each event once, by one member, in stream order."""
    handled: list[list[RecordedEvent]] = [[] for _ in range(MEMBERS)]
    written: list[uuid.UUID] = []
    samples: list[tuple[int, int]] = []
    async with AsyncPostgresEventStore(
        postgres_dsn,
        schema=postgres_schema,
        pool_config=PoolConfig(min_size=1, max_size=WRITERS + MEMBERS + 2, timeout=30),
    ) as store:
        await store.migrate()
        # Each append pauses before its commit for 0-20 ms, after its events
        # drew their positions: commits land out of position order.
        server_faults.sleep_before_commit(postgres_dsn, postgres_schema)
        members = [
            AsyncSubscription(
                store,
                "group-follower",
                handled[index].extend,
                group=(index, MEMBERS),
                batch_size=100,
                poll_interval=0.01,
            )
            for index in range(MEMBERS)
        ]
        stop = asyncio.Event()
        runners = [asyncio.create_task(member.run(stop)) for member in members]
        sampled = asyncio.Event()
        sampler = asyncio.create_task(
            _sample_the_log(postgres_dsn, postgres_schema, sampled, samples)
        )
        try:
            start = asyncio.Barrier(WRITERS)
            async with asyncio.timeout(DEADLINE):
                await asyncio.gather(
                    *(_write(store, w, start, written) for w in range(WRITERS))
                )
            sampled.set()
            async with asyncio.timeout(DEADLINE):
                await sampler
            await _eventually(
                lambda: sum(map(len, handled)) >= len(written),
                "the group never handled every event",
            )
        finally:
            sampler.cancel()  # ended already, unless a writer failed
            outcomes = await _finish(runners, stop)
            server_faults.remove(postgres_dsn, postgres_schema)
        assert outcomes == [None] * MEMBERS
        statuses = [await member.status() for member in members]
        positions = [
            int(row[0])
            for row in await _query(
                postgres_dsn,
                sql.SQL("SELECT position FROM {} ORDER BY position").format(
                    sql.Identifier(postgres_schema, "events")
                ),
            )
        ]
    assert _a_commit_landed_behind_a_later_position(samples, positions), (
        "no commit landed out of position order: the fault did not bite"
    )
    counts = Counter(e.event_id for seen in handled for e in seen)
    duplicated = [event_id for event_id, count in counts.items() if count > 1]
    missed = set(written) - set(counts)
    assert (len(missed), len(duplicated)) == (0, 0), (len(missed), len(duplicated))
    assert len(written) == sum(map(len, handled)) >= 5000
    streams = [{e.stream_id for e in seen} for seen in handled]
    # Each stream is one member's (and these six names spread over all three).
    assert all(streams)
    assert sum(map(len, streams)) == len(set().union(*streams)) == WRITERS
    for seen in handled:
        for stream_id in {e.stream_id for e in seen}:
            versions = [e.version for e in seen if e.stream_id == stream_id]
            assert versions == list(range(1, len(versions) + 1))
    for index, status in enumerate(statuses):
        assert status.state is SubscriptionState.STOPPED
        assert status.member == f"{index}/{MEMBERS}"
        assert status.events_behind == 0
        assert status.handled == len(handled[index])


# --- transactional delivery: a backend killed before the commit ---------------


@pytest.mark.parametrize("runner", ["dies", "lives-on"])
async def test_a_backend_killed_between_the_async_handlers_write_and_the_commit_keeps_exactly_one_row_per_event(
    async_postgres_store: AsyncPostgresEventStore,
    postgres_dsn: str,
    projection: sql.Identifier,
    runner: str,
) -> None:
    """Its rows written, the batch's backend is killed from another session: no row of it is kept, and after a restart each event has one row."""
    store = async_postgres_store
    await _append(store, 10)
    project = _project(projection)
    written, killed = asyncio.Event(), asyncio.Event()
    pids: list[int] = []

    async def killed_once(
        events: list[RecordedEvent], conn: psycopg.AsyncConnection[Any]
    ) -> None:
        await project(events, conn)
        if any(e.data["n"] == 7 for e in events) and not pids:
            pids.append(conn.info.backend_pid)
            written.set()
            async with asyncio.timeout(DEADLINE):
                await killed.wait()
            if runner == "dies":
                raise _RunnerDied
            # Returns: the subscription's commit meets the dead backend.

    def subscription(handler: Any) -> AsyncSubscription:
        return AsyncSubscription(
            store,
            "exactly-once",
            handler,
            delivery=Delivery.TRANSACTIONAL,
            batch_size=4,
            poll_interval=0.05,
        )

    crashing = subscription(killed_once)
    await _behind(crashing, 10)
    stop = asyncio.Event()
    task = asyncio.create_task(crashing.run(stop))
    try:
        async with asyncio.timeout(DEADLINE):
            await written.wait()
        await _terminate(postgres_dsn, pids[0])
        # The first batch committed; the second's rows died with its backend.
        assert await _rows(postgres_dsn, projection) == _every_row(4)
        killed.set()
        if runner == "dies":
            with pytest.raises(_RunnerDied):
                async with asyncio.timeout(DEADLINE):
                    await task
            assert await _rows(postgres_dsn, projection) == _every_row(4)
        else:
            # The commit's failure is the store's: the batch is retried on
            # another connection, and the runner goes on.
            await _behind(crashing, 0)
    finally:
        outcome = await _finish([task], stop)
    if runner == "lives-on":
        assert outcome == [None]
    # Restarted, a runner of the same name finishes the job.
    restarted = subscription(project)
    stop = asyncio.Event()
    task = asyncio.create_task(restarted.run(stop))
    try:
        await _behind(restarted, 0)
    finally:
        assert await _finish([task], stop) == [None]
    rows = await _rows(postgres_dsn, projection)
    assert sorted(rows) == _every_row(10)
    assert len(rows) == len(set(rows)) == 10


# --- at least once: a crash between the handler and the checkpoint -----------


@pytest.mark.parametrize(
    ("checkpoint_interval", "before_crash"),
    # Batches of 2; the first batch's save creates the checkpoint, every
    # later save moves it, and the first move crashes.
    [(0, [0, 1, 2, 3]), (60, [0, 1, 2, 3, 4, 5])],
    ids=["saved-every-batch", "saved-at-the-pass-end"],
)
async def test_async_at_least_once_redelivers_after_a_crash_between_handler_and_checkpoint(
    async_postgres_store: AsyncPostgresEventStore,
    postgres_dsn: str,
    postgres_schema: str,
    checkpoint_interval: float,
    before_crash: list[int],
) -> None:
    """What was handled and not saved comes again to a restarted runner, and nothing more; nothing is lost."""
    store = async_postgres_store
    await _append(store, 6)
    handled: list[int] = []
    checkpoints = sql.Identifier(postgres_schema, "subscriptions")
    function = sql.Identifier(postgres_schema, "crash_once")
    # The checkpoint's first move ends its own backend: a crash after the
    # handler returned and before the checkpoint was stored.
    await _query(
        postgres_dsn,
        sql.SQL(
            "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$; "
            "CREATE TRIGGER crash_once BEFORE UPDATE ON {} "
            "FOR EACH ROW EXECUTE FUNCTION {}()"
        ).format(function, checkpoints, function),
    )

    def handle(events: list[RecordedEvent]) -> None:
        handled.extend(e.data["n"] for e in events)

    crashing = AsyncSubscription(
        store,
        "at-least-once",
        handle,
        batch_size=2,
        retry_policy=NO_WAIT,
        checkpoint_interval=checkpoint_interval,
    )
    await _behind(crashing, 6)
    with pytest.raises(StoreUnavailableError):
        async with asyncio.timeout(DEADLINE):
            await crashing.catch_up()
    assert handled == before_crash
    await _query(
        postgres_dsn, sql.SQL("DROP TRIGGER crash_once ON {}").format(checkpoints)
    )
    # The first batch's save landed: a restarted runner gets the rest again.
    restarted = AsyncSubscription(
        store, "at-least-once", handle, batch_size=4, poll_interval=0.05
    )
    stop = asyncio.Event()
    task = asyncio.create_task(restarted.run(stop))
    try:
        await _behind(restarted, 0)
    finally:
        assert await _finish([task], stop) == [None]
    assert handled == [*before_crash, 2, 3, 4, 5]
    log = await store.read_all(None, limit=10)
    assert (await restarted.status()).position == log[-1].position


# --- one active runner: a standby takes over ----------------------------------


@pytest.fixture
async def make_async_store(
    postgres_dsn: str, postgres_schema: str
) -> AsyncIterator[Callable[[str], Awaitable[AsyncPostgresEventStore]]]:
    stores: list[AsyncPostgresEventStore] = []

    async def make(application_name: str) -> AsyncPostgresEventStore:
        store = AsyncPostgresEventStore(
            postgres_dsn,
            schema=postgres_schema,
            pool_config=PoolConfig(
                min_size=1, max_size=4, timeout=30, application_name=application_name
            ),
        )
        stores.append(store)
        await store.migrate()
        return store

    yield make
    for store in stores:
        await store.close()


async def test_an_async_standby_takes_over_when_the_active_runner_dies_with_no_double_handling(
    make_async_store: Callable[[str], Awaitable[AsyncPostgresEventStore]],
    postgres_dsn: str,
    projection: sql.Identifier,
) -> None:
    """The active runner's lock session is killed mid-batch and the runner dies: the standby takes over and each event has one row."""
    first_store, second_store = await make_async_store("a"), await make_async_store("b")
    project = _project(projection)
    dying = asyncio.Event()

    async def first_handler(
        events: list[RecordedEvent], conn: psycopg.AsyncConnection[Any]
    ) -> None:
        await project(events, conn)
        if any(e.data["n"] == 30 for e in events):
            # The active runner's process dies in the middle of a batch: its
            # lock's session ends, and this transaction never commits.
            pid = await _lock_pid(postgres_dsn, "a")
            assert pid is not None
            await conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            dying.set()
            raise _RunnerDied

    def runner(store: AsyncPostgresEventStore, handler: Any) -> AsyncSubscription:
        return AsyncSubscription(
            store,
            "ha",
            handler,
            delivery=Delivery.TRANSACTIONAL,
            batch_size=4,
            poll_interval=0.01,
        )

    first, second = runner(first_store, first_handler), runner(second_store, project)
    stops = [asyncio.Event(), asyncio.Event()]
    runner_a = asyncio.create_task(first.run(stops[0]))
    runner_b: asyncio.Task[None] | None = None
    try:
        await _eventually(
            lambda: first.state is SubscriptionState.RUNNING, "a never ran"
        )
        runner_b = asyncio.create_task(second.run(stops[1]))
        await _eventually(
            lambda: second.state is SubscriptionState.STANDBY, "b never stood by"
        )
        await _append(first_store, 60)
        async with asyncio.timeout(DEADLINE):
            await dying.wait()
        with pytest.raises(_RunnerDied):
            async with asyncio.timeout(DEADLINE):
                await runner_a
        await _eventually(
            lambda: second.state is SubscriptionState.RUNNING, "b never took over"
        )
        await _behind(second, 0)
    finally:
        await _finish([runner_a], stops[0])
        if runner_b is not None:
            assert await _finish([runner_b], stops[1]) == [None]
    rows = await _rows(postgres_dsn, projection)
    assert sorted(rows) == _every_row(60)
    assert len(rows) == len(set(rows)) == 60


async def test_an_async_runner_whose_lock_dies_mid_batch_and_a_standby_handling_it_too_keep_it_once(
    make_async_store: Callable[[str], Awaitable[AsyncPostgresEventStore]],
    postgres_dsn: str,
    projection: sql.Identifier,
) -> None:
    """The active runner lives on after its lock's session dies: its batch and the standby's same batch race on the checkpoint, and one is kept."""
    first_store, second_store = await make_async_store("a"), await make_async_store("b")
    project = _project(projection)
    calls: dict[str, list[int]] = {"a": [], "b": []}

    def runner(name: str, store: AsyncPostgresEventStore) -> AsyncSubscription:
        async def handler(
            events: list[RecordedEvent], conn: psycopg.AsyncConnection[Any]
        ) -> None:
            calls[name].extend(e.data["n"] for e in events)
            await project(events, conn)
            if name == "a" and any(e.data["n"] == 9 for e in events):
                # a's lock session dies while its batch is open: b takes
                # over, reads the same checkpoint, and its transaction for
                # the same batch waits on the checkpoint row a's holds.
                pid = await _lock_pid(postgres_dsn, "a")
                assert pid is not None
                await _terminate(postgres_dsn, pid)
                await _eventually(
                    lambda: second.state is SubscriptionState.RUNNING,
                    "b never took over",
                )
                await _eventually(
                    lambda: _waits_for_a_lock(postgres_dsn, "b"),
                    "b's batch never met a's",
                )

        return AsyncSubscription(
            store,
            "ha-race",
            handler,
            delivery=Delivery.TRANSACTIONAL,
            batch_size=4,
            poll_interval=0.01,
        )

    first, second = runner("a", first_store), runner("b", second_store)
    await _append(first_store, 20)
    stop = asyncio.Event()
    runner_a = asyncio.create_task(first.run(stop))
    runner_b: asyncio.Task[None] | None = None
    try:
        await _eventually(
            lambda: first.state is SubscriptionState.RUNNING, "a never ran"
        )
        runner_b = asyncio.create_task(second.run(stop))
        await _behind(second, 0)
        await _eventually(
            lambda: first.state is SubscriptionState.STANDBY, "a never stood by"
        )
        assert second.state is SubscriptionState.RUNNING
    finally:
        tasks = [runner_a] if runner_b is None else [runner_a, runner_b]
        assert await _finish(tasks, stop) == [None] * len(tasks)
    # a's batch (8-11) was the one kept; b's attempt at it failed its
    # compare-and-set before its handler ran.
    assert calls["a"] == list(range(12))
    assert calls["b"] == list(range(12, 20))
    rows = await _rows(postgres_dsn, projection)
    assert sorted(rows) == _every_row(20)
    assert len(rows) == len(set(rows)) == 20


# --- a lost notification: the re-read after reconnecting ---------------------


def test_a_lost_notification_is_made_up_for_by_the_re_read_after_reconnecting(
    postgres_store: PostgresEventStore,
    postgres_dsn: str,
    postgres_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Sync: appended while nobody listens, events arrive once the runner listens again, long before its 30 s poll."""
    store = postgres_store
    listens: list[float] = []
    relistening, reconnect = threading.Event(), threading.Event()
    listen = store._listen

    def gated() -> Listener:
        listens.append(time.monotonic())
        if len(listens) > 1:  # the reconnect waits until the appends are in
            relistening.set()
            assert reconnect.wait(DEADLINE)
        return listen()

    monkeypatch.setattr(store, "_listen", gated)
    handled: list[RecordedEvent] = []
    arrived: list[float] = []

    def handle(events: list[RecordedEvent]) -> None:
        handled.extend(events)
        arrived.extend(time.monotonic() for _ in events)

    follower = Subscription(store, "deaf", handle, poll_interval=LONG_POLL)
    stop = threading.Event()
    thread = threading.Thread(target=follower.run, args=(stop,))
    thread.start()
    try:
        _wait_until(
            lambda: _listener_pid(postgres_dsn, postgres_schema) is not None,
            "the follower never listened",
        )
        pid = _listener_pid(postgres_dsn, postgres_schema)
        assert pid is not None
        store.append("s", [NewEvent("t", {"n": 0})])
        _wait_until(lambda: handled, "the notification never woke the follower")
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,))
        _wait_until(relistening.is_set, "the follower never noticed", LONG_POLL / 2)
        # Appended while nobody listens: their NOTIFYs reach no one.
        for n in range(1, 6):
            appended = store.append("s", [NewEvent("t", {"n": n})])
        wait_for_position(store, appended.positions[-1])
        assert len(handled) == 1
        released = time.monotonic()
        reconnect.set()
        _wait_until(
            lambda: len(handled) >= 6, "the re-read never came", WELL_BEFORE_THE_POLL
        )
        assert max(arrived[1:]) - released < WELL_BEFORE_THE_POLL
        again = _listener_pid(postgres_dsn, postgres_schema)
        assert again is not None
        assert again != pid
    finally:
        reconnect.set()
        stop.set()
        thread.join(timeout=DEADLINE)
    assert not thread.is_alive()
    assert [e.data["n"] for e in handled] == list(range(6))
    assert len(listens) == 2


async def test_an_async_lost_notification_is_made_up_for_by_the_re_read_after_reconnecting(
    async_postgres_store: AsyncPostgresEventStore,
    postgres_dsn: str,
    postgres_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Async: appended while nobody listens, events arrive once the runner listens again, long before its 30 s poll."""
    store = async_postgres_store
    listens: list[float] = []
    relistening, reconnect = asyncio.Event(), asyncio.Event()
    listen = store._listen

    async def gated() -> AsyncListener:
        listens.append(time.monotonic())
        if len(listens) > 1:  # the reconnect waits until the appends are in
            relistening.set()
            async with asyncio.timeout(DEADLINE):
                await reconnect.wait()
        return await listen()

    monkeypatch.setattr(store, "_listen", gated)
    handled: list[RecordedEvent] = []
    arrived: list[float] = []

    def handle(events: list[RecordedEvent]) -> None:
        handled.extend(events)
        arrived.extend(time.monotonic() for _ in events)

    follower = AsyncSubscription(store, "deaf", handle, poll_interval=LONG_POLL)
    stop = asyncio.Event()
    task = asyncio.create_task(follower.run(stop))
    try:
        await _eventually(
            lambda: asyncio.to_thread(_listener_pid, postgres_dsn, postgres_schema),
            "the follower never listened",
        )
        pid = await asyncio.to_thread(_listener_pid, postgres_dsn, postgres_schema)
        assert pid is not None
        await store.append("s", [NewEvent("t", {"n": 0})])
        await _eventually(lambda: handled, "the notification never woke the follower")
        await _terminate(postgres_dsn, pid)
        async with asyncio.timeout(LONG_POLL / 2):
            await relistening.wait()
        # Appended while nobody listens: their NOTIFYs reach no one.
        for n in range(1, 6):
            appended = await store.append("s", [NewEvent("t", {"n": n})])
        await async_wait_for_position(store, appended.positions[-1])
        assert len(handled) == 1
        released = time.monotonic()
        reconnect.set()
        await _eventually(
            lambda: len(handled) >= 6, "the re-read never came", WELL_BEFORE_THE_POLL
        )
        assert max(arrived[1:]) - released < WELL_BEFORE_THE_POLL
        again = await asyncio.to_thread(_listener_pid, postgres_dsn, postgres_schema)
        assert again is not None
        assert again != pid
    finally:
        reconnect.set()
        outcome = await _finish([task], stop)
    assert outcome == [None]
    assert [e.data["n"] for e in handled] == list(range(6))
    assert len(listens) == 2
