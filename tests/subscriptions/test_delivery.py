"""Delivery guarantees on a real PostgreSQL: exactly once in a transaction, at least once after a crash, one active runner."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from eventstore import (
    AsyncSubscription,
    ConfigError,
    Delivery,
    EventStoreError,
    InMemoryEventStore,
    NewEvent,
    OnError,
    PoolExhaustedError,
    RecordedEvent,
    RetryPolicy,
    StoreTimeoutError,
    StoreUnavailableError,
    Subscription,
    SubscriptionFailedError,
    SubscriptionState,
)
from eventstore.postgres import (
    AsyncPostgresEventStore,
    PoolConfig,
    PostgresEventStore,
    _sql,
)

pytestmark = pytest.mark.postgres

DEADLINE = 60.0
NO_WAIT = RetryPolicy(max_retries=2, base_delay=0.0, max_delay=0.0, jitter=False)


@pytest.fixture
def store(postgres_dsn: str, postgres_schema: str) -> Iterator[PostgresEventStore]:
    with PostgresEventStore(
        postgres_dsn,
        schema=postgres_schema,
        pool_config=PoolConfig(min_size=1, max_size=6, timeout=30.0),
    ) as store:
        store.migrate()
        yield store


@pytest.fixture
def projection(
    store: PostgresEventStore, postgres_dsn: str, postgres_schema: str
) -> sql.Identifier:
    """A read model in the store's schema: one row per event it was given."""
    table = sql.Identifier(postgres_schema, "projection")
    with psycopg.connect(postgres_dsn, autocommit=True) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (stream_id text, version bigint, n bigint)"
            ).format(table)
        )
    return table


def _rows(dsn: str, table: sql.Identifier) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            sql.SQL("SELECT stream_id, version FROM {} ORDER BY n").format(table)
        ).fetchall()


def _project(table: sql.Identifier) -> Callable[[list[RecordedEvent], Any], None]:
    def handler(events: list[RecordedEvent], conn: psycopg.Connection[Any]) -> None:
        with conn.cursor() as cursor:
            cursor.executemany(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(table),
                [(e.stream_id, e.version, e.data["n"]) for e in events],
            )

    return handler


def _append(store: PostgresEventStore, count: int, start: int = 0) -> None:
    for n in range(start, start + count):
        store.append(f"s-{n % 5}", [NewEvent("t", {"n": n})])


