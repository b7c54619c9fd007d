"""Subscriptions on both backends, sync and async: delivery, checkpoints, filters, groups, failures, status."""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any, cast

import attrs
import pytest

from eventstore import (
    AsyncInMemoryEventStore,
    AsyncSubscription,
    ConfigError,
    InMemoryEventStore,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    LogPosition,
    NewEvent,
    OnError,
    RecordedEvent,
    RetryPolicy,
    StoreClosedError,
    Subscription,
    SubscriptionConflictError,
    SubscriptionFailedError,
    SubscriptionState,
)
from eventstore.postgres import AsyncPostgresEventStore, PoolConfig, PostgresEventStore
from eventstore.testing import async_read_log, read_log
from tests.backend.list_store import ListStore

BACKENDS = ["memory", pytest.param("postgres", marks=pytest.mark.postgres)]
NO_WAIT = RetryPolicy(max_retries=2, base_delay=0.0, max_delay=0.0, jitter=False)


@attrs.define
class Side:
    """One store and its subscriptions, sync or async, driven from an async test."""

    store: Any
    is_async: bool

    async def call(self, outcome: Any) -> Any:
        return await outcome if inspect.isawaitable(outcome) else outcome

    async def append(
        self, stream_id: str, *data: dict[str, Any], type_: str = "t"
    ) -> None:
        events = [NewEvent(type_, item) for item in data]
        await self.call(self.store.append(stream_id, events))

    async def wait_for_log(self, count: int) -> list[RecordedEvent]:
        if self.is_async:
            return await async_read_log(self.store, count)
        return read_log(self.store, count)

    def subscription(
        self, name: str, handler: Callable[..., Any], **options: Any
    ) -> Any:
        options.setdefault("retry_policy", NO_WAIT)
        kind = AsyncSubscription if self.is_async else Subscription
        return kind(self.store, name, handler, **options)

    async def catch_up(self, subscription: Any) -> int:
        return int(await self.call(subscription.catch_up()))

    async def status(self, subscription: Any) -> Any:
        return await self.call(subscription.status())


@pytest.fixture(params=["sync", "async"])
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=BACKENDS)
async def side(request: pytest.FixtureRequest, flavour: str) -> AsyncIterator[Side]:
    if request.param == "memory":
        store: Any = (
            AsyncInMemoryEventStore() if flavour == "async" else InMemoryEventStore()
        )
        yield Side(store, flavour == "async")
        await Side(store, flavour == "async").call(store.close())
        return
    dsn = request.getfixturevalue("postgres_dsn")
    schema = request.getfixturevalue("postgres_schema")
    config = PoolConfig(min_size=1, max_size=4, timeout=10.0)
    if flavour == "async":
        async with AsyncPostgresEventStore(
            dsn, schema=schema, pool_config=config
        ) as store:
            await store.migrate()
            yield Side(store, True)
    else:
        with PostgresEventStore(dsn, schema=schema, pool_config=config) as store:
            store.migrate()
            yield Side(store, False)


def _collector() -> tuple[list[RecordedEvent], Callable[[list[RecordedEvent]], None]]:
    seen: list[RecordedEvent] = []
    return seen, seen.extend


async def test_catch_up_hands_every_event_once_in_log_order(side: Side) -> None:
    for n in range(7):
        await side.append(f"s-{n % 3}", {"n": n})
    log = await side.wait_for_log(7)
    seen, handler = _collector()
    subscription = side.subscription("all", handler, batch_size=3)
    assert await side.catch_up(subscription) == 7
    assert seen == log
    assert await side.catch_up(subscription) == 0
    assert len(seen) == 7


@pytest.mark.parametrize(
    "case",
    [
        # (events, types, pages read, events handled)
        (7, None, 3, 7),  # 3, 3, 1: the short page is the last
        (6, None, 3, 6),  # 3, 3, then an empty page says it is over
        (7, ("keep",), 3, 4),  # filtered: 3, 3, 1 scanned; the count decides
        (6, ("keep",), 3, 3),
    ],
)
async def test_a_catch_up_ends_at_the_first_page_short_of_its_batch(
    side: Side,
    monkeypatch: pytest.MonkeyPatch,
    case: tuple[int, tuple[str, ...] | None, int, int],
) -> None:
    events, types, pages, handled = case
    for n in range(events):
        await side.append("s", {"n": n}, type_="keep" if n % 2 == 0 else "skip")
    log = await side.wait_for_log(events)
    reads: list[int] = []
    read_page = side.store._read_log_page

    def counted(*args: Any) -> Any:
        reads.append(1)
        return read_page(*args)

    monkeypatch.setattr(side.store, "_read_log_page", counted)
    seen, handler = _collector()
    subscription = side.subscription("short", handler, batch_size=3, types=types)
    assert await side.catch_up(subscription) == handled
    assert len(reads) == pages
    assert seen == [e for e in log if types is None or e.type in types]
    assert (await side.status(subscription)).position == log[-1].position


