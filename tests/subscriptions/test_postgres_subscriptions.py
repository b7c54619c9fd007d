"""Subscriptions on a real PostgreSQL under late commits: nothing skipped, nothing twice, nothing early."""

from __future__ import annotations

import asyncio
import functools
import os
import resource
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from eventstore import (
    AsyncSubscription,
    LogPosition,
    NewEvent,
    RecordedEvent,
    Subscription,
    SubscriptionState,
)
from eventstore.postgres import (
    AsyncPostgresEventStore,
    PoolConfig,
    PostgresEventStore,
    _reading,
    _sql,
    _subscriptions,
    _subscriptions_async,
)
from eventstore.postgres._subscriptions import AdvisoryLock
from tests import server_faults
from tests.network_faults import BlackholeProxy

pytestmark = pytest.mark.postgres

WRITERS = 6
APPENDS_PER_WRITER = 420
EVENTS_PER_APPEND = 2  # 6 * 420 * 2 = 5,040 events
DEADLINE = 90.0


@pytest.fixture
def make_store(
    postgres_dsn: str, postgres_schema: str
) -> Iterator[Callable[..., PostgresEventStore]]:
    stores: list[PostgresEventStore] = []

    def make(max_size: int = 4) -> PostgresEventStore:
        store = PostgresEventStore(
            postgres_dsn,
            schema=postgres_schema,
            pool_config=PoolConfig(min_size=1, max_size=max_size, timeout=30.0),
        )
        store.migrate()
        stores.append(store)
        return store

    yield make
    for store in stores:
        store.close()


def _write_concurrently(store: PostgresEventStore) -> list[uuid.UUID]:
    """Run the writers to their end; return every event id they wrote."""
    written: list[uuid.UUID] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    barrier = threading.Barrier(WRITERS)

    def write(writer: int) -> None:
        try:
            barrier.wait()
            for n in range(APPENDS_PER_WRITER):
                events = [
                    NewEvent("t", {"writer": writer, "n": n, "k": k})
                    for k in range(EVENTS_PER_APPEND)
                ]
                store.append(
                    f"writer-{writer}", events, expected_version=n * EVENTS_PER_APPEND
                )
                with lock:
                    written.extend(e.event_id for e in events)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=DEADLINE)
    assert not any(thread.is_alive() for thread in threads), "writers did not finish"
    assert not errors, errors
    return written


def _assert_exactly_once(
    handled: list[RecordedEvent], written: list[uuid.UUID]
) -> None:
    counts = Counter(e.event_id for e in handled)
    duplicated = [event_id for event_id, count in counts.items() if count > 1]
    missed = set(written) - set(counts)
    assert (len(missed), len(duplicated)) == (0, 0), (len(missed), len(duplicated))
    assert len(handled) == len(written) >= 5000
    # Each stream's events arrive in their order.
    for writer in range(WRITERS):
        versions = [e.version for e in handled if e.stream_id == f"writer-{writer}"]
        assert versions == list(range(1, len(versions) + 1))


def _follow(
    subscriptions: list[Subscription], stop: threading.Event
) -> list[threading.Thread]:
    threads = [
        threading.Thread(target=subscription.run, args=(stop,))
        for subscription in subscriptions
    ]
    for thread in threads:
        thread.start()
    return threads


@pytest.mark.parametrize("members", [1, 3], ids=["one", "group-of-3"])
def test_followers_handle_every_late_committed_event_exactly_once(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
    members: int,
) -> None:
    store = make_store(max_size=WRITERS + members + 2)
    # Each append pauses before its commit for 0-20 ms, after its events drew
    # their positions: commits land out of position order.
    server_faults.sleep_before_commit(postgres_dsn, postgres_schema)
    handled: list[RecordedEvent] = []
    lock = threading.Lock()

    def handler(events: list[RecordedEvent]) -> None:
        with lock:
            handled.extend(events)

    subscriptions = [
        Subscription(
            store,
            "follower",
            handler,
            group=None if members == 1 else (index, members),
            batch_size=100,
            poll_interval=0.01,
        )
        for index in range(members)
    ]
    stop = threading.Event()
    followers = _follow(subscriptions, stop)
    try:
        written = _write_concurrently(store)
        deadline = time.monotonic() + DEADLINE
        while time.monotonic() < deadline:
            with lock:
                if len(handled) >= len(written):
                    break
            time.sleep(0.01)
        time.sleep(0.1)  # a duplicate, if any, would arrive now
    finally:
        stop.set()
        for thread in followers:
            thread.join(timeout=DEADLINE)
        server_faults.remove(postgres_dsn, postgres_schema)
    _assert_exactly_once(handled, written)
    for subscription in subscriptions:
        assert subscription.state.value == "stopped"
        assert subscription.status().events_behind == 0