def _wait(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


def test_transactional_delivery_writes_the_projection_and_checkpoint_together(
    store: PostgresEventStore, postgres_dsn: str, projection: sql.Identifier
) -> None:
    _append(store, 12)
    subscription = Subscription(
        store,
        "projected",
        _project(projection),
        delivery=Delivery.TRANSACTIONAL,
        batch_size=5,
    )
    _wait(lambda: subscription.status().events_behind == 12)
    assert subscription.catch_up() == 12
    assert len(_rows(postgres_dsn, projection)) == 12
    assert subscription.status().events_behind == 0


def test_a_transactional_retry_projects_every_event_of_a_batch_the_handler_drained(
    store: PostgresEventStore, postgres_dsn: str, projection: sql.Identifier
) -> None:
    # The first attempt takes two events off its list, then fails; its
    # writes roll back, and the retry must be given the whole batch again.
    _append(store, 5)
    attempts: list[int] = []

    def handler(events: list[RecordedEvent], conn: psycopg.Connection[Any]) -> None:
        attempts.append(len(events))
        while events:
            event = events.pop(0)
            conn.execute(
                sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(projection),
                (event.stream_id, event.version, event.data["n"]),
            )
            if len(attempts) == 1 and len(events) == 3:
                raise ValueError("a transient failure")

    subscription = Subscription(
        store,
        "drained",
        handler,
        delivery=Delivery.TRANSACTIONAL,
        retry_policy=NO_WAIT,
    )
    _wait(lambda: subscription.status().events_behind == 5)
    assert subscription.catch_up() == 5
    assert attempts == [5, 5]
    assert sorted(_rows(postgres_dsn, projection)) == sorted(
        (f"s-{n}", 1) for n in range(5)
    )


def test_a_stop_ends_a_transactional_handlers_wait_for_its_retry(
    store: PostgresEventStore, postgres_dsn: str, projection: sql.Identifier
) -> None:
    # Stopped between two attempts, the runner ends at once; the failed
    # batch's writes rolled back, and the next run projects it once.
    _append(store, 6)
    stop = threading.Event()
    project = _project(projection)

    def failing(events: list[RecordedEvent], conn: psycopg.Connection[Any]) -> None:
        project(events, conn)
        if any(event.data["n"] == 3 for event in events):
            stop.set()
            raise ValueError("not yet")

    subscription = Subscription(
        store,
        "stopped-retrying",
        failing,
        delivery=Delivery.TRANSACTIONAL,
        batch_size=2,
        on_error=OnError.PARK,
        retry_policy=RetryPolicy(
            max_retries=3, base_delay=30.0, max_delay=30.0, jitter=False
        ),
    )
    _wait(lambda: subscription.status().events_behind == 6)
    runner = threading.Thread(target=subscription.run, args=(stop,))
    started = time.monotonic()
    runner.start()
    runner.join(150)
    assert time.monotonic() - started < 10, "the runner waited out the retries"
    status = subscription.status()
    assert (status.state, status.parked) == (SubscriptionState.STOPPED, 0)
    assert sorted(_rows(postgres_dsn, projection)) == [("s-0", 1), ("s-1", 1)]
    again = Subscription(
        store, "stopped-retrying", project, delivery=Delivery.TRANSACTIONAL
    )
    assert again.catch_up() == 4
    assert sorted(_rows(postgres_dsn, projection)) == sorted(
        (f"s-{n % 5}", n // 5 + 1) for n in range(6)
    )


def test_transactional_delivery_moves_the_checkpoint_with_every_batch_whatever_the_interval(
    store: PostgresEventStore, postgres_dsn: str, projection: sql.Identifier
) -> None:
    # Pages of 2: two projected events, two the filter skips, two projected.
    for stream in ("s-0", "s-1", "other-0", "other-1", "s-2", "s-3"):
        store.append(stream, [NewEvent("t", {"n": len(stream)})])
    stored = []
    project = _project(projection)

    def handler(events: list[RecordedEvent], conn: psycopg.Connection[Any]) -> None:
        # Read outside the handler's transaction: what is committed.
        stored.append(store._load_checkpoint("every-batch", ""))
        project(events, conn)

    subscription = Subscription(
        store,
        "every-batch",
        handler,
        delivery=Delivery.TRANSACTIONAL,
        batch_size=2,
        checkpoint_interval=60,
        stream_prefix="s-",
    )
    _wait(lambda: subscription.status().events_behind == 4)
    log = store.read_all(None, limit=100)
    assert subscription.catch_up() == 4
    # The skipped page's move was saved before the next batch, too.
    assert stored == [None, log[3].position]
    assert subscription.status().position == log[-1].position
    assert len(_rows(postgres_dsn, projection)) == 4


def test_a_backend_killed_between_the_handlers_write_and_the_commit_keeps_exactly_one_row_per_event(
    store: PostgresEventStore, postgres_dsn: str, projection: sql.Identifier
) -> None:
    _append(store, 10)
    project = _project(projection)
    killed: list[int] = []

    def dies_once(events: list[RecordedEvent], conn: psycopg.Connection[Any]) -> None:
        project(events, conn)
        if any(e.data["n"] == 7 for e in events) and not killed:
            # The rows are written; the commit never comes: the backend
            # ends, and the runner's process with it.
            killed.append(conn.info.backend_pid)
            try:
                conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
            except psycopg.OperationalError:
                raise SystemExit("the runner dies") from None

    crashing = Subscription(
        store, "exactly-once", dies_once, delivery=Delivery.TRANSACTIONAL, batch_size=4
    )
    _wait(lambda: crashing.status().events_behind == 10)
    with pytest.raises(SystemExit):
        crashing.catch_up()
    assert killed
    assert len(_rows(postgres_dsn, projection)) == 4  # the first batch, committed
    # Restarted, a runner of the same name finishes the job.
    restarted = Subscription(
        store, "exactly-once", project, delivery=Delivery.TRANSACTIONAL, batch_size=4
    )
    restarted.catch_up()
    rows = _rows(postgres_dsn, projection)
    assert sorted(rows) == sorted({(f"s-{n % 5}", n // 5 + 1) for n in range(10)})
    assert len(rows) == 10


@pytest.mark.parametrize(
    ("checkpoint_interval", "before_crash"),
    # Batches of 2; the first batch's save creates the checkpoint, every
    # later save moves it, and the first move crashes.
    [(0, [0, 1, 2, 3]), (60, [0, 1, 2, 3, 4, 5])],
    ids=["saved-every-batch", "saved-at-the-pass-end"],
)
def test_at_least_once_redelivers_after_a_crash_between_handler_and_checkpoint(
    store: PostgresEventStore,
    postgres_dsn: str,
    postgres_schema: str,
    checkpoint_interval: float,
    before_crash: list[int],
) -> None:
    """What was handled and not yet saved comes again; nothing is lost."""
    _append(store, 6)
    handled: list[int] = []
    checkpoints = sql.Identifier(postgres_schema, "subscriptions")
    function = sql.Identifier(postgres_schema, "crash_once")
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        # The checkpoint's first move ends its own backend: a crash after
        # the handler returned and before the checkpoint was stored.
        admin.execute(
            sql.SQL(
                "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NEW; END $$"
            ).format(function)
        )
        admin.execute(
            sql.SQL(
                "CREATE TRIGGER crash_once BEFORE UPDATE ON {} "
                "FOR EACH ROW EXECUTE FUNCTION {}()"
            ).format(checkpoints, function)
        )
        subscription = Subscription(
            store,
            "at-least-once",
            lambda events: handled.extend(e.data["n"] for e in events),
            batch_size=2,
            retry_policy=NO_WAIT,
            checkpoint_interval=checkpoint_interval,
        )
        _wait(lambda: subscription.status().events_behind == 6)
        with pytest.raises(StoreUnavailableError):
            subscription.catch_up()
        assert handled == before_crash
        admin.execute(sql.SQL("DROP TRIGGER crash_once ON {}").format(checkpoints))
    # After the restart what was not saved comes again, and nothing is lost.
    restarted = Subscription(
        store,
        "at-least-once",
        lambda events: handled.extend(e.data["n"] for e in events),
        batch_size=4,
    )
    # The first batch's save landed: the rest comes again.
    assert restarted.catch_up() == 4
    assert handled == [*before_crash, 2, 3, 4, 5]


def _lock_pid(dsn: str, application_name: str) -> int | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            # A runner's lock has a bigint key (objsubid 1), the only one
            # the runner's sessions hold.
            "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
            "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            "AND a.application_name = %s",
            (application_name,),
        ).fetchone()
        return None if row is None else int(row[0])


def _listening(dsn: str, application_name: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE application_name = %s AND query LIKE 'LISTEN %%'",
            (application_name,),
        ).fetchone()
        assert row is not None
        return int(row[0])


def test_a_runner_that_loses_its_lock_to_another_stops_listening(
    postgres_dsn: str, postgres_schema: str
) -> None:
    store = PostgresEventStore(
        postgres_dsn,
        schema=postgres_schema,
        pool_config=PoolConfig(min_size=1, max_size=4, application_name="loser"),
    )
    store.migrate()
    runner = Subscription(store, "contested", lambda events: None, poll_interval=0.05)
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    key = _sql.subscription_lock_key(postgres_schema, "contested", "")
    try:
        thread.start()
        _wait(lambda: _lock_pid(postgres_dsn, "loser") is not None)
        _wait(lambda: _listening(postgres_dsn, "loser") == 1)
        with psycopg.connect(postgres_dsn, autocommit=True) as other:
            # Queued behind the runner's lock: it takes it the moment the
            # runner's session ends, before the runner can try again.
            queued = threading.Thread(
                target=other.execute,
                args=(
                    "SELECT pg_advisory_lock(hashtextextended(%s, %s))",
                    (key, _sql.SUBSCRIPTION_LOCK_SEED),
                ),
            )
            queued.start()
            _wait(lambda: _waiting_for_a_lock(postgres_dsn, other.info.backend_pid))
            pid = _lock_pid(postgres_dsn, "loser")
            with psycopg.connect(postgres_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            queued.join(DEADLINE)
            _wait(lambda: runner.state is SubscriptionState.STANDBY)
            _wait(lambda: _listening(postgres_dsn, "loser") == 0)
    finally:
        stop.set()
        thread.join(DEADLINE)
        store.close()


def test_a_runner_whose_lock_dies_mid_pass_hands_over_no_more_of_it(
    postgres_dsn: str, postgres_schema: str, projection: sql.Identifier
) -> None:
    store = PostgresEventStore(
        postgres_dsn,
        schema=postgres_schema,
        pool_config=PoolConfig(min_size=1, max_size=4, application_name="mid-pass"),
    )
    store.migrate()
    _append(store, 20)
    project = _project(projection)
    key = _sql.subscription_lock_key(postgres_schema, "long-pass", "")
    other = psycopg.connect(postgres_dsn, autocommit=True)
    queued = threading.Thread(
        target=other.execute,
        args=(
            "SELECT pg_advisory_lock(hashtextextended(%s, %s))",
            (key, _sql.SUBSCRIPTION_LOCK_SEED),
        ),
    )
    batches: list[int] = []

    def handler(events: list[RecordedEvent], conn: psycopg.Connection[Any]) -> None:
        project(events, conn)
        batches.append(events[0].data["n"])
        if len(batches) == 3:
            # Another session queues for the lock, then the runner's lock
            # session dies: the other one holds it from then on.
            queued.start()
            _wait(lambda: _waiting_for_a_lock(postgres_dsn, other.info.backend_pid))
            pid = _lock_pid(postgres_dsn, "mid-pass")
            with psycopg.connect(postgres_dsn, autocommit=True) as admin:
                admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
            queued.join(DEADLINE)

    runner = Subscription(
        store,
        "long-pass",
        handler,
        delivery=Delivery.TRANSACTIONAL,
        batch_size=2,
        poll_interval=0.05,
    )
    stop = threading.Event()
    thread = threading.Thread(target=runner.run, args=(stop,))
    try:
        thread.start()
        _wait(lambda: runner.state is SubscriptionState.STANDBY and len(batches) >= 3)
        # The pass ended at the next page: one active runner at a time.
        assert len(batches) == 3
        other.close()  # the other session ends: the runner takes over again
        _wait(lambda: len(_rows(postgres_dsn, projection)) == 20)
        assert runner.state is SubscriptionState.RUNNING
    finally:
        stop.set()
        thread.join(DEADLINE)
        other.close()
        store.close()
    assert sorted(_rows(postgres_dsn, projection)) == sorted(
        (f"s-{n % 5}", n // 5 + 1) for n in range(20)
    )


def _waiting_for_a_lock(dsn: str, pid: int) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = %s",
            (pid,),
        ).fetchone()
        return bool(row and row[0])


def test_a_standby_takes_over_when_the_active_runner_dies_with_no_double_handling(
    postgres_dsn: str, postgres_schema: str, projection: sql.Identifier
) -> None:
    def make(application_name: str) -> PostgresEventStore:
        store = PostgresEventStore(
            postgres_dsn,
            schema=postgres_schema,
            pool_config=PoolConfig(
                min_size=1, max_size=4, application_name=application_name
            ),
        )
        store.migrate()
        return store

    first_store, second_store = make("runner-a"), make("runner-b")
    project = _project(projection)
    dying = threading.Event()

    def first_handler(
        events: list[RecordedEvent], conn: psycopg.Connection[Any]
    ) -> None:
        project(events, conn)
        if any(e.data["n"] == 30 for e in events):
            # The active runner's process dies in the middle of a batch: its
            # lock's session ends, and this transaction never commits.
            pid = _lock_pid(postgres_dsn, "runner-a")
            assert pid is not None
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
            dying.set()
            raise SystemExit("runner a dies")

    stops = [threading.Event(), threading.Event()]
    first = Subscription(
        first_store,
        "ha",
        first_handler,
        delivery=Delivery.TRANSACTIONAL,
        batch_size=4,
        poll_interval=0.01,
    )
    second = Subscription(
        second_store,
        "ha",
        project,
        delivery=Delivery.TRANSACTIONAL,
        batch_size=4,
        poll_interval=0.01,
    )
    crashed: list[BaseException] = []

    def run_first() -> None:
        try:
            first.run(stops[0])
        except BaseException as exc:  # SystemExit: the simulated death
            crashed.append(exc)

    try:
        runner_a = threading.Thread(target=run_first)
        runner_a.start()
        _wait(lambda: first.state is SubscriptionState.RUNNING)
        runner_b = threading.Thread(target=second.run, args=(stops[1],))
        runner_b.start()
        _wait(lambda: second.state is SubscriptionState.STANDBY)
        _append(first_store, 60)
        _wait(dying.is_set)
        runner_a.join(timeout=DEADLINE)
        _wait(lambda: second.state is SubscriptionState.RUNNING)
        _wait(lambda: len(_rows(postgres_dsn, projection)) >= 60)
        time.sleep(0.1)  # a duplicate, if any, would land now
    finally:
        for stop in stops:
            stop.set()
        runner_b.join(timeout=DEADLINE)
        first_store.close()
        second_store.close()
    assert crashed
    assert isinstance(crashed[0], SystemExit)
    rows = _rows(postgres_dsn, projection)
    assert len(rows) == len(set(rows)) == 60


async def test_an_async_transactional_subscription_gets_an_async_connection(
    postgres_dsn: str, postgres_schema: str, projection: sql.Identifier
) -> None:
    async with AsyncPostgresEventStore(postgres_dsn, schema=postgres_schema) as store:
        await store.migrate()
        for n in range(5):
            await store.append("s", [NewEvent("t", {"n": n})])

        async def handler(
            events: list[RecordedEvent], conn: psycopg.AsyncConnection[Any]
        ) -> None:
            async with conn.cursor() as cursor:
                await cursor.executemany(
                    sql.SQL("INSERT INTO {} VALUES (%s, %s, %s)").format(projection),
                    [(e.stream_id, e.version, e.data["n"]) for e in events],
                )

        subscription = AsyncSubscription(
            store, "async-projected", handler, delivery=Delivery.TRANSACTIONAL
        )
        async with asyncio.timeout(DEADLINE):
            while (await subscription.status()).events_behind < 5:
                await asyncio.sleep(0.01)
        assert await subscription.catch_up() == 5
    assert len(_rows(postgres_dsn, projection)) == 5


def test_transactional_delivery_needs_postgresql() -> None:
    with pytest.raises(ConfigError, match="transactional delivery needs PostgreSQL"):
        Subscription(
            InMemoryEventStore(),
            "s",
            lambda events, conn: None,
            delivery=Delivery.TRANSACTIONAL,
        )


def test_a_second_runner_of_a_name_stands_by_until_the_first_stops(
    store: PostgresEventStore,
) -> None:
    handled: list[str] = []
    first = Subscription(
        store, "solo", lambda e: handled.extend("a" for _ in e), poll_interval=0.01
    )
    second = Subscription(
        store, "solo", lambda e: handled.extend("b" for _ in e), poll_interval=0.01
    )
    stop_first, stop_second = threading.Event(), threading.Event()
    runner_a = threading.Thread(target=first.run, args=(stop_first,))
    runner_a.start()
    try:
        _wait(lambda: first.state is SubscriptionState.RUNNING)
        runner_b = threading.Thread(target=second.run, args=(stop_second,))
        runner_b.start()
        _wait(lambda: second.state is SubscriptionState.STANDBY)
        _append(store, 3)
        _wait(lambda: len(handled) == 3)
        assert handled == ["a", "a", "a"]
        stop_first.set()
        runner_a.join(timeout=DEADLINE)
        assert first.state is SubscriptionState.STOPPED
        _wait(lambda: second.state is SubscriptionState.RUNNING)
        _append(store, 2, start=3)
        _wait(lambda: len(handled) == 5)
        assert handled == ["a", "a", "a", "b", "b"]
    finally:
        stop_first.set()
        stop_second.set()
        runner_a.join(timeout=DEADLINE)
        runner_b.join(timeout=DEADLINE)


def test_a_parked_event_replays_into_the_projection_in_its_transaction(
    store: PostgresEventStore, postgres_dsn: str, projection: sql.Identifier
) -> None:
    _append(store, 5)
    project = _project(projection)
    broken = {3}

    def handler(events: list[RecordedEvent], conn: psycopg.Connection[Any]) -> None:
        project(events, conn)  # written, then rolled back if the event is broken
        if any(e.data["n"] in broken for e in events):
            raise ValueError("cannot project n=3")

    subscription = Subscription(
        store,
        "parks",
        handler,
        delivery=Delivery.TRANSACTIONAL,
        on_error=OnError.PARK,
        retry_policy=NO_WAIT,
    )
    _wait(lambda: subscription.status().events_behind == 5)
    assert subscription.catch_up() == 4
    assert sorted(n for _, n in _numbers(postgres_dsn, projection)) == [0, 1, 2, 4]
    assert subscription.status().parked == 1
    broken.clear()
    assert subscription.replay_parked() == 1
    assert sorted(n for _, n in _numbers(postgres_dsn, projection)) == [0, 1, 2, 3, 4]
    assert subscription.status().parked == 0


def test_a_transactional_park_and_its_checkpoint_move_commit_together(
    store: PostgresEventStore,
    postgres_dsn: str,
    postgres_schema: str,
    projection: sql.Identifier,
) -> None:
    _append(store, 5)
    project = _project(projection)
    broken = {2}

    def handler(events: list[RecordedEvent], conn: psycopg.Connection[Any]) -> None:
        if any(e.data["n"] in broken for e in events):
            raise ValueError("cannot project n=2")
        project(events, conn)

    subscription = Subscription(
        store,
        "parks-atomically",
        handler,
        delivery=Delivery.TRANSACTIONAL,
        on_error=OnError.PARK,
        retry_policy=NO_WAIT,
    )
    _wait(lambda: subscription.status().events_behind == 5)
    poison = next(e for e in store.read_all(None, limit=5) if e.data["n"] == 2)
    checkpoints = sql.Identifier(postgres_schema, "subscriptions")
    function = sql.Identifier(postgres_schema, "refuse_the_move")
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        # The move past the poison event fails, after it was parked.
        admin.execute(
            sql.SQL(
                "CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF NEW.position = {} THEN RAISE EXCEPTION 'move refused'; END IF; "
                "RETURN NEW; END $$"
            ).format(function, sql.Literal(poison.position.position))
        )
        admin.execute(
            sql.SQL(
                "CREATE TRIGGER refuse_the_move BEFORE UPDATE ON {} "
                "FOR EACH ROW EXECUTE FUNCTION {}()"
            ).format(checkpoints, function)
        )
        with pytest.raises(EventStoreError, match="move refused"):
            subscription.catch_up()
        # Neither parked nor passed: the event comes again.
        assert subscription.status().parked == 0
        admin.execute(sql.SQL("DROP TRIGGER refuse_the_move ON {}").format(checkpoints))
    broken.clear()  # fixed meanwhile: it is handled, and only once
    assert subscription.catch_up() == 3
    assert subscription.status().parked == 0
    assert sorted(n for _, n in _numbers(postgres_dsn, projection)) == [0, 1, 2, 3, 4]


def _park_the_second_of_three(subscription: Subscription) -> None:
    """Catch up on 3 events whose second the handler refuses: it is parked."""
    _wait(lambda: subscription.status().events_behind == 3)
    assert subscription.catch_up() == 2
    assert subscription.status().parked == 1


def _two_replays(
    replayer: Callable[[], Subscription], replayed: dict[str, int]
) -> tuple[threading.Thread, threading.Thread]:
    """Two threads, "first replay" and "second replay", each replaying with a subscription of its own."""

    def replay(name: str) -> None:
        replayed[name] = replayer().replay_parked()

    return (
        threading.Thread(target=replay, args=("first",), name="first replay"),
        threading.Thread(target=replay, args=("second",), name="second replay"),
    )


def test_two_replays_of_a_parked_event_at_once_apply_it_once(
    store: PostgresEventStore, postgres_dsn: str, projection: sql.Identifier
) -> None:
    _append(store, 3)
    project = _project(projection)
    broken = {1}
    first_in = threading.Event()
    second_waits = threading.Event()

    def handler(events: list[RecordedEvent], conn: psycopg.Connection[Any]) -> None:
        if any(e.data["n"] in broken for e in events):
            raise ValueError("cannot project n=1")
        project(events, conn)
        if threading.current_thread().name == "first replay":
            # Holds its transaction open until the other replay waits on
            # the same parked event's row.
            first_in.set()
            assert second_waits.wait(DEADLINE)

    def replayer() -> Subscription:
        return Subscription(
            store,
            "replayed-twice",
            handler,
            delivery=Delivery.TRANSACTIONAL,
            on_error=OnError.PARK,
            retry_policy=NO_WAIT,
        )

    subscription = replayer()
    _park_the_second_of_three(subscription)
    broken.clear()
    replayed: dict[str, int] = {}
    first, second = _two_replays(replayer, replayed)
    first.start()
    try:
        assert first_in.wait(DEADLINE)
        second.start()
        # The second replay has read the parked event and waits on its row.
        _wait(lambda: _a_backend_waits_for_a_lock(postgres_dsn))
    finally:
        second_waits.set()
        first.join(DEADLINE)
        if second.ident is not None:
            second.join(DEADLINE)
    assert replayed == {"first": 1, "second": 0}
    assert sorted(n for _, n in _numbers(postgres_dsn, projection)) == [0, 1, 2]
    assert subscription.status().parked == 0


def test_a_failed_replay_does_not_park_again_what_another_replay_took(
    store: PostgresEventStore, postgres_dsn: str, projection: sql.Identifier
) -> None:
    _append(store, 3)
    project = _project(projection)
    broken = {1}
    b_waits = threading.Event()

    def handler(events: list[RecordedEvent], conn: psycopg.Connection[Any]) -> None:
        replay = threading.current_thread().name
        if replay == "first replay":
            # Fails, once the second replay waits on the parked row.
            _wait(lambda: _a_backend_waits_for_a_lock(postgres_dsn))
            raise ValueError("the first replay fails")
        if any(e.data["n"] in broken for e in events):
            raise ValueError("cannot project n=1")
        project(events, conn)
        if replay == "second replay":
            # Commits only once the first replay's re-park waits on its row,
            # or has been and gone: when the first replay's transaction
            # ended, its re-park may reach the row before this replay's
            # delete, which waited, takes it (tuple locks are not queued
            # fairly). Either way the event is the second replay's.
            b_waits.set()
            _wait(
                lambda: (
                    _a_backend_waits_for_a_lock(postgres_dsn) or not first.is_alive()
                )
            )

    def replayer() -> Subscription:
        return Subscription(
            store,
            "replay-race",
            handler,
            delivery=Delivery.TRANSACTIONAL,
            on_error=OnError.PARK,
            retry_policy=RetryPolicy(max_retries=0),
        )

    subscription = replayer()
    _park_the_second_of_three(subscription)
    broken.clear()
    replayed: dict[str, int] = {}
    first, second = _two_replays(replayer, replayed)
    first.start()
    _wait(lambda: _a_backend_is_in_the_handler(postgres_dsn))
    second.start()
    first.join(DEADLINE)
    second.join(DEADLINE)
    assert b_waits.is_set()
    assert replayed == {"first": 0, "second": 1}
    # Taken by the second replay: not parked again by the first's failure.
    assert subscription.status().parked == 0
    assert sorted(n for _, n in _numbers(postgres_dsn, projection)) == [0, 1, 2]


def _a_backend_is_in_the_handler(dsn: str) -> bool:
    """Whether a replay has unparked its event, uncommitted: its row is locked."""
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction' "
            "AND datname = current_database()"
        ).fetchone()
        return bool(row and row[0])


def _a_backend_waits_for_a_lock(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()"
        ).fetchone()
        return bool(row and row[0])


def _numbers(dsn: str, table: sql.Identifier) -> list[tuple[Any, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            sql.SQL("SELECT stream_id, n FROM {}").format(table)
        ).fetchall()


def test_a_transactional_reset_clears_the_projection_in_the_checkpoints_transaction(
    store: PostgresEventStore, postgres_dsn: str, projection: sql.Identifier
) -> None:
    _append(store, 6)
    subscription = Subscription(
        store, "rebuilt", _project(projection), delivery=Delivery.TRANSACTIONAL
    )
    _wait(lambda: subscription.status().events_behind == 6)
    assert subscription.catch_up() == 6

    def clear(conn: psycopg.Connection[Any]) -> None:
        conn.execute(sql.SQL("DELETE FROM {}").format(projection))

    def clear_then_fail(conn: psycopg.Connection[Any]) -> None:
        clear(conn)
        raise RuntimeError("the reset fails half-way")

    # A reset that fails keeps both the projection and the checkpoint.
    with pytest.raises(RuntimeError):
        subscription.reset(on_reset=clear_then_fail)
    assert len(_rows(postgres_dsn, projection)) == 6
    assert subscription.status().events_behind == 0
    subscription.reset(on_reset=clear)
    assert _rows(postgres_dsn, projection) == []
    assert subscription.status().events_behind == 6
    assert subscription.catch_up() == 6
    assert len(_rows(postgres_dsn, projection)) == 6


@pytest.mark.parametrize("checkpoint", ["created-by-the-batch", "moved-by-the-batch"])
def test_a_reset_truncating_the_projection_under_a_batch_in_flight_waits_for_it(
    store: PostgresEventStore,
    postgres_dsn: str,
    projection: sql.Identifier,
    checkpoint: str,
) -> None:
    project = _project(projection)
    written = threading.Event()
    reset_waits = threading.Event()
    slow_from = 0

    def slow(events: list[RecordedEvent], conn: psycopg.Connection[Any]) -> None:
        project(events, conn)
        if events[0].data["n"] >= slow_from and not written.is_set():
            written.set()
            assert reset_waits.wait(DEADLINE)

    subscription = Subscription(
        store, "truncated", slow, delivery=Delivery.TRANSACTIONAL, batch_size=6
    )
    if checkpoint == "moved-by-the-batch":
        _append(store, 6)
        slow_from = 6
        _wait(lambda: subscription.status().events_behind == 6)
        assert subscription.catch_up() == 6
    _append(store, 6, start=slow_from)
    _wait(lambda: subscription.status().events_behind == 6)

    def truncate(conn: psycopg.Connection[Any]) -> None:
        # TRUNCATE, as docs/projections.md's example does.
        conn.execute(sql.SQL("TRUNCATE {}").format(projection))

    outcomes: dict[str, object] = {}

    def catch_up() -> None:
        try:
            outcomes["batch"] = subscription.catch_up()
        except Exception as exc:  # asserted below
            outcomes["batch"] = exc

    batch = threading.Thread(target=catch_up)
    batch.start()
    try:
        assert written.wait(DEADLINE)
        operator = Subscription(
            store, "truncated", slow, delivery=Delivery.TRANSACTIONAL
        )

        def reset() -> None:
            try:
                operator.reset(on_reset=truncate)
                outcomes["reset"] = None
            except Exception as exc:  # asserted below
                outcomes["reset"] = exc

        resetter = threading.Thread(target=reset)
        resetter.start()
        # The reset now waits on a lock the batch holds.
        _wait(lambda: _a_backend_waits_for_a_lock(postgres_dsn))
    finally:
        reset_waits.set()
        batch.join(DEADLINE)
    resetter.join(DEADLINE)
    # No deadlock: the batch committed, then the reset cleared it all.
    assert outcomes == {"batch": 6, "reset": None}, outcomes
    assert _rows(postgres_dsn, projection) == []
    assert subscription.status().position is None


def test_an_outage_during_a_transactional_batch_is_the_stores_not_the_handlers(
    store: PostgresEventStore, postgres_dsn: str, projection: sql.Identifier
) -> None:
    _append(store, 6)
    project = _project(projection)
    killed: list[int] = []

    def loses_its_connection(
        events: list[RecordedEvent], conn: psycopg.Connection[Any]
    ) -> None:
        project(events, conn)
        if not killed:
            killed.append(conn.info.backend_pid)
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

    subscription = Subscription(
        store,
        "outage",
        loses_its_connection,
        delivery=Delivery.TRANSACTIONAL,
        on_error=OnError.PARK,
        retry_policy=RetryPolicy(max_retries=0),
    )
    _wait(lambda: subscription.status().events_behind == 6)
    with pytest.raises(StoreUnavailableError):
        subscription.catch_up()
    status = subscription.status()
    assert status.state is SubscriptionState.IDLE
    assert (status.parked, status.events_behind) == (0, 6)
    assert subscription.catch_up() == 6
    assert len(_rows(postgres_dsn, projection)) == 6


def test_a_full_pool_during_a_transactional_batch_is_the_stores_not_the_handlers(
    postgres_dsn: str, postgres_schema: str, projection: sql.Identifier
) -> None:
    with PostgresEventStore(
        postgres_dsn,
        schema=postgres_schema,
        pool_config=PoolConfig(min_size=1, max_size=1, timeout=0.2),
    ) as store:
        store.migrate()
        _append(store, 3)
        project = _project(projection)
        took_the_pool = threading.Event()
        give_it_back = threading.Event()

        def hold_the_pool() -> None:
            # Waits for the handler's transaction to give the one
            # connection back, then keeps it from the attempts after.
            with store.pool.connection(timeout=DEADLINE):
                took_the_pool.set()
                give_it_back.wait(DEADLINE)

        holder = threading.Thread(target=hold_the_pool)

        def until_held(seconds: float) -> None:
            took_the_pool.wait(DEADLINE)

        def fails_once(
            events: list[RecordedEvent], conn: psycopg.Connection[Any]
        ) -> None:
            if not holder.is_alive() and not took_the_pool.is_set():
                holder.start()
                raise ValueError("the first attempt fails")
            project(events, conn)

        subscription = Subscription(
            store,
            "full-pool",
            fails_once,
            delivery=Delivery.TRANSACTIONAL,
            on_error=OnError.STOP,
            # Each retry waits until the holder has the pool.
            retry_policy=RetryPolicy(max_retries=2, sleep=until_held),
        )
        _wait(lambda: subscription.status().events_behind == 3)
        try:
            # The retries find the pool taken: the store's trouble, so the
            # events are not the handler's to fail on.
            with pytest.raises(PoolExhaustedError):
                subscription.catch_up()
            assert took_the_pool.is_set()
            assert subscription.state is not SubscriptionState.FAILED
        finally:
            give_it_back.set()
            holder.join(DEADLINE)
        assert subscription.catch_up() == 3
        assert len(_rows(postgres_dsn, projection)) == 3


def test_a_statement_of_the_handlers_that_hits_a_server_limit_parks_its_event(
    store: PostgresEventStore, postgres_dsn: str, projection: sql.Identifier
) -> None:
    _append(store, 4)
    project = _project(projection)

    def handler(events: list[RecordedEvent], conn: psycopg.Connection[Any]) -> None:
        project(events, conn)
        if any(e.data["n"] == 2 for e in events):
            # An error of the kind psycopg calls operational (class 54), on
            # a connection that stays alive: the event's fault, every time.
            conn.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'row too large' "
                "USING ERRCODE = 'program_limit_exceeded'; END $$"
            )

    subscription = Subscription(
        store,
        "limited",
        handler,
        delivery=Delivery.TRANSACTIONAL,
        on_error=OnError.PARK,
        retry_policy=NO_WAIT,
    )
    _wait(lambda: subscription.status().events_behind == 4)
    assert subscription.catch_up() == 3
    status = subscription.status()
    assert (status.parked, status.events_behind) == (1, 0)
    [parked] = subscription.parked()
    assert parked.event.data["n"] == 2
    assert "the handler's statement failed: row too large" in parked.error
    assert sorted(n for _, n in _numbers(postgres_dsn, projection)) == [0, 1, 3]


def test_a_serialization_failure_in_a_transactional_handler_is_the_stores_trouble(
    store: PostgresEventStore, postgres_dsn: str, projection: sql.Identifier
) -> None:
    _append(store, 3)
    project = _project(projection)
    failing = [True]

    def handler(events: list[RecordedEvent], conn: psycopg.Connection[Any]) -> None:
        project(events, conn)
        if failing[0]:
            # What a concurrent writer causes: it passes, whatever the event.
            conn.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'could not serialize' "
                "USING ERRCODE = 'serialization_failure'; END $$"
            )

    subscription = Subscription(
        store,
        "serialized",
        handler,
        delivery=Delivery.TRANSACTIONAL,
        on_error=OnError.PARK,
        retry_policy=NO_WAIT,
    )
    _wait(lambda: subscription.status().events_behind == 3)
    with pytest.raises(StoreUnavailableError, match="could not serialize"):
        subscription.catch_up()
    assert subscription.status().parked == 0  # no event is to blame
    failing[0] = False
    assert subscription.catch_up() == 3


def test_a_timeout_on_a_transactional_batchs_checkpoint_is_the_stores_trouble(
    postgres_dsn: str, postgres_schema: str, projection: sql.Identifier
) -> None:
    with PostgresEventStore(
        postgres_dsn,
        schema=postgres_schema,
        pool_config=PoolConfig(min_size=1, max_size=2, lock_timeout=0.2),
    ) as store:
        store.migrate()
        _append(store, 4)
        subscription = Subscription(
            store,
            "held-checkpoint",
            _project(projection),
            delivery=Delivery.TRANSACTIONAL,
            retry_policy=NO_WAIT,
            batch_size=2,
        )
        _wait(lambda: subscription.status().events_behind == 4)
        assert subscription.catch_up() == 4
        _append(store, 2, start=4)
        _wait(lambda: subscription.status().events_behind == 2)
        checkpoints = sql.Identifier(postgres_schema, "subscriptions")
        with psycopg.connect(postgres_dsn) as holder:
            # Another session holds the checkpoint's row (a reset, say).
            holder.execute(
                sql.SQL("SELECT 1 FROM {} WHERE name = %s FOR UPDATE").format(
                    checkpoints
                ),
                ("held-checkpoint",),
            )
            with pytest.raises(StoreTimeoutError):
                subscription.catch_up()
            holder.rollback()
        assert subscription.status().parked == 0
        assert subscription.state is not SubscriptionState.FAILED
        assert subscription.catch_up() == 2


def test_a_runner_stopped_by_a_failure_ends_its_lock_and_listening_sessions(
    store: PostgresEventStore, postgres_dsn: str, postgres_schema: str
) -> None:
    _append(store, 1)

    def fails(events: list[RecordedEvent]) -> None:
        raise ValueError("poison")

    failing = Subscription(
        store,
        "fails",
        fails,
        retry_policy=RetryPolicy(max_retries=0),
        poll_interval=0.01,
    )
    _wait(lambda: failing.status().events_behind == 1)
    with pytest.raises(SubscriptionFailedError):
        failing.run(threading.Event())
    # The failed runner still exists, yet its sessions are gone: a standby
    # takes the name at once, and nobody listens on the schema's channel.
    second = Subscription(store, "fails", lambda events: None, poll_interval=0.01)
    stop = threading.Event()
    runner = threading.Thread(target=second.run, args=(stop,))
    runner.start()
    try:
        _wait(lambda: second.state is SubscriptionState.RUNNING)
    finally:
        stop.set()
        runner.join(timeout=DEADLINE)
    with psycopg.connect(postgres_dsn) as conn:
        row = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query = %s",
            (_sql.listen_statement(postgres_schema).decode(),),
        ).fetchone()
    assert row == (0,)
    assert failing.state is SubscriptionState.FAILED