async def test_the_checkpoint_survives_the_runner(side: Side) -> None:
    await side.append("s", {"n": 0}, {"n": 1})
    await side.wait_for_log(2)
    first_seen, first = _collector()
    assert await side.catch_up(side.subscription("durable", first)) == 2
    await side.append("s", {"n": 2})
    await side.wait_for_log(3)
    # A new runner (a restart) starts where the first stopped.
    later_seen, later = _collector()
    assert await side.catch_up(side.subscription("durable", later)) == 1
    assert [e.data["n"] for e in first_seen + later_seen] == [0, 1, 2]
    # Another name has a checkpoint of its own.
    _, other = _collector()
    assert await side.catch_up(side.subscription("other", other)) == 3


@pytest.mark.parametrize(
    ("checkpoint_interval", "second_batch_takes", "seen_stored"),
    # What the stored checkpoint is while each of 4 batches is handled: the
    # end of the batch before; or, but for the first batch's (a checkpoint
    # at the log's start is saved at once), saved only when the pass ends;
    # or, with a second batch longer than the interval, after it too.
    [
        (0, 0, [None, 2, 4, 6]),
        (60, 0, [None, 2, 2, 2]),
        (0.5, 0.6, [None, 2, 4, 4]),
    ],
    ids=["every-batch", "at-the-pass-end", "once-the-interval-is-over"],
)
async def test_at_least_once_saves_the_checkpoint_at_most_every_interval(
    side: Side,
    checkpoint_interval: float,
    second_batch_takes: float,
    seen_stored: list[int | None],
) -> None:
    for n in range(8):
        await side.append("s", {"n": n})
    log = await side.wait_for_log(8)
    stored: list[LogPosition | None] = []

    # A handler that reads the stored checkpoint, as status() would.
    async def look_async(events: list[RecordedEvent]) -> None:
        stored.append(await side.store._load_checkpoint("interval", ""))
        if events[0].data["n"] == 2:
            await asyncio.sleep(second_batch_takes)

    def look(events: list[RecordedEvent]) -> None:
        stored.append(side.store._load_checkpoint("interval", ""))
        if events[0].data["n"] == 2:
            time.sleep(second_batch_takes)

    handler = look_async if side.is_async else look
    subscription = side.subscription(
        "interval", handler, batch_size=2, checkpoint_interval=checkpoint_interval
    )
    assert await side.catch_up(subscription) == 8
    assert stored == [None if n is None else log[n - 1].position for n in seen_stored]
    # Whatever the interval, the pass's end saves it.
    assert (await side.status(subscription)).position == log[-1].position


async def test_a_reset_to_the_start_during_a_pass_from_the_start_wins(
    side: Side,
) -> None:
    for n in range(6):
        await side.append("s", {"n": n})
    await side.wait_for_log(6)
    operator = side.subscription("reset-mid-pass", lambda events: None)

    async def reset_async(events: list[RecordedEvent]) -> None:
        if events[0].data["n"] == 2:
            await operator.reset()

    def reset(events: list[RecordedEvent]) -> None:
        if events[0].data["n"] == 2:
            operator.reset()

    runner = side.subscription(
        "reset-mid-pass",
        reset_async if side.is_async else reset,
        batch_size=2,
        checkpoint_interval=60,
    )
    # The first batch's save made a checkpoint the reset deletes: the
    # pass's own save then finds it gone, and the reset stands.
    with pytest.raises(SubscriptionConflictError):
        await side.catch_up(runner)
    assert (await side.status(runner)).position is None


class _Interrupted(BaseException):
    """Not an Exception: what a handler's Ctrl-C or a cancelled task looks like to a pass."""


async def test_an_interrupted_pass_saves_what_its_handler_took(side: Side) -> None:
    for n in range(6):
        await side.append("s", {"n": n})
    log = await side.wait_for_log(6)

    def handler(events: list[RecordedEvent]) -> None:
        if events[0].data["n"] == 4:
            raise _Interrupted

    subscription = side.subscription(
        "interrupted", handler, batch_size=2, checkpoint_interval=60
    )
    with pytest.raises(_Interrupted):
        await side.catch_up(subscription)
    # Two batches handled and saved, the third not: it comes again.
    assert (await side.status(subscription)).position == log[3].position


async def test_a_run_stopped_mid_pass_saves_what_its_handler_took(
    side: Side,
) -> None:
    for n in range(6):
        await side.append("s", {"n": n})
    log = await side.wait_for_log(6)
    stop = asyncio.Event() if side.is_async else threading.Event()

    def handler(events: list[RecordedEvent]) -> None:
        stop.set()  # after the first batch: the pass stops there

    subscription = side.subscription(
        "stopped", handler, batch_size=2, checkpoint_interval=60
    )
    if side.is_async:
        await asyncio.wait_for(subscription.run(stop), 30)
    else:
        await asyncio.wait_for(asyncio.to_thread(subscription.run, stop), 30)
    assert (await side.status(subscription)).position == log[1].position