async def test_an_async_follower_handles_every_late_committed_event_exactly_once(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    writer_store = make_store(max_size=WRITERS + 1)
    server_faults.sleep_before_commit(postgres_dsn, postgres_schema)
    handled: list[RecordedEvent] = []
    async with AsyncPostgresEventStore(postgres_dsn, schema=postgres_schema) as store:
        follower = AsyncSubscription(
            store, "async-follower", handled.extend, batch_size=100, poll_interval=0.01
        )
        stop = asyncio.Event()
        task = asyncio.create_task(follower.run(stop))
        written = await asyncio.to_thread(_write_concurrently, writer_store)
        async with asyncio.timeout(DEADLINE):
            while len(handled) < len(written):
                await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        stop.set()
        await task
        status = await follower.status()
    server_faults.remove(postgres_dsn, postgres_schema)
    _assert_exactly_once(handled, written)
    assert status.events_behind == 0
    assert status.handled == len(written)


def test_a_fast_commit_waits_for_an_older_slower_transaction(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    store = make_store(max_size=4)
    handled: list[RecordedEvent] = []
    subscription = Subscription(store, "ordered", handled.extend)
    with server_faults.held_before_commit(
        postgres_dsn, postgres_schema, server_faults.in_stream("slow")
    ) as hold:
        slow = threading.Thread(
            target=store.append, args=("slow", [NewEvent("t", {"who": "slow"})])
        )
        slow.start()
        hold.wait_until_held()
        # A later transaction commits first: it is not delivered ahead of
        # the older one, which may still commit before it in the log.
        store.append("fast", [NewEvent("t", {"who": "fast"})])
        assert subscription.catch_up() == 0
        assert subscription.status().position is None
        hold.release()
        slow.join(timeout=DEADLINE)
    deadline = time.monotonic() + DEADLINE
    while len(handled) < 2 and time.monotonic() < deadline:
        subscription.catch_up()
        time.sleep(0.01)
    assert [e.data["who"] for e in handled] == ["slow", "fast"]


def test_a_rolled_back_transactions_hole_is_skipped(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    store = make_store()
    store.append("before", [NewEvent("t", {"n": 0})])
    events = sql.Identifier(postgres_schema, "events")
    with psycopg.connect(postgres_dsn) as conn:
        # An event row drew a position and a transaction id, then rolled back.
        conn.execute(
            sql.SQL(
                "INSERT INTO {} (stream_id, version, event_id, type, schema_version, "
                "data, metadata) VALUES ('ghost', 1, gen_random_uuid(), 't', 1, "
                "'{{}}', '{{}}')"
            ).format(events)
        )
        conn.rollback()
    store.append("after", [NewEvent("t", {"n": 1})])
    handled: list[RecordedEvent] = []
    subscription = Subscription(store, "holes", handled.extend)
    deadline = time.monotonic() + DEADLINE
    while len(handled) < 2 and time.monotonic() < deadline:
        subscription.catch_up()
        time.sleep(0.01)
    assert [e.stream_id for e in handled] == ["before", "after"]
    assert subscription.status().events_behind == 0


def test_a_long_open_transaction_delays_delivery_and_loses_nothing(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
) -> None:
    store = make_store()
    store.append("s", [NewEvent("t", {"n": 0})])
    handled: list[RecordedEvent] = []
    subscription = Subscription(store, "patient", handled.extend)
    deadline = time.monotonic() + DEADLINE
    while not handled and time.monotonic() < deadline:
        subscription.catch_up()
    with psycopg.connect(postgres_dsn) as idle:
        # A transaction that took an id and stays open, as a forgotten
        # session would: the log is held back at its id.
        idle.execute("SELECT pg_current_xact_id()")
        for n in range(1, 4):
            store.append("s", [NewEvent("t", {"n": n})])
        assert subscription.catch_up() == 0
        idle.rollback()
    deadline = time.monotonic() + DEADLINE
    while len(handled) < 4 and time.monotonic() < deadline:
        subscription.catch_up()
        time.sleep(0.01)
    assert [e.data["n"] for e in handled] == [0, 1, 2, 3]


def test_status_and_health_name_the_transaction_that_holds_the_log_back(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
) -> None:
    store = make_store()
    subscription = Subscription(store, "held", lambda events: None)
    assert subscription.status().held_by is None
    with psycopg.connect(postgres_dsn, application_name="forgotten-session") as idle:
        idle.execute("SELECT pg_current_xact_id()")  # takes an id, stays open
        store.append("s", [NewEvent("t", {})])
        status = subscription.status()
        assert status.held_by is not None
        assert status.held_by.pid == idle.info.backend_pid
        assert status.held_by.application_name == "forgotten-session"
        assert status.held_by.state == "idle in transaction"
        assert status.held_by.xact_start is not None
        assert subscription.catch_up() == 0
        report = store.health()
        assert report.log_held_by == status.held_by
        assert report.to_dict()["log_held_by"]["pid"] == idle.info.backend_pid
        idle.rollback()
    deadline = time.monotonic() + DEADLINE
    while subscription.catch_up() == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert subscription.status().held_by is None
    (health,) = store.health().subscriptions
    assert (health.name, health.member, health.parked) == ("held", "", 0)
    assert health.position == str(subscription.status().position)


def _listener_pid(dsn: str, schema: str) -> int | None:
    with psycopg.connect(dsn) as conn:
        row = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE query = %s",
            (_sql.listen_statement(schema).decode(),),
        ).fetchone()
        return None if row is None else int(row[0])


def _follow_in_thread(
    subscription: Subscription,
) -> tuple[threading.Thread, threading.Event]:
    stop = threading.Event()
    thread = threading.Thread(target=subscription.run, args=(stop,))
    thread.start()
    return thread, stop


def test_a_notification_wakes_a_follower_long_before_its_poll(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    store = make_store()
    arrived: list[float] = []
    follower = Subscription(
        store,
        "woken",
        lambda events: arrived.extend(time.monotonic() for _ in events),
        poll_interval=30.0,  # a poll would come far too late for the assertion
    )
    thread, stop = _follow_in_thread(follower)
    try:
        deadline = time.monotonic() + DEADLINE
        while _listener_pid(postgres_dsn, postgres_schema) is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        appended = []
        for n in range(3):
            store.append("s", [NewEvent("t", {"n": n})])
            appended.append(time.monotonic())
            while len(arrived) <= n and time.monotonic() < deadline:
                time.sleep(0.005)
        assert len(arrived) == 3
        assert max(a - b for a, b in zip(arrived, appended, strict=True)) < 5.0
    finally:
        stop.set()
        thread.join(timeout=DEADLINE + 30)


def test_a_lost_notification_delays_delivery_but_loses_nothing(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    store = make_store()
    handled: list[RecordedEvent] = []
    follower = Subscription(store, "deaf", handled.extend, poll_interval=0.2)
    thread, stop = _follow_in_thread(follower)
    try:
        deadline = time.monotonic() + DEADLINE
        while (pid := _listener_pid(postgres_dsn, postgres_schema)) is None:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        # Appended while the follower hears nothing: its NOTIFY is lost.
        for n in range(5):
            store.append("s", [NewEvent("t", {"n": n})])
        while len(handled) < 5 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert [e.data["n"] for e in handled] == list(range(5))
        # It listens again, on a new session.
        while (again := _listener_pid(postgres_dsn, postgres_schema)) in (None, pid):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert again != pid
    finally:
        stop.set()
        thread.join(timeout=DEADLINE)


def test_appends_notify_at_most_once_per_interval_and_followers_miss_nothing(
    postgres_dsn: str, postgres_schema: str
) -> None:
    with (
        PostgresEventStore(
            postgres_dsn, schema=postgres_schema, notify_interval=0.2
        ) as store,
        psycopg.connect(postgres_dsn, autocommit=True) as listener,
    ):
        store.migrate()
        listener.execute(_sql.listen_statement(postgres_schema))
        handled: list[RecordedEvent] = []
        follower = Subscription(store, "burst", handled.extend, poll_interval=30.0)
        thread, stop = _follow_in_thread(follower)
        try:
            started = time.monotonic()
            for n in range(200):
                store.append(f"s-{n % 4}", [NewEvent("t", {"n": n})])
            elapsed = time.monotonic() - started
            notified = sum(1 for _ in listener.notifies(timeout=0.5))
            assert 1 <= notified <= elapsed / 0.2 + 2, (notified, elapsed)
            # The appends whose NOTIFY was left out arrive all the same, well
            # before the follower's 30 s poll.
            deadline = time.monotonic() + 10.0
            while len(handled) < 200 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert sorted(e.data["n"] for e in handled) == list(range(200))
        finally:
            stop.set()
            thread.join(timeout=DEADLINE + 30)


def test_an_appends_notify_waits_for_no_other_connection(
    postgres_dsn: str, postgres_schema: str
) -> None:
    with (
        PostgresEventStore(
            postgres_dsn,
            schema=postgres_schema,
            pool_config=PoolConfig(
                min_size=1, max_size=1, timeout=30.0, application_name="notifier"
            ),
        ) as store,
        psycopg.connect(postgres_dsn, autocommit=True) as listener,
    ):
        store.migrate()
        listener.execute(_sql.listen_statement(postgres_schema))
        outcome: list[float] = []

        def append() -> None:
            started = time.monotonic()
            store.append("s", [NewEvent("t", {})])  # the store's first: it notifies
            outcome.append(time.monotonic() - started)

        taken = threading.Event()
        let_go = threading.Event()

        def take_the_pool() -> None:
            with store.pool.connection(timeout=DEADLINE):
                taken.set()
                let_go.wait(DEADLINE)

        appender = threading.Thread(target=append)
        other = threading.Thread(target=take_the_pool)
        with server_faults.held_before_commit(
            postgres_dsn, postgres_schema, server_faults.from_application("notifier")
        ) as hold:
            appender.start()
            hold.wait_until_held()
            # Next in line for the pool's one connection, once the append
            # gives it back.
            other.start()
            _wait_until(
                lambda: store.pool.get_stats().get("requests_waiting", 0) == 1,
                "the other caller waits for the pool",
            )
        try:
            assert taken.wait(DEADLINE)
            appender.join(5.0)
            # The append and its NOTIFY are done, with the pool taken since.
            assert outcome
            assert not appender.is_alive()
            assert sum(1 for _ in listener.notifies(timeout=1.0, stop_after=1)) == 1
        finally:
            let_go.set()
            appender.join(DEADLINE)
            other.join(DEADLINE)
            server_faults.remove(postgres_dsn, postgres_schema)


def test_without_notifications_followers_poll(
    postgres_dsn: str, postgres_schema: str
) -> None:
    with PostgresEventStore(
        postgres_dsn, schema=postgres_schema, notify_interval=None
    ) as store:
        store.migrate()
        handled: list[RecordedEvent] = []
        follower = Subscription(store, "polling", handled.extend, poll_interval=0.05)
        thread, stop = _follow_in_thread(follower)
        try:
            store.append("s", [NewEvent("t", {})])
            deadline = time.monotonic() + DEADLINE
            while not handled and time.monotonic() < deadline:
                time.sleep(0.01)
            assert len(handled) == 1
        finally:
            stop.set()
            thread.join(timeout=DEADLINE)


def test_a_burst_of_notifications_wakes_a_listener_once(
    postgres_dsn: str, postgres_schema: str
) -> None:
    with (
        PostgresEventStore(postgres_dsn, schema=postgres_schema) as store,
        psycopg.connect(postgres_dsn, autocommit=True) as notifier,
    ):
        store.migrate()
        listener = store._listen()
        assert listener is not None
        try:
            channel = _sql.notify_channel(postgres_schema)
            for _ in range(5):  # five transactions: five notifications queued
                notifier.execute(_sql.NOTIFY, (channel,))
            # A round trip on the listening session: its backend sends every
            # notification already signalled before it answers, and psycopg
            # keeps them for notifies(), so the whole burst is there when the
            # wait starts (on a loaded host the backend could still be
            # sending the last ones while the wait drained the first).
            listener.conn.execute("SELECT 1")
            assert listener.wait(10.0)
            # The four behind the first were answered by the same wake-up.
            assert not listener.wait(0.2)
            notifier.execute(_sql.NOTIFY, (channel,))
            assert listener.wait(10.0)
        finally:
            listener.close()


def test_a_relaxed_checkpoint_move_commits_asynchronously_and_leaves_the_session_alone(
    postgres_dsn: str, postgres_schema: str
) -> None:
    with (
        PostgresEventStore(postgres_dsn, schema=postgres_schema) as store,
        psycopg.connect(postgres_dsn, autocommit=True) as conn,
    ):
        store.migrate()
        # The test server's default is off; the session says what a
        # production server's would be.
        conn.execute("SET synchronous_commit = on")
        store.append("s", [NewEvent("t", {"n": n}) for n in range(3)])
        log = list(store.read_all())
        store._save_checkpoint("relaxed", "", None, log[0].position)
        statements = _sql.Statements.for_schema(postgres_schema)

        def move(durable: bool, expected: int, new: int) -> str:
            with conn.transaction():
                moved = conn.execute(
                    _sql.checkpoint_statement(
                        statements, log[expected].position, durable=durable
                    ),
                    _reading.checkpoint_params(
                        "relaxed", "", log[expected].position, log[new].position
                    ),
                ).fetchall()
                assert moved == [(1,)]
                row = conn.execute("SHOW synchronous_commit").fetchone()
                assert row is not None
                return str(row[0])

        assert move(durable=False, expected=0, new=1) == "off"
        assert move(durable=True, expected=1, new=2) == "on"
        # The transaction's setting ended with it, as SET LOCAL's does: the
        # pooled session that appends next still waits for the disk.
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        relaxed = _sql.checkpoint_statement(statements, log[2].position, durable=False)
        params = _reading.checkpoint_params(
            "relaxed", "", log[2].position, log[0].position
        )
        assert conn.execute(relaxed, params).fetchall() == [(1,)]
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        assert store._load_checkpoint("relaxed", "") == log[0].position


def _holds(handled: list[RecordedEvent], count: int) -> bool:
    return len(handled) >= count


def _wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.005)


def test_a_running_follower_reads_its_checkpoint_from_the_store_once_per_poll(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = make_store()
    loads: list[float] = []
    load = store._load_checkpoint

    def counted(name: str, member: str) -> LogPosition | None:
        loads.append(time.monotonic())
        return load(name, member)

    monkeypatch.setattr(store, "_load_checkpoint", counted)
    handled: list[RecordedEvent] = []
    # Woken by every append, it makes many passes inside one long poll.
    follower = Subscription(store, "remembers", handled.extend, poll_interval=30.0)
    thread, stop = _follow_in_thread(follower)
    try:
        _wait_until(
            lambda: _listener_pid(postgres_dsn, postgres_schema) is not None,
            "the follower never listened",
        )
        for n in range(8):
            store.append("s", [NewEvent("t", {"n": n})])
            _wait_until(functools.partial(_holds, handled, n + 1), f"no event {n}")
    finally:
        stop.set()
        thread.join(timeout=DEADLINE)
    assert [e.data["n"] for e in handled] == list(range(8))
    # Its own moves it knows; the store was read once, as the lock was taken.
    assert len(loads) == 1, loads
    assert store._load_checkpoint("remembers", "") == handled[-1].position


def test_a_reset_from_elsewhere_reaches_a_running_follower_by_its_next_poll(
    make_store: Callable[..., PostgresEventStore],
) -> None:
    store = make_store()
    handled: list[RecordedEvent] = []
    follower = Subscription(store, "replayed", handled.extend, poll_interval=0.1)
    thread, stop = _follow_in_thread(follower)
    try:
        store.append("s", [NewEvent("t", {"n": n}) for n in range(5)])
        _wait_until(lambda: len(handled) == 5, "the first delivery never came")
        # Another process's object of the same name, with no lock: the log
        # stays quiet, so no move of the runner's meets the reset.
        Subscription(make_store(), "replayed", lambda events: None).reset()
        _wait_until(lambda: len(handled) == 10, "the replay never came")
    finally:
        stop.set()
        thread.join(timeout=DEADLINE)
    assert [e.data["n"] for e in handled] == [0, 1, 2, 3, 4] * 2


def _lock_backend(dsn: str, pid: int) -> tuple[object, ...] | None:
    with psycopg.connect(dsn) as conn:
        return conn.execute(
            "SELECT state_change FROM pg_stat_activity WHERE pid = %s", (pid,)
        ).fetchone()


def _probe_by_socket_until_terminated(
    lock: AdvisoryLock, dsn: str, checks: int
) -> None:
    """Check *lock* within its probe interval, then after its backend ends."""
    pid = lock.conn.info.backend_pid
    before = _lock_backend(dsn, pid)
    # As if it had just made its round trip: only the socket can tell.
    lock.probed_at = time.monotonic() + 3600
    assert all(lock.alive() for _ in range(checks))
    # No statement ran on the session: its state never changed.
    assert _lock_backend(dsn, pid) == before
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    _wait_until(
        lambda: _lock_backend(dsn, pid) is None, "the lock's backend never ended"
    )
    assert not lock.alive()


def test_a_locks_session_is_probed_without_a_round_trip_until_the_server_ends_it(
    make_store: Callable[..., PostgresEventStore], postgres_dsn: str
) -> None:
    store = make_store()
    lock = store._lock_subscription("probed", "")
    assert lock is not None
    try:
        _probe_by_socket_until_terminated(lock, postgres_dsn, checks=20)
        assert lock.conn.closed
    finally:
        lock.release()
    # A live lock past its probe interval makes its round trip, and stays held.
    again = store._lock_subscription("probed", "")
    assert again is not None
    try:
        again.probed_at = time.monotonic() - 3600
        assert again.alive()
        assert again.probed_at > time.monotonic() - 60
    finally:
        again.release()


def test_a_lock_on_a_descriptor_past_1023_is_probed_by_its_socket_too(
    make_store: Callable[..., PostgresEventStore], postgres_dsn: str
) -> None:
    # A busy service has more than 1,024 files open; select() would refuse
    # the lock's socket, and every check would become a round trip.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard >= 1200, "the host allows too few open files for this test"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, 1200), hard))
    store = make_store()
    fillers: list[int] = []
    try:
        while len(fillers) < 1100 and (fillers[-1] if fillers else 0) < 1030:
            fillers.append(os.open(os.devnull, os.O_RDONLY))
        lock = store._lock_subscription("far", "")
        assert lock is not None
        try:
            assert lock.conn.fileno() > 1023
            _probe_by_socket_until_terminated(lock, postgres_dsn, checks=5)
        finally:
            lock.release()
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_subscriptions_whose_32_bit_keys_collide_each_get_their_lock(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    # Among 300,000 names some pairs share a 32-bit hash (about ten, by the
    # birthday bound): with such keys one subscription would stand by forever.
    prefix = _sql.subscription_lock_key(postgres_schema, "sub-", "")[:-1]
    with psycopg.connect(postgres_dsn) as conn:
        row = conn.execute(
            "SELECT min(n), max(n) FROM ("
            " SELECT n, hashtext(%s || n || '/') AS h"
            " FROM generate_series(1, 300000) AS n) AS hashed "
            "GROUP BY h HAVING count(*) = 2 LIMIT 1",
            (prefix,),
        ).fetchone()
        assert row is not None, "no 32-bit collision among 300,000 names"
        names = [f"sub-{row[0]}", f"sub-{row[1]}"]
        keys = [_sql.subscription_lock_key(postgres_schema, n, "") for n in names]
        hashed = conn.execute(
            "SELECT hashtext(%s) = hashtext(%s), "
            "hashtextextended(%s, %s) = hashtextextended(%s, %s)",
            (
                *keys,
                keys[0],
                _sql.SUBSCRIPTION_LOCK_SEED,
                keys[1],
                _sql.SUBSCRIPTION_LOCK_SEED,
            ),
        ).fetchone()
    assert hashed == (True, False)
    store = make_store()
    locks = [store._lock_subscription(name, "") for name in names]
    try:
        assert all(lock is not None for lock in locks)
        # The same name is still refused while its lock is held.
        assert store._lock_subscription(names[0], "") is None
    finally:
        for lock in locks:
            if lock is not None:
                lock.release()


def test_a_lock_whose_session_was_killed_is_released_at_once_and_taken_again(
    make_store: Callable[..., PostgresEventStore], postgres_dsn: str
) -> None:
    store = make_store()
    lock = store._lock_subscription("killed", "")
    assert lock is not None
    pid = lock.conn.info.backend_pid
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s, 5000)", (pid,))
    started = time.monotonic()
    lock.release()  # no error, no wait for a server that is gone
    assert time.monotonic() - started < 1.0
    assert lock.conn.closed
    taken = store._lock_subscription("killed", "")
    assert taken is not None
    taken.release()


@pytest.mark.parametrize("flavour", ["sync", "async"])
async def test_a_lock_whose_server_stops_answering_counts_as_lost_within_its_wait(
    postgres_dsn: str,
    postgres_schema: str,
    monkeypatch: pytest.MonkeyPatch,
    flavour: str,
) -> None:
    # A network that silently drops packets: TCP would wait many minutes.
    module = _subscriptions_async if flavour == "async" else _subscriptions
    monkeypatch.setattr(module, "LOCK_PROBE_WAIT", 0.5)
    config = PoolConfig(min_size=1, max_size=2)
    with BlackholeProxy(postgres_dsn) as proxy:
        if flavour == "async":
            async with AsyncPostgresEventStore(
                proxy.dsn, schema=postgres_schema, pool_config=config
            ) as async_store:
                await async_store.migrate()
                async_lock = await async_store._lock_subscription("unanswered", "")
                assert async_lock is not None
                proxy.drop()
                async_lock.probed_at = time.monotonic() - 3600  # due for a round trip
                started = time.monotonic()
                assert not await async_lock.alive()
                assert async_lock.conn.closed
        else:
            with PostgresEventStore(
                proxy.dsn, schema=postgres_schema, pool_config=config
            ) as store:
                store.migrate()
                lock = store._lock_subscription("unanswered", "")
                assert lock is not None
                proxy.drop()
                lock.probed_at = time.monotonic() - 3600
                started = time.monotonic()
                assert not lock.alive()
                assert lock.conn.closed
        # The probe's wait, then the release's (1 s): never TCP's minutes.
        assert time.monotonic() - started < 5.0


async def test_a_runner_cancelled_as_its_lock_probe_is_answered_stops(
    postgres_dsn: str, postgres_schema: str
) -> None:
    # On Python 3.11 asyncio.wait_for swallowed a cancellation that came in
    # the turn the lock probe's answer did (gh-86296): run() went on
    # following the log. The lock's backend is frozen so that the runner
    # waits in its probe, then thawed so that the answer lands with the cancel.
    async with AsyncPostgresEventStore(
        postgres_dsn,
        schema=postgres_schema,
        pool_config=PoolConfig(min_size=1, max_size=2),
    ) as store:
        await store.migrate()
        subscription = AsyncSubscription(
            store, "probed", lambda events: None, poll_interval=0.05
        )
        stop = asyncio.Event()
        task = asyncio.create_task(subscription.run(stop))
        deadline = time.monotonic() + 10.0
        while subscription.state is not SubscriptionState.RUNNING:
            assert time.monotonic() < deadline, "the runner never took its lock"
            await asyncio.sleep(0.02)
        async with await psycopg.AsyncConnection.connect(
            postgres_dsn, autocommit=True
        ) as conn:
            cursor = await conn.execute(
                "SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE l.locktype = 'advisory' AND a.datname = current_database()"
            )
            ((pid,),) = await cursor.fetchall()
        os.kill(pid, signal.SIGSTOP)
        try:
            # Longer than LOCK_PROBE_EVERY: the runner's next turn probes.
            await asyncio.sleep(_subscriptions_async.LOCK_PROBE_EVERY + 0.5)
        finally:
            os.kill(pid, signal.SIGCONT)
        time.sleep(0.05)  # the answer is in the socket before the loop looks
        asyncio.get_running_loop().call_later(0, task.cancel)
        await asyncio.wait([task], timeout=5.0)
        try:
            assert task.done(), "run() went on after task.cancel()"
            assert task.cancelled()
        finally:
            stop.set()
            await asyncio.wait([task], timeout=5.0)


def test_a_standby_asks_on_a_pooled_connection_and_opens_no_session_while_the_lock_is_held(
    make_store: Callable[..., PostgresEventStore], postgres_dsn: str
) -> None:
    active, standby = make_store(), make_store()
    lock = active._lock_subscription("busy", "")
    assert lock is not None
    try:
        assert standby._lock_subscription("busy", "") is None  # its pool warm
        before = server_faults.sessions_opened(postgres_dsn)
        assert all(standby._lock_subscription("busy", "") is None for _ in range(30))
        # One session: the measurement's own second connection.
        assert server_faults.sessions_opened(postgres_dsn) - before <= 2
    finally:
        lock.release()
    # Free again: the standby opens its session and takes the lock.
    taken = standby._lock_subscription("busy", "")
    assert taken is not None
    taken.release()


def _timeouts_logged(caplog: pytest.LogCaptureFixture) -> int:
    return sum("timed out on the store" in r.message for r in caplog.records)


def test_a_runner_waits_out_a_pool_with_no_free_connection(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The service's own work holds the pool's one connection; the runner's
    # tries time out on the pool, and it keeps going instead of ending.
    writer = make_store()
    writer.append("busy", [NewEvent("t", {"n": 0})], expected_version=0)
    store = PostgresEventStore(
        postgres_dsn,
        schema=postgres_schema,
        pool_config=PoolConfig(min_size=1, max_size=1, timeout=0.05),
    )
    handled: list[RecordedEvent] = []
    subscription = Subscription(store, "busy-pool", handled.extend, poll_interval=0.01)
    stop = threading.Event()
    crashed: list[BaseException] = []

    def run() -> None:
        try:
            subscription.run(stop)
        except BaseException as exc:
            crashed.append(exc)

    held = store.pool.getconn()
    runner = threading.Thread(target=run)
    try:
        with caplog.at_level("DEBUG", logger="eventstore.subscription"):
            runner.start()
            _wait_until(
                lambda: not runner.is_alive() or _timeouts_logged(caplog) >= 5,
                "the runner never met the full pool",
            )
            assert runner.is_alive(), crashed
            assert handled == []
            # One warning for the outage, its repeats below it: a line each
            # poll would bury the service's log.
            warnings = [r for r in caplog.records if r.levelname == "WARNING"]
            assert len(warnings) == 1, [r.message for r in warnings]
            assert "timed out on the store" in warnings[0].message
            store.pool.putconn(held)
            held = None
            _wait_until(lambda: _holds(handled, 1), "the runner never caught up")
        back = [r for r in caplog.records if "reached the store again" in r.message]
        assert len(back) == 1, back
        assert back[0].levelname == "INFO"
    finally:
        if held is not None:
            store.pool.putconn(held)
        stop.set()
        runner.join(timeout=DEADLINE)
        store.close()
    assert not crashed
    assert subscription.state is SubscriptionState.STOPPED
