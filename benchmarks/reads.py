"""
PostgreSQL read workloads and repository loads: eventstore against its peers.

The ``eventsourcing`` recorder's reads return `StoredEvent`s and
`Notification`s whose state is still bytes: that is what is timed, and it
is compared with eventstore's decoded `RecordedEvent`s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import attrs
import psycopg

from benchmarks import peers
from benchmarks.baseline import Baseline, append_batch
from benchmarks.context import DATA, Context, checked, event, result
from benchmarks.harness import Result, Timed, interleave_sides, stopwatch
from eventstore import (
    Aggregate,
    LogPosition,
    RecordedEvent,
    Registry,
    Repository,
    applies,
)
from eventstore.postgres import PostgresEventStore
from eventstore.testing import read_log


def fill_stream(
    stores: Sequence[PostgresEventStore],
    cursor: psycopg.Cursor[Any],
    base: Baseline,
    stream: str,
    count: int,
) -> None:
    chunk = 500
    for first in range(0, count, chunk):
        for store in stores:
            store.append(
                stream,
                [event(n) for n in range(first, first + chunk)],
                expected_version=first,
            )
        datas = [{**DATA, "n": n} for n in range(first, first + chunk)]
        append_batch(cursor, base, stream, first + 1, datas)


def read_stream(ctx: Context) -> Result:
    length = 10_000
    reads = ctx.size(5, 1)
    stores = ctx.stores("read_stream")
    peer = ctx.peer("read_stream")
    conn, base = ctx.baseline("read_stream")
    fill_stream(stores, conn.cursor(), base, "long", length)
    originator = peers.stream_id("long")
    for first in range(0, length, 500):
        peer.insert(
            [
                peers.event(originator, n + 1, {**DATA, "n": n})
                for n in range(first, first + 500)
            ]
        )
    base_cursor = conn.cursor(binary=True)
    seen: dict[str, int] = {}

    def baseline(rep: int) -> float:
        def work() -> None:
            for _ in range(reads):
                base_cursor.execute(base.read_stream, ("long",), prepare=True)
                rows = base_cursor.fetchall()
                seen["baseline"] = len(rows)
                seen["baseline_last"] = rows[-1][5]["n"]

        return stopwatch(work)

    def eventstore(store: PostgresEventStore, side: str) -> Timed:
        return stream_reader(store, "long", reads, seen, side)

    def eventsourcing(rep: int) -> float:
        def work() -> None:
            for _ in range(reads):
                stored = peer.select(originator)
                seen["eventsourcing"] = len(stored)
                seen["eventsourcing_last_version"] = stored[-1].originator_version
                seen["eventsourcing_last"] = peers.data_of(stored[-1].state)["n"]

        return stopwatch(work)

    figures = interleave_sides(
        ctx.repetitions,
        reads * length,
        {
            "eventstore": eventstore(stores[0], "eventstore"),
            "baseline": baseline,
            "eventsourcing": eventsourcing,
            "partitioned": eventstore(stores[1], "partitioned"),
        },
    )
    outcome = result(
        "read_stream_10k",
        f"read one {length:,}-event stream into RecordedEvents, {reads}x per repetition",
        "events/s",
        figures,
        target=0.7,
    )

    def check() -> None:
        assert (
            seen["eventstore"] == seen["partitioned"] == seen["baseline"] == length
        ), str(seen)
        assert (
            seen["eventstore_last"]
            == seen["partitioned_last"]
            == seen["baseline_last"]
            == length - 1
        ), str(seen)
        for side in ("eventstore", "partitioned"):
            assert seen[f"{side}_first_version"] == 1, str(seen)
            assert seen[f"{side}_last_version"] == length, str(seen)
        assert seen["eventsourcing"] == length, str(seen)
        assert seen["eventsourcing_last_version"] == length, str(seen)
        assert seen["eventsourcing_last"] == length - 1, str(seen)
        for store in stores:
            events = list(store.read_stream("long", from_version=5_000, limit=3))
            assert all(isinstance(e, RecordedEvent) for e in events)
            assert [e.version for e in events] == [5_000, 5_001, 5_002]

    return checked(outcome, check)


def stream_reader(
    store: PostgresEventStore, stream: str, reads: int, seen: dict[str, int], side: str
) -> Timed:
    """
    A repetition: read *stream* whole *reads* times.

    What the last read saw goes into *seen*: its length as *side*, the
    ``n`` of its last event as ``<side>_last``, its first and last versions
    as ``<side>_first_version`` and ``<side>_last_version``.
    """

    def run(rep: int) -> float:
        def work() -> None:
            for _ in range(reads):
                events = list(store.read_stream(stream))
                seen[side] = len(events)
                seen[f"{side}_last"] = events[-1].data["n"]
                seen[f"{side}_first_version"] = events[0].version
                seen[f"{side}_last_version"] = events[-1].version

        return stopwatch(work)

    return run


def fill_log(
    stores: Sequence[PostgresEventStore],
    peer: peers.Peer | None,
    cursor: psycopg.Cursor[Any],
    base: Baseline,
    *,
    streams: int,
    per_stream: int,
) -> None:
    for s in range(streams):
        for store in stores:
            store.append(
                f"s{s}", [event(n) for n in range(per_stream)], expected_version=0
            )
        datas = [{**DATA, "n": n} for n in range(per_stream)]
        append_batch(cursor, base, f"s{s}", 1, datas)
        if peer is None:
            continue
        originator = peers.stream_id(f"s{s}")
        peer.insert(
            [peers.event(originator, n + 1, data) for n, data in enumerate(datas)]
        )


def wait_for_log(store: PostgresEventStore, total: int) -> float:
    """Wait until *total* events of the log are visible; return the seconds that took."""
    # The log may lag a moment behind the appends (older transactions in the
    # cluster hold it back): wait for all of it before timing reads.
    started = time.perf_counter()
    read_log(store, total, timeout=60.0)
    return time.perf_counter() - started


# Log readers: page through the log after a checkpoint until a short page or
# *most* events; return how many were read and whether the positions grew.


def read_log_baseline(
    cursor: psycopg.Cursor[Any], base: Baseline, after: int, page: int, most: int
) -> tuple[int, bool]:
    count = 0
    ordered = True
    while count < most:
        cursor.execute(base.read_page, (after, page), prepare=True)
        rows = cursor.fetchall()
        count += len(rows)
        if rows:
            ordered = ordered and after < rows[0][0]
            after = rows[-1][0]
        if len(rows) < page:
            break
    return count, ordered


def read_log_eventstore(
    store: PostgresEventStore, after: LogPosition | None, page: int, most: int
) -> tuple[int, bool]:
    count = 0
    ordered = True
    while count < most:
        events = store.read_all(after, limit=page)
        count += len(events)
        if events:
            ordered = ordered and (after is None or after < events[0].position)
            after = events[-1].position
        if len(events) < page:
            break
    return count, ordered


def read_log_peer(
    peer: peers.Peer, after: int | None, page: int, most: int
) -> tuple[int, bool]:
    count = 0
    ordered = True
    while count < most:
        notifications = peer.page(after, page)
        count += len(notifications)
        if notifications:
            ordered = ordered and (after is None or after < notifications[0].id)
            after = notifications[-1].id
        if len(notifications) < page:
            break
    return count, ordered


def global_log(ctx: Context) -> Result:
    streams = 100
    per_stream = ctx.size(500, 100)
    total = streams * per_stream
    page = 1_000
    stores = ctx.stores("global_log")
    peer = ctx.peer("global_log")
    conn, base = ctx.baseline("global_log")
    fill_log(stores, peer, conn.cursor(), base, streams=streams, per_stream=per_stream)
    waited = [wait_for_log(store, total) for store in stores]
    base_cursor = conn.cursor(binary=True)
    seen: dict[str, tuple[int, bool]] = {}

    def reader(side: str, read: Callable[[], tuple[int, bool]]) -> Timed:
        def run(rep: int) -> float:
            def work() -> None:
                seen[side] = read()

            return stopwatch(work)

        return run

    everything = total + 1  # more than there is: read up to the short page
    figures = interleave_sides(
        ctx.repetitions,
        total,
        {
            "eventstore": reader(
                "eventstore",
                partial(read_log_eventstore, stores[0], None, page, everything),
            ),
            "baseline": reader(
                "baseline",
                partial(read_log_baseline, base_cursor, base, 0, page, everything),
            ),
            "eventsourcing": reader(
                "eventsourcing", partial(read_log_peer, peer, None, page, everything)
            ),
            "partitioned": reader(
                "partitioned",
                partial(read_log_eventstore, stores[1], None, page, everything),
            ),
        },
    )
    outcome = result(
        "read_global_log",
        f"read the whole global log ({total:,} events) in pages of {page:,}",
        "events/s",
        figures,
        target=0.7,
    )
    outcome.notes["log_visible_after_s"] = round(waited[0], 4)
    outcome.notes["partitioned_log_visible_after_s"] = round(waited[1], 4)

    def check() -> None:
        assert set(seen) == {"eventstore", "baseline", "eventsourcing", "partitioned"}
        for side, (count, ordered) in seen.items():
            assert count == total, f"{side} read {count:,} of {total:,} events"
            assert ordered, f"{side}: positions not increasing"

    return checked(outcome, check)


# --- repository --------------------------------------------------------------


@attrs.frozen
class Deposited:
    amount: int


@attrs.define
class Account(Aggregate):
    balance: int = 0
    deposits: int = 0

    def deposit(self, amount: int) -> None:
        self.raise_event(Deposited(amount))

    @applies(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount
        self.deposits += 1


class AccountRepository(Repository[Account]):
    aggregate_type = Account
    stream_prefix = "account"
    snapshot_every = 100


def _account_registry() -> Registry:
    registry = Registry()
    registry.add(Deposited, "account.deposited")
    registry.add(Account, "account")
    return registry


def repository_load(ctx: Context) -> Result:
    return _repository_load(ctx, tail=0)


def repository_load_tail(ctx: Context) -> Result:
    return _repository_load(ctx, tail=50)


def _repository_load(ctx: Context, *, tail: int) -> Result:
    """
    Load a 10,000-event aggregate against a 100-event one, snapshots every 100.

    With a *tail*, both aggregates have that many events after their last
    snapshot, as most aggregates do, so each load also replays them.
    """
    stores = ctx.stores(f"repository_load_{tail}")
    repos = [AccountRepository(store, _account_registry()) for store in stores]
    sizes = {"small": 100 + tail, "large": 10_000 + tail}
    for repo in repos:
        for key, size in sizes.items():
            account = Account(id=key)
            for saved in range(0, size, 100):
                for n in range(saved, min(saved + 100, size)):
                    account.deposit(n)
                repo.save(account)
    loads = ctx.size(200, 50)
    loaded: dict[tuple[int, str], Account] = {}

    def loader(plain_or_partitioned: int, key: str) -> Timed:
        repo = repos[plain_or_partitioned]

        def run(rep: int) -> float:
            def work() -> None:
                for _ in range(loads):
                    loaded[plain_or_partitioned, key] = repo.get(key)

            return stopwatch(work)

        return run

    # The small aggregate stands where the baseline does; the large one on
    # the partitioned store is compared with the large one on the plain.
    figures = interleave_sides(
        ctx.repetitions,
        loads,
        {
            "eventstore": loader(0, "large"),
            "baseline": loader(0, "small"),
            "partitioned": loader(1, "large"),
        },
    )
    outcome = result(
        "repository_load_tail" if tail else "repository_load_snapshots",
        f"Repository.get of a {sizes['large']:,}-event aggregate (eventstore column) vs a "
        f"{sizes['small']}-event one (baseline column), snapshot_every=100",
        "loads/s",
        figures,
        peer_note=(
            "its recorder has no aggregates or snapshots; they are its "
            "Application's, above the recorder"
        ),
    )
    # Load time of the large one <= 1.5x that of the small one: rate ratio >= 1/1.5.
    outcome.target = (
        f"{sizes['large']:,} load time <= 1.5x {sizes['small']}'s (ratio >= 0.67)"
    )
    outcome.met = outcome.ratio is not None and outcome.ratio >= 1 / 1.5

    def check() -> None:
        for (side, key), account in sorted(loaded.items()):
            size = sizes[key]
            where = f"{key} ({'partitioned' if side else 'plain'})"
            assert account.version == size, f"{where}: version {account.version}"
            assert account.deposits == size, f"{where}: deposits {account.deposits}"
            assert account.balance == sum(range(size)), f"{where}: balance"
        assert len(loaded) == 3, sorted(loaded)
        for store in stores:
            for key, size in sizes.items():
                snapshot = store.load_snapshot(f"account-{key}")
                assert snapshot is not None, f"{key}: no snapshot"
                assert snapshot.version == size - tail, (
                    f"{key}: snapshot at {snapshot.version}"
                )

    return checked(outcome, check)