SLOW_RETRIES = RetryPolicy(max_retries=3, base_delay=30.0, max_delay=30.0, jitter=False)
"""Waits no test could sit out: a runner that waits them is seen to hang."""


@pytest.mark.parametrize("on_error", [OnError.PARK, OnError.STOP])
async def test_a_stop_ends_a_failing_handlers_wait_for_its_retry(
    side: Side, on_error: OnError
) -> None:
    for n in range(6):
        await side.append("s", {"n": n})
    log = await side.wait_for_log(6)
    stop = asyncio.Event() if side.is_async else threading.Event()
    failures = 0

    def failing(events: list[RecordedEvent]) -> None:
        nonlocal failures
        if any(event.data["n"] == 3 for event in events):
            failures += 1
            stop.set()  # while the runner is about to wait for the retry
            raise ValueError("not yet")

    subscription = side.subscription(
        "stopped-retrying",
        failing,
        batch_size=2,
        checkpoint_interval=60,
        on_error=on_error,
        retry_policy=SLOW_RETRIES,
    )
    started = time.monotonic()
    if side.is_async:
        await asyncio.wait_for(subscription.run(stop), 60)
    else:
        await asyncio.wait_for(asyncio.to_thread(subscription.run, stop), 150)
    assert time.monotonic() - started < 10, "the runner waited out the retries"
    # The failing batch was neither parked nor failed: it comes again.
    assert failures == 1
    status = await side.status(subscription)
    assert status.state is SubscriptionState.STOPPED
    assert status.position == log[1].position
    assert status.parked == 0
    seen, collect = _collector()
    again = side.subscription("stopped-retrying", collect, on_error=on_error)
    assert await side.catch_up(again) == 4
    assert [event.data["n"] for event in seen] == [2, 3, 4, 5]


def test_a_failed_save_after_a_failing_event_keeps_the_handlers_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Failing(InMemoryEventStore):
        """Its checkpoint is saved once, then no more: a store gone at the worst moment."""

        saves = 0

        def _save_checkpoint(self, *args: Any, **kwargs: Any) -> None:
            self.saves += 1
            if self.saves > 1:
                raise StoreClosedError("the store is closed")
            super()._save_checkpoint(*args, **kwargs)

    store = Failing()
    for n in range(4):
        store.append("s", [NewEvent("t", {"n": n})])
    log = read_log(store, 4)

    def handler(events: list[RecordedEvent]) -> None:
        if any(e.data["n"] == 3 for e in events):
            raise ValueError("cannot handle n=3")

    subscription = Subscription(
        store,
        "unsaved",
        handler,
        batch_size=2,
        checkpoint_interval=60,
        retry_policy=NO_WAIT,
    )
    with (
        caplog.at_level(logging.WARNING, "eventstore.subscription"),
        pytest.raises(SubscriptionFailedError) as caught,
    ):
        subscription.catch_up()
    assert isinstance(caught.value.__cause__, ValueError)
    assert "could not save its checkpoint" in caplog.text
    # The first batch's save (from the log's start) landed; the second's not.
    assert store._load_checkpoint("unsaved", "") == log[1].position


@pytest.mark.parametrize("backend", BACKENDS)
async def test_a_cancelled_async_catch_up_saves_what_its_handler_took(
    request: pytest.FixtureRequest, backend: str
) -> None:
    if backend == "memory":
        store: Any = AsyncInMemoryEventStore()
    else:
        store = AsyncPostgresEventStore(
            request.getfixturevalue("postgres_dsn"),
            schema=request.getfixturevalue("postgres_schema"),
            pool_config=PoolConfig(min_size=1, max_size=4, timeout=10.0),
        )
        await store.migrate()
    try:
        await _cancel_mid_pass(store)
    finally:
        await store.close()


@pytest.mark.parametrize("wait", ["poll", "retry"])
async def test_a_run_cancelled_as_its_stop_is_set_raises_cancelled(wait: str) -> None:
    # On Python 3.11 asyncio.wait_for returned normally when the task was
    # cancelled in the turn its inner wait ended (gh-86296): run() swallowed
    # the cancellation and returned None.
    store = AsyncInMemoryEventStore()
    failing = asyncio.Event()

    def handler(events: list[RecordedEvent]) -> None:
        failing.set()
        raise ValueError("retried")

    if wait == "retry":
        await store.append("s", [NewEvent("t", {})])
    policy = RetryPolicy(max_retries=5, base_delay=30.0, max_delay=30.0, jitter=False)
    subscription = AsyncSubscription(
        store, "s", handler, poll_interval=30.0, retry_policy=policy
    )
    stop = asyncio.Event()
    task = asyncio.create_task(subscription.run(stop))
    if wait == "retry":
        await asyncio.wait_for(failing.wait(), 5)  # now waiting to retry
    for _ in range(10):  # a few turns: the runner reaches its wait
        await asyncio.sleep(0)
    assert not task.done()
    stop.set()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, 5)
    await store.close()


