"""Concurrency on a real PostgreSQL: racing appends, and the global log under late commits."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import psycopg_pool
import pytest
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from eventstore import (
    AppendRequest,
    AppendResult,
    ConcurrencyError,
    LogPosition,
    NewEvent,
    Snapshot,
)
from eventstore.postgres import PoolConfig, PostgresEventStore
from eventstore.testing.concurrency import assert_one_winner_per_round
from eventstore.testing.logwait import wait_for_position
from tests import server_faults

pytestmark = pytest.mark.postgres

THREADS = 10
ROUNDS = 100
WRITERS = 8
APPENDS_PER_WRITER = 320
EVENTS_PER_APPEND = 2  # 8 * 320 * 2 = 5,120 events
DEADLINE = 60.0


@pytest.fixture(params=[None, 8], ids=["plain", "partitioned"])
def make_store(
    postgres_dsn: str, postgres_schema: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., PostgresEventStore]]:
    # Every concurrency test runs on both layouts: one table per role, and
    # tables hash-partitioned by stream in 8.
    stores: list[PostgresEventStore] = []

    def make(**config: Any) -> PostgresEventStore:
        store = PostgresEventStore(
            postgres_dsn,
            schema=postgres_schema,
            pool_config=PoolConfig(**config),
            partitions=request.param,
        )
        stores.append(store)
        store.migrate()
        return store

    yield make
    for store in stores:
        store.close()


def test_ten_connections_racing_one_expected_version_have_exactly_one_winner_per_round(
    make_store: Callable[..., PostgresEventStore],
) -> None:
    store = make_store(min_size=THREADS, max_size=THREADS)
    assert_one_winner_per_round(store, threads=THREADS, rounds=ROUNDS)
    assert store.pool.get_stats()["pool_size"] == THREADS


def _wait_until_blocked_on_a_lock(dsn: str, application_name: str) -> None:
    """Return once a backend of *application_name* waits on a lock (or fail at the deadline)."""
    deadline = time.monotonic() + DEADLINE
    with psycopg.connect(dsn, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = %s AND wait_event_type = 'Lock'",
                (application_name,),
            ).fetchone()
            if row is not None and row[0] > 0:
                return
            time.sleep(0.01)
    raise AssertionError(f"no backend of {application_name!r} ever waited on a lock")


@pytest.mark.parametrize("streams", ["existing", "new"])
def test_two_multi_stream_appends_naming_the_same_streams_in_opposite_orders_both_commit(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
    streams: str,
) -> None:
    first = make_store(application_name="first")
    second = make_store(application_name="second")
    if streams == "existing":
        for stream in ("a", "b"):
            first.append(stream, [NewEvent("opened", {})])
    outcomes: dict[str, object] = {}

    def append_many(store: PostgresEventStore, name: str, order: str) -> None:
        try:
            outcomes[name] = store.append_many(
                [AppendRequest(s, [NewEvent("moved", {"by": name})]) for s in order]
            )
        except Exception as exc:  # asserted below
            outcomes[name] = exc

    # The first is held right after inserting its event of stream a, with b
    # still to come; the second then asks for b and a.
    held = sql.SQL("{} AND {}").format(
        server_faults.from_application("first"), server_faults.in_stream("a")
    )
    one = threading.Thread(target=append_many, args=(first, "first", "ab"))
    other = threading.Thread(target=append_many, args=(second, "second", "ba"))
    with server_faults.held_before_commit(
        postgres_dsn, postgres_schema, held, at_commit=False
    ) as hold:
        one.start()
        hold.wait_until_held()
        other.start()
        _wait_until_blocked_on_a_lock(postgres_dsn, "second")
    one.join(DEADLINE)
    other.join(DEADLINE)
    server_faults.remove(postgres_dsn, postgres_schema)
    # Both commit (before, the deadlock detector aborted one, reported as an outage).
    assert all(isinstance(outcome, list) for outcome in outcomes.values()), outcomes
    expected = 3 if streams == "existing" else 2
    assert first.stream_version("a") == first.stream_version("b") == expected


def _create_while_contended(
    creator: PostgresEventStore,
    stream_id: str,
    events: list[NewEvent],
    contend: Callable[[], None],
    *,
    dsn: str,
    schema: str,
) -> AppendResult:
    """
    Create *stream_id*, and run *contend* while the creation is uncommitted.

    The server holds the creator's append (application "creator") just
    before its commit until a backend of the application "contender" waits
    on a lock; returns the creator's result once both are done.
    """
    created: list[AppendResult] = []
    thread = threading.Thread(
        target=lambda: created.append(creator.append(stream_id, events))
    )
    rival = threading.Thread(target=contend)
    held = server_faults.from_application("creator")
    with server_faults.held_before_commit(dsn, schema, held) as hold:
        thread.start()
        hold.wait_until_held()
        rival.start()
        _wait_until_blocked_on_a_lock(dsn, "contender")
    thread.join(DEADLINE)
    rival.join(DEADLINE)
    server_faults.remove(dsn, schema)
    (result,) = created
    return result


@pytest.mark.parametrize(
    "path", ["one statement", "transaction, new first", "transaction, new last"]
)
@pytest.mark.parametrize("same_events", [False, True], ids=["other", "retry"])
def test_creating_a_stream_while_another_creator_is_uncommitted_waits_for_it(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
    path: str,
    same_events: bool,
) -> None:
    """
    The contender waits on the creator's uncommitted stream row, then reports
    a conflict, or the creator's result when it is a retry of the same events.

    Alone, its statement fails on the streams key and runs again; among other
    requests of an `append_many`, it claims nothing instead, so the requests
    before it are not run (and do not draw log positions) twice.
    """
    creator = make_store(min_size=1, max_size=1, application_name="creator")
    contender = make_store(min_size=1, max_size=1, application_name="contender")
    events = [NewEvent("t", {"who": "creator"})]
    mine = events if same_events else [NewEvent("t", {"who": "contender"})]
    requests = [
        AppendRequest("new", mine, 0),
        AppendRequest("other", [NewEvent("t", {})]),
    ]
    outcome: list[object] = []

    def contend() -> None:
        try:
            if path == "one statement":
                outcome.append(contender.append("new", mine, expected_version=0))
            elif path == "transaction, new first":
                outcome.extend(contender.append_many(requests))
            else:
                outcome.extend(reversed(contender.append_many(requests[::-1])))
        except ConcurrencyError as exc:
            outcome.append(exc)

    result = _create_while_contended(
        creator, "new", events, contend, dsn=postgres_dsn, schema=postgres_schema
    )
    stored = list(contender.read_stream("new"))
    assert [e.event_id for e in stored] == [events[0].event_id]
    written = contender.stream_version("other")
    if same_events:
        # A retry is no conflict, alone or among other requests.
        assert outcome[0] == result
        assert written == (0 if path == "one statement" else 1)
    else:
        error = outcome[0]
        assert isinstance(error, ConcurrencyError)
        assert (error.stream_id, error.expected, error.actual) == ("new", 0, 1)
        assert written == 0
    # Log positions drawn and not used: only by a refused append_many whose
    # earlier request was inserted before the refusal (docs/contract.md).
    after = contender.append("after", [NewEvent("t", {})])
    unused = after.positions[0].position - result.positions[0].position - 1 - written
    refused_after_writing = path == "transaction, new last" and not same_events
    assert unused == (1 if refused_after_writing else 0)


class _Tail:
    """A reader tailing the log with checkpoints, by our read_all or by position alone."""

    def __init__(self, read_page: Callable[[Any], list[tuple[Any, uuid.UUID]]]) -> None:
        self.read_page = read_page
        self.seen: list[uuid.UUID] = []
        self.checkpoint: Any = None

    def poll(self) -> int:
        page = self.read_page(self.checkpoint)
        for key, event_id in page:
            assert self.checkpoint is None or key > self.checkpoint
            self.checkpoint = key
            self.seen.append(event_id)
        return len(page)


def _naive_reader(dsn: str, schema: str) -> tuple[psycopg.Connection[Any], _Tail]:
    """Tail the events table by position alone: the design the log must not use."""
    conn = psycopg.connect(dsn, autocommit=True)
    query = sql.SQL(
        "SELECT position, event_id FROM {} WHERE position > %s ORDER BY position LIMIT 200"
    ).format(sql.Identifier(schema, "events"))

    def read_page(after: int | None) -> list[tuple[Any, uuid.UUID]]:
        return [
            (row[0], row[1]) for row in conn.execute(query, (after or 0,)).fetchall()
        ]

    return conn, _Tail(read_page)


def _store_reader(store: PostgresEventStore) -> _Tail:
    def read_page(after: LogPosition | None) -> list[tuple[Any, uuid.UUID]]:
        return [(e.position, e.event_id) for e in store.read_all(after, limit=200)]

    return _Tail(read_page)


def test_a_tailing_reader_sees_every_event_exactly_once_despite_late_commits_and_position_order_would_miss_some(  # one scenario, told in order
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    store = make_store(min_size=WRITERS + 1, max_size=WRITERS + 2)
    # Pauses inside each append's statement, after its events have drawn
    # their positions: commits land out of position order.
    server_faults.sleep_before_commit(postgres_dsn, postgres_schema)
    written: list[uuid.UUID] = []
    written_lock = threading.Lock()
    errors: list[BaseException] = []
    done = threading.Event()

    def write(writer: int) -> None:
        try:
            for n in range(APPENDS_PER_WRITER):
                events = [
                    NewEvent("t", {"writer": writer, "n": n, "k": k})
                    for k in range(EVENTS_PER_APPEND)
                ]
                store.append(f"writer-{writer}", events, expected_version=n * 2)
                with written_lock:
                    written.extend(e.event_id for e in events)
        except BaseException as exc:
            errors.append(exc)
            raise

    ours = _store_reader(store)
    naive_conn, naive = _naive_reader(postgres_dsn, postgres_schema)
    writers = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
    for thread in writers:
        thread.start()

    def join_writers() -> None:
        for thread in writers:
            thread.join()
        done.set()

    joiner = threading.Thread(target=join_writers)
    joiner.start()
    deadline = time.monotonic() + DEADLINE
    try:
        while not done.is_set() and time.monotonic() < deadline:
            ours.poll()
            naive.poll()
        joiner.join(timeout=max(deadline - time.monotonic(), 0))
        assert done.is_set(), "writers did not finish in time"
        assert not errors, errors
        total = WRITERS * APPENDS_PER_WRITER * EVENTS_PER_APPEND
        assert len(written) == total
        # Drain: after the writers finished, the log catches up.
        while len(ours.seen) < total and time.monotonic() < deadline:
            if not ours.poll():
                time.sleep(0.01)
        while naive.poll():
            pass
    finally:
        naive_conn.close()

    assert len(ours.seen) == len(set(ours.seen)), "duplicates in read_all"
    assert set(ours.seen) == set(written), "read_all missed events"
    assert len(ours.seen) >= 5000
    # Ordering by position alone, with the same checkpointing, skipped events
    # whose transactions committed after a higher position was read.
    missed = set(written) - set(naive.seen)
    assert missed, "position order happened to miss nothing; the scenario is too gentle"


def test_a_late_commit_is_missed_by_position_order_but_not_by_read_all(
    make_store: Callable[..., PostgresEventStore],
    postgres_dsn: str,
    postgres_schema: str,
) -> None:
    store = make_store(min_size=2, max_size=3)
    results: list[AppendResult] = []
    slow = threading.Thread(
        target=lambda: results.append(
            store.append("slow", [NewEvent("t", {"who": "slow"})])
        )
    )
    naive_conn, naive = _naive_reader(postgres_dsn, postgres_schema)
    ours = _store_reader(store)
    held = server_faults.in_stream("slow")
    try:
        with server_faults.held_before_commit(
            postgres_dsn, postgres_schema, held
        ) as hold:
            slow.start()
            hold.wait_until_held()  # its position is drawn; its commit waits
            fast = store.append("fast", [NewEvent("t", {"who": "fast"})])
            # The fast event has the higher position but committed first.
            assert naive.poll() == 1
            assert ours.poll() == 0  # held back: an older transaction is open
        slow.join(DEADLINE)
        wait_for_position(store, fast.positions[0], timeout=DEADLINE)
        naive.poll()
        ours.poll()
    finally:
        naive_conn.close()
    (slow_result,) = results
    assert slow_result.positions[0].position < fast.positions[0].position
    assert naive.seen == [fast_id := next(store.read_stream("fast")).event_id]
    slow_id = next(store.read_stream("slow")).event_id
    assert ours.seen == [slow_id, fast_id]


def _with_isolation(dsn: str, level: str) -> str:
    """*dsn* whose sessions default to isolation *level*, as a database or role may set."""
    params = conninfo_to_dict(dsn)
    escaped = level.replace(" ", "\\ ")
    options = (
        f"{params.get('options') or ''} -c default_transaction_isolation={escaped}"
    )
    return make_conninfo("", **{**params, "options": options.strip()})


def _race_unconditional_appends(store: PostgresEventStore, threads: int) -> None:
    """*threads* threads, released together 10 times, each appending with ANY and append_many."""
    barrier = threading.Barrier(threads)
    failures: list[BaseException] = []

    def append() -> None:
        for _ in range(10):
            barrier.wait(DEADLINE)
            try:
                store.append("anything", [NewEvent("t", {})])
                store.append_many(
                    [
                        AppendRequest("left", [NewEvent("t", {})]),
                        AppendRequest("right", [NewEvent("t", {})]),
                    ]
                )
            except Exception as exc:  # the outcome under test
                failures.append(exc)

    workers = [threading.Thread(target=append) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(DEADLINE)
    assert not failures, failures[:3]
    for stream_id in ("anything", "left", "right"):
        assert store.stream_version(stream_id) == threads * 10


@pytest.mark.parametrize("level", ["repeatable read", "serializable"])
def test_appends_race_as_under_read_committed_when_the_server_defaults_to_another_isolation(
    postgres_dsn: str, postgres_schema: str, level: str
) -> None:
    # The store's sessions run READ COMMITTED whatever the database, the
    # role or the DSN default to: a loser re-reads the stream and reports a
    # conflict, and an append with ANY never fails for a concurrent one.
    dsn = _with_isolation(postgres_dsn, level)
    with PostgresEventStore(
        dsn, schema=postgres_schema, pool_config=PoolConfig(min_size=4, max_size=4)
    ) as store:
        store.migrate()
        assert_one_winner_per_round(store, threads=4, rounds=20)
        _race_unconditional_appends(store, threads=4)


def test_appends_on_a_pool_passed_in_that_defaults_to_repeatable_read_are_rerun(
    postgres_dsn: str, postgres_schema: str
) -> None:
    # A caller's sessions keep their own settings: a serialization failure
    # of an append is run again on a fresh snapshot, which then sees the
    # concurrent writer's commit.
    pool = psycopg_pool.ConnectionPool(
        _with_isolation(postgres_dsn, "repeatable read"),
        min_size=4,
        max_size=4,
        kwargs={"autocommit": True},
        open=True,
    )
    try:
        with PostgresEventStore(pool=pool, schema=postgres_schema) as store:
            store.migrate()
            assert_one_winner_per_round(store, threads=4, rounds=20)
            _race_unconditional_appends(store, threads=4)
    finally:
        pool.close()


SAVERS = 16
SNAPSHOT_ROUNDS = 8


def test_concurrent_snapshot_saves_of_one_stream_keep_only_the_newest_two(
    make_store: Callable[..., PostgresEventStore],
) -> None:
    # Each save prunes what is older than the newest two; unserialised, the
    # prunes of concurrent saves each missed the others' rows, and a round of
    # 16 saves left up to 17.
    store = make_store(min_size=SAVERS, max_size=SAVERS)
    store.append("s", [NewEvent("e", {}) for _ in range(SAVERS * SNAPSHOT_ROUNDS)])
    for rnd in range(SNAPSHOT_ROUNDS):
        barrier = threading.Barrier(SAVERS, timeout=DEADLINE)
        errors: list[BaseException] = []

        threads = [
            threading.Thread(
                target=_save_snapshot_at,
                args=(store, rnd * SAVERS + i + 1, barrier, errors),
            )
            for i in range(SAVERS)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(DEADLINE)
        assert not errors, f"round {rnd}: {errors!r}"
        newest = (rnd + 1) * SAVERS
        kept = store.load("s", use_snapshot=True).snapshot
        assert kept is not None
        assert kept.version == newest
        assert _snapshot_versions(store, "s") == [newest - 1, newest], f"round {rnd}"


def _save_snapshot_at(
    store: PostgresEventStore,
    version: int,
    barrier: threading.Barrier,
    errors: list[BaseException],
) -> None:
    try:
        barrier.wait()
        store.save_snapshot(Snapshot("s", version, "t", 1, {"v": version}))
    except BaseException as exc:  # reported by the test, with the round
        errors.append(exc)


def _snapshot_versions(store: PostgresEventStore, stream_id: str) -> list[int]:
    with store.pool.connection() as conn:
        rows = conn.execute(
            sql.SQL(
                "SELECT version FROM {} WHERE stream_id = %s ORDER BY version"
            ).format(sql.Identifier(store.schema, "snapshots")),
            (stream_id,),
        ).fetchall()
    return [row[0] for row in rows]