async def test_zero_delay_retries_give_the_loop_a_turn_and_see_the_stop() -> None:
    # Each retry's wait yields to the loop even with no delay: a handler that
    # fails at once held the loop through all its retries, the stop unseen.
    store = AsyncInMemoryEventStore()
    await store.append("s", [NewEvent("t", {})])
    stop = asyncio.Event()
    calls = 0

    async def handler(events: list[RecordedEvent]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            asyncio.get_running_loop().call_soon(stop.set)
        raise ValueError("fails at once")

    policy = RetryPolicy(max_retries=1000, base_delay=0, max_delay=0, jitter=False)
    subscription = AsyncSubscription(store, "eager", handler, retry_policy=policy)
    await asyncio.wait_for(subscription.run(stop), 10)
    assert calls < 10
    await store.close()


async def _cancel_mid_pass(store: Any) -> None:
    for n in range(6):
        await store.append("s", [NewEvent("t", {"n": n})])
    log = await async_read_log(store, 6)
    reached_the_third = asyncio.Event()

    async def handler(events: list[RecordedEvent]) -> None:
        if events[0].data["n"] == 4:
            reached_the_third.set()
            await asyncio.Event().wait()  # until cancelled

    subscription = AsyncSubscription(
        store, "cancelled", handler, batch_size=2, checkpoint_interval=60
    )
    task = asyncio.create_task(subscription.catch_up())
    await asyncio.wait_for(reached_the_third.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await subscription.status()).position == log[3].position


async def test_filters_skip_events_and_move_the_checkpoint_past_them(
    side: Side,
) -> None:
    await side.append("order-1", {"n": 0}, type_="order.placed")
    await side.append("user-1", {"n": 1}, type_="order.placed")
    await side.append("order-2", {"n": 2}, type_="order.cancelled")
    await side.append("order-3", {"n": 3}, type_="order.placed")
    await side.append("user-2", {"n": 4}, type_="user.joined")
    log = await side.wait_for_log(5)
    seen, handler = _collector()
    placed = side.subscription(
        "placed", handler, types=("order.placed",), stream_prefix="order-", batch_size=2
    )
    assert await side.catch_up(placed) == 2
    assert [e.data["n"] for e in seen] == [0, 3]
    status = await side.status(placed)
    # The checkpoint is at the last event of the log, skipped or not.
    assert status.position == log[-1].position
    assert status.events_behind == 0
    assert status.handled == 2


async def test_a_consumer_group_splits_streams_keeping_each_streams_order(
    side: Side,
) -> None:
    for n in range(60):
        await side.append(f"s-{n % 12}", {"n": n})
    log = await side.wait_for_log(60)
    per_member = []
    for index in range(3):
        seen, handler = _collector()
        member = side.subscription("grouped", handler, group=(index, 3), batch_size=7)
        await side.catch_up(member)
        per_member.append(seen)
        status = await side.status(member)
        assert status.member == f"{index}/3"
    handled = [event for seen in per_member for event in seen]
    assert sorted(e.position for e in handled) == [e.position for e in log]
    streams = [{e.stream_id for e in seen} for seen in per_member]
    assert not streams[0] & streams[1]
    assert not streams[0] & streams[2]
    assert not streams[1] & streams[2]
    for seen in per_member:
        for stream_id in {e.stream_id for e in seen}:
            versions = [e.version for e in seen if e.stream_id == stream_id]
            assert versions == sorted(versions) == list(range(1, len(versions) + 1))


@pytest.mark.parametrize("batch_size", [4, 2])
async def test_a_failing_event_stops_the_subscription_just_before_it(
    side: Side, batch_size: int
) -> None:
    """With 2 a batch, the first one's unsaved checkpoint is saved when the second fails."""
    for n in range(6):
        await side.append("s", {"n": n})
    await side.wait_for_log(6)
    seen: list[int] = []
    calls_on_poison = 0

    def handler(events: list[RecordedEvent]) -> None:
        nonlocal calls_on_poison
        if any(e.data["n"] == 3 for e in events):
            if len(events) == 1:
                calls_on_poison += 1
            raise ValueError("cannot handle n=3")
        seen.extend(e.data["n"] for e in events)

    subscription = side.subscription("poisoned", handler, batch_size=batch_size)
    with pytest.raises(SubscriptionFailedError) as caught:
        await side.catch_up(subscription)
    assert (caught.value.stream_id, caught.value.version) == ("s", 4)
    assert isinstance(caught.value.__cause__, ValueError)
    assert seen == [0, 1, 2]
    assert calls_on_poison == NO_WAIT.max_attempts
    status = await side.status(subscription)
    assert status.state is SubscriptionState.FAILED
    assert status.failed_event == ("s", 4)
    assert status.last_error == "ValueError: cannot handle n=3"
    assert status.events_behind == 3
    # Fixed, a new runner goes on from exactly that event.
    later, fixed = _collector()
    assert await side.catch_up(side.subscription("poisoned", fixed)) == 3
    assert [e.data["n"] for e in later] == [3, 4, 5]


async def test_a_flaky_handler_is_retried_and_loses_nothing(side: Side) -> None:
    await side.append("s", {"n": 0}, {"n": 1})
    await side.wait_for_log(2)
    seen: list[int] = []
    failures = [RuntimeError("once"), RuntimeError("twice")]

    def flaky(events: list[RecordedEvent]) -> None:
        if failures:
            raise failures.pop()
        seen.extend(e.data["n"] for e in events)

    assert await side.catch_up(side.subscription("flaky", flaky)) == 2
    assert seen == [0, 1]


async def test_an_async_handler_is_awaited() -> None:
    store = AsyncInMemoryEventStore()
    await store.append("s", [NewEvent("t", {"n": 1})])
    seen: list[int] = []

    async def handler(events: list[RecordedEvent]) -> None:
        seen.extend(e.data["n"] for e in events)

    assert await AsyncSubscription(store, "a", handler).catch_up() == 1
    assert seen == [1]


async def test_status_counts_what_is_behind(side: Side) -> None:
    _, handler = _collector()
    subscription = side.subscription("lagging", handler)
    status = await side.status(subscription)
    assert (status.position, status.events_behind, status.seconds_behind) == (
        None,
        0,
        0.0,
    )
    assert status.state is SubscriptionState.IDLE
    await side.append("s", {"n": 0}, {"n": 1}, {"n": 2})
    await side.wait_for_log(3)
    status = await side.status(subscription)
    assert status.events_behind == 3
    assert status.seconds_behind >= 0.0
    await side.catch_up(subscription)
    status = await side.status(subscription)
    assert status.events_behind == 0
    assert status.handled == 3


async def test_a_checkpoint_moved_by_another_runner_is_a_conflict(side: Side) -> None:
    await side.append("s", {"n": 0})
    log = await side.wait_for_log(1)
    # Interleaved by hand: this runner read the checkpoint (the start), then
    # another runner of the same name handled the event and moved it.
    started_at = await side.call(side.store._load_checkpoint("shared", ""))
    other = side.subscription("shared", lambda events: None)
    assert await side.catch_up(other) == 1
    with pytest.raises(SubscriptionConflictError) as caught:
        await side.call(
            side.store._save_checkpoint("shared", "", started_at, log[0].position)
        )
    assert caught.value.expected is None
    assert caught.value.actual == log[0].position
    assert "another runner moved its checkpoint" in str(caught.value)


@pytest.mark.parametrize(
    "options",
    [
        {"types": ()},
        {"types": "order.placed"},
        {"stream_prefix": ""},
        {"group": (3, 3)},
        {"group": (0, 0)},
        {"batch_size": 0},
        {"name": ""},
    ],
    ids=repr,
)
def test_bad_arguments_are_refused(options: dict[str, Any]) -> None:
    name = options.pop("name", "s")
    with pytest.raises(InvalidArgumentError):
        Subscription(InMemoryEventStore(), name, lambda events: None, **options)
    with pytest.raises(InvalidArgumentError):
        AsyncSubscription(
            AsyncInMemoryEventStore(), name, lambda events: None, **options
        )


def test_a_bad_poll_interval_or_store_is_refused() -> None:
    with pytest.raises(ConfigError):
        Subscription(InMemoryEventStore(), "s", lambda events: None, poll_interval=0)
    # Past threading.TIMEOUT_MAX the memory store's wait raised OverflowError.
    with pytest.raises(ConfigError, match="poll_interval"):
        Subscription(InMemoryEventStore(), "s", lambda events: None, poll_interval=1e10)
    bad: Any
    for bad in (-1, float("nan"), "1", True):
        with pytest.raises(ConfigError, match="checkpoint_interval"):
            Subscription(
                InMemoryEventStore(), "s", lambda events: None, checkpoint_interval=bad
            )
    with pytest.raises(InvalidArgumentError):
        Subscription(AsyncInMemoryEventStore(), "s", lambda events: None)  # type: ignore[arg-type]  # bad on purpose
    with pytest.raises(InvalidArgumentError):
        AsyncSubscription(InMemoryEventStore(), "s", lambda events: None)  # type: ignore[arg-type]  # bad on purpose


def test_a_backend_without_checkpoints_says_so() -> None:
    store = ListStore()
    store.append("s", [NewEvent("t", {})])
    with pytest.raises(ConfigError, match="does not store subscription checkpoints"):
        Subscription(store, "s", lambda events: None).catch_up()


async def test_a_parked_poison_event_never_blocks_the_others_nor_disappears(
    side: Side,
) -> None:
    for n in range(6):
        await side.append(f"s-{n % 2}", {"n": n})
    await side.wait_for_log(6)
    seen: list[int] = []
    poison = {2, 4}

    def handler(events: list[RecordedEvent]) -> None:
        if any(e.data["n"] in poison for e in events):
            raise ValueError("poison")
        seen.extend(e.data["n"] for e in events)

    subscription = side.subscription(
        "parking", handler, on_error=OnError.PARK, batch_size=4
    )
    assert await side.catch_up(subscription) == 4
    assert seen == [0, 1, 3, 5]
    status = await side.status(subscription)
    assert (status.parked, status.events_behind) == (2, 0)
    assert status.state is SubscriptionState.IDLE
    parked = await side.call(subscription.parked())
    assert [p.event.data["n"] for p in parked] == [2, 4]
    assert parked[0].error == "ValueError: poison"
    assert parked[0].attempts == NO_WAIT.max_attempts
    # Page by page, after the last position seen.
    (first,) = await side.call(subscription.parked(limit=1))
    (second,) = await side.call(
        subscription.parked(limit=1, after=first.event.position)
    )
    assert [first.event.data["n"], second.event.data["n"]] == [2, 4]
    assert await side.call(subscription.parked(after=second.event.position)) == []
    with pytest.raises(InvalidArgumentTypeError, match="after must be a LogPosition"):
        await side.call(subscription.parked(after="1/2"))
    # Still failing on 4: it stays parked, with the attempts added up.
    poison.discard(2)
    assert await side.call(subscription.replay_parked()) == 1
    assert seen == [0, 1, 3, 5, 2]
    (still,) = await side.call(subscription.parked())
    assert still.event.data["n"] == 4
    assert still.attempts == 2 * NO_WAIT.max_attempts
    poison.clear()
    assert await side.call(subscription.replay_parked()) == 1
    assert seen == [0, 1, 3, 5, 2, 4]
    assert (await side.status(subscription)).parked == 0


@pytest.mark.parametrize("on_error", [OnError.PARK, OnError.STOP])
async def test_a_handler_that_drains_its_batch_changes_nothing_the_runner_retries(
    side: Side, on_error: OnError
) -> None:
    # The handler empties its list as it goes: the retry, the isolation of
    # the poison event and the count must still see the whole batch.
    for n in range(6):
        await side.append(f"s-{n % 3}", {"n": n})
    await side.wait_for_log(6)
    seen: list[int] = []

    def handler(events: list[RecordedEvent]) -> None:
        events.reverse()  # and reorders it first
        while events:
            event = events.pop()
            if event.data["n"] == 2:
                raise ValueError("poison")
            seen.append(event.data["n"])

    subscription = side.subscription("draining", handler, on_error=on_error)
    if on_error is OnError.STOP:
        with pytest.raises(SubscriptionFailedError):
            await side.catch_up(subscription)
        status = await side.status(subscription)
        assert status.state is SubscriptionState.FAILED
        assert status.events_behind == 4  # stopped just before the poison
        return
    assert await side.catch_up(subscription) == 5
    parked = await side.call(subscription.parked())
    assert [item.event.data["n"] for item in parked] == [2]
    assert set(seen) == {0, 1, 3, 4, 5}


async def test_a_closed_store_ends_catch_up_status_and_run_on_every_backend(
    side: Side,
) -> None:
    await side.append("s", {"n": 0})
    await side.wait_for_log(1)
    seen, handler = _collector()
    subscription = side.subscription("closing", handler)
    assert await side.catch_up(subscription) == 1
    await side.call(side.store.close())
    with pytest.raises(StoreClosedError):
        await side.catch_up(subscription)
    with pytest.raises(StoreClosedError):
        await side.status(subscription)
    with pytest.raises(StoreClosedError):
        await side.call(subscription.replay_parked())
    stop = asyncio.Event() if side.is_async else threading.Event()
    running = (
        subscription.run(stop)
        if side.is_async
        else asyncio.to_thread(subscription.run, stop)
    )
    with pytest.raises(StoreClosedError):
        await asyncio.wait_for(running, 30)
    assert subscription.state is SubscriptionState.STOPPED
    assert len(seen) == 1


@pytest.mark.parametrize("role", ["active", "standby", "retrying"])
async def test_closing_the_store_ends_a_waiting_run_well_before_its_poll(
    side: Side, role: str
) -> None:
    # close() had no way to wake a runner's wait: with a long poll_interval
    # (or a retry delay) it went on that long, holding its lock and sessions.
    poll = 30.0
    policy = RetryPolicy(max_retries=3, base_delay=poll, max_delay=poll, jitter=False)
    failed = threading.Event()

    def handler(events: list[RecordedEvent]) -> None:
        if role == "retrying":
            failed.set()
            raise ValueError("retried after a long wait")

    if role == "retrying":
        await side.append("s", {"n": 0})
        await side.wait_for_log(1)
    runners = [
        side.subscription("waiting", handler, poll_interval=poll, retry_policy=policy)
    ]
    if role == "standby":
        runners.append(side.subscription("waiting", handler, poll_interval=poll))
    stops = [asyncio.Event() if side.is_async else threading.Event() for _ in runners]
    tasks = [
        asyncio.ensure_future(
            runner.run(stop) if side.is_async else asyncio.to_thread(runner.run, stop)
        )
        for runner, stop in zip(runners, stops, strict=True)
    ]
    deadline = time.monotonic() + 10.0
    # One runs, the other (whichever lost the race for the lock) stands by.
    wanted = {SubscriptionState.RUNNING, SubscriptionState.STANDBY}
    if role != "standby":
        wanted = {SubscriptionState.RUNNING}
    while {r.state for r in runners} != wanted or (
        role == "retrying" and not failed.is_set()
    ):
        assert time.monotonic() < deadline, [r.state for r in runners]
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # well into the wait
    closed_at = time.monotonic()
    await side.call(side.store.close())
    done, _ = await asyncio.wait(tasks, timeout=5.0)
    assert len(done) == len(tasks), (
        f"still running {time.monotonic() - closed_at:.1f} s after close()"
    )
    for task in tasks:
        assert isinstance(task.exception(), StoreClosedError), task
    assert all(runner.state is SubscriptionState.STOPPED for runner in runners)


async def test_a_parked_event_is_the_logs_whatever_the_handler_or_a_caller_changed(
    side: Side,
) -> None:
    await side.append("s", {"amount": 5})
    await side.wait_for_log(1)
    replayed: list[dict[str, Any]] = []
    failing = True

    def handler(events: list[RecordedEvent]) -> None:
        if failing:
            # A handler that edits the event (a dict, typed Mapping), then fails.
            cast(dict[str, Any], events[0].data)["amount"] = -1
            raise ValueError("poison")
        replayed.extend(dict(e.data) for e in events)

    subscription = side.subscription("editing", handler, on_error=OnError.PARK)
    assert await side.catch_up(subscription) == 0  # parked, not handled
    (parked,) = await side.call(subscription.parked())
    assert parked.event.data == {"amount": 5}
    parked.event.data["amount"] = 99  # a caller editing what it was given
    failing = False
    assert await side.call(subscription.replay_parked()) == 1
    assert replayed == [{"amount": 5}]


class _Unprintable(Exception):
    def __str__(self) -> str:
        raise RuntimeError("no text for this one")


@pytest.mark.parametrize("on_error", [OnError.STOP, OnError.PARK])
async def test_a_handler_error_whose_text_fails_still_stops_or_parks(
    side: Side, on_error: OnError, caplog: pytest.LogCaptureFixture
) -> None:
    # Its text went into the log line and the parked row: str() raising
    # there crashed the pass, with nothing parked or failed at the event.
    await side.append("s", {"n": 0})
    await side.wait_for_log(1)

    def handler(events: list[RecordedEvent]) -> None:
        raise _Unprintable

    subscription = side.subscription("unprintable", handler, on_error=on_error)
    with caplog.at_level(logging.WARNING, "eventstore.subscription"):
        if on_error is OnError.STOP:
            with pytest.raises(SubscriptionFailedError):
                await side.catch_up(subscription)
            status = await side.status(subscription)
            assert status.failed_event == ("s", 1)
            assert status.last_error == "_Unprintable: (its message could not be read)"
        else:
            assert await side.catch_up(subscription) == 0
            (parked,) = await side.call(subscription.parked())
            assert parked.error == "_Unprintable: (its message could not be read)"
    assert "_Unprintable" in caplog.text


async def test_a_group_members_log_lines_name_the_member(
    side: Side, caplog: pytest.LogCaptureFixture
) -> None:
    # Every member of a group shares the subscription's name.
    for n in range(8):
        await side.append(f"s-{n}", {"n": n})
    await side.wait_for_log(8)

    def handler(events: list[RecordedEvent]) -> None:
        raise ValueError("bad event")

    subscription = side.subscription(
        "orders", handler, group=(1, 2), on_error=OnError.PARK
    )
    with caplog.at_level(logging.WARNING, "eventstore.subscription"):
        await side.catch_up(subscription)
    parked = [r for r in caplog.records if "parked" in r.getMessage()]
    assert parked
    for record in parked:
        assert "'orders' (member 1/2)" in record.getMessage()
        assert getattr(record, "member", None) == "1/2"


def test_park_needs_a_store_that_parks() -> None:
    with pytest.raises(ConfigError, match="does not store parked events"):
        Subscription(ListStore(), "s", lambda events: None, on_error=OnError.PARK)


async def test_reset_replays_from_the_start_or_a_position_with_progress(
    side: Side,
) -> None:
    for n in range(9):
        await side.append(f"s-{n % 3}", {"n": n})
    log = await side.wait_for_log(9)
    seen: list[int] = []
    cleared: list[str] = []
    subscription = side.subscription(
        "replayed",
        lambda events: seen.extend(e.data["n"] for e in events),
        batch_size=2,
    )
    assert await side.catch_up(subscription) == 9
    await side.call(subscription.reset(on_reset=lambda: cleared.append("cleared")))
    assert cleared == ["cleared"]
    assert (await side.status(subscription)).position is None
    reports: list[Any] = []
    assert (
        await side.call(
            subscription.catch_up(progress=reports.append, progress_every=0)
        )
        == 9
    )
    assert seen == list(range(9)) * 2
    assert [r.handled for r in reports][-1] == 9
    assert reports[-1].remaining == 0
    assert reports[0].remaining == 9 - reports[0].handled
    assert all(r.events_per_second >= 0 for r in reports)
    assert len(reports) >= 4  # one per batch, with so short an interval
    # To a position: the events after it come again.
    await side.call(subscription.reset(log[5].position))
    assert await side.catch_up(subscription) == 3
    assert seen[-3:] == [6, 7, 8]


@pytest.mark.parametrize("bad", ["1/2", 3, (1, 2)])
async def test_reset_refuses_what_is_not_a_position(side: Side, bad: object) -> None:
    subscription = side.subscription("r", lambda events: None)
    with pytest.raises(InvalidArgumentError, match=r"^to must be a LogPosition"):
        await side.call(subscription.reset(bad))


def test_a_retry_policy_that_is_not_one_is_refused() -> None:
    # It used to fail at the first handled batch, blamed on the handler.
    bad: Any = "fast"
    with pytest.raises(InvalidArgumentTypeError, match="retry_policy"):
        Subscription(InMemoryEventStore(), "s", lambda events: None, retry_policy=bad)
    with pytest.raises(InvalidArgumentTypeError, match="retry_policy"):
        AsyncSubscription(
            AsyncInMemoryEventStore(), "s", lambda events: None, retry_policy=bad
        )


async def test_progress_and_on_reset_that_cannot_be_called_are_refused_first(
    side: Side,
) -> None:
    await side.append("s", {})
    handled: list[RecordedEvent] = []
    subscription = side.subscription("p", handled.extend)
    with pytest.raises(InvalidArgumentTypeError, match="progress"):
        await side.call(subscription.catch_up(progress=5))
    # Refused before the handler ran or the checkpoint moved.
    assert handled == []
    assert (await side.status(subscription)).position is None
    with pytest.raises(InvalidArgumentTypeError, match="on_reset"):
        await side.call(subscription.reset(on_reset=5))


@pytest.mark.parametrize("bad", [-1, "1", None, True])
def test_progress_every_is_a_number_of_seconds(bad: object) -> None:
    subscription = Subscription(InMemoryEventStore(), "p", lambda events: None)
    with pytest.raises(InvalidArgumentError):
        subscription.catch_up(progress=print, progress_every=bad)  # type: ignore[arg-type]  # bad on purpose


def test_progress_every_0_reports_every_batch_once() -> None:
    store = InMemoryEventStore()
    for n in range(5):
        store.append("s", [NewEvent("t", {"n": n})])
    reports: list[Any] = []
    subscription = Subscription(store, "p", lambda events: None, batch_size=2)
    subscription.catch_up(progress=reports.append, progress_every=0)
    assert [r.handled for r in reports] == [2, 4, 5]


async def test_a_reset_under_a_batch_in_flight_refuses_the_batchs_checkpoint(
    side: Side,
) -> None:
    await side.append("s", {"n": 0}, {"n": 1})
    log = await side.wait_for_log(2)
    subscription = side.subscription("reset-race", lambda events: None, batch_size=1)
    await side.catch_up(subscription)
    # A runner read the checkpoint and handled a batch; meanwhile a reset
    # moved the checkpoint back: that runner's move must not undo the reset.
    started_at = await side.call(side.store._load_checkpoint("reset-race", ""))
    assert started_at == log[1].position
    await side.call(subscription.reset())
    with pytest.raises(SubscriptionConflictError):
        await side.call(
            side.store._save_checkpoint("reset-race", "", started_at, log[1].position)
        )
    assert (await side.status(subscription)).position is None


async def test_a_new_catch_up_after_a_failure_starts_with_a_clean_state(
    side: Side,
) -> None:
    await side.append("s", {"n": 0})
    await side.wait_for_log(1)
    failing = [True]

    def handler(events: list[RecordedEvent]) -> None:
        if failing[0]:
            raise ValueError("not yet")

    subscription = side.subscription("recovers", handler)
    with pytest.raises(SubscriptionFailedError):
        await side.catch_up(subscription)
    assert subscription.state is SubscriptionState.FAILED
    failing[0] = False
    assert await side.catch_up(subscription) == 1
    status = await side.status(subscription)
    assert status.state is SubscriptionState.IDLE
    assert (status.last_error, status.failed_event) == (None, None)


def test_a_sync_subscription_refuses_coroutines() -> None:
    store = InMemoryEventStore()
    store.append("s", [NewEvent("t", {})])

    async def handler(events: list[RecordedEvent]) -> None:
        raise AssertionError("never awaited")

    with pytest.raises(InvalidArgumentError, match="coroutine function"):
        Subscription(store, "s", handler)

    # A plain function that returns a coroutine is caught when it is called.
    def returns_a_coroutine(events: list[RecordedEvent]) -> object:
        return handler(events)

    sneaky = Subscription(store, "s", returns_a_coroutine, retry_policy=NO_WAIT)
    with pytest.raises(SubscriptionFailedError) as caught:
        sneaky.catch_up()
    assert isinstance(caught.value.__cause__, InvalidArgumentError)
    assert sneaky.status().position is None
