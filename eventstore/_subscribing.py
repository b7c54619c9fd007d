"""
What `Subscription` and `AsyncSubscription` share: their filter, pages, states and status.

Nothing here does I/O: the runners (``subscription_async.py`` and the
``subscription.py`` generated from it) read pages and move checkpoints
through their store, and decide with these values.
"""

from __future__ import annotations

import enum
import inspect
import logging
import time
import zlib
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, TypeAlias

import attrs

from eventstore._validation import check_int, check_name
from eventstore.errors import (
    InvalidArgumentError,
    InvalidArgumentTypeError,
)
from eventstore.events import LogPosition, RecordedEvent
from eventstore.health import LogHolder

__all__ = [
    "AsyncLogListener",
    "AsyncSubscriptionLock",
    "AsyncTransactionWork",
    "CatchUpProgress",
    "Delivery",
    "Handler",
    "LogFilter",
    "LogListener",
    "LogPage",
    "OnError",
    "ParkedEvent",
    "ResetHook",
    "StoreOutage",
    "SubscriptionLock",
    "SubscriptionState",
    "SubscriptionStatus",
    "TransactionWork",
    "describe_error",
    "describe_subscription",
    "group_of",
]

TransactionWork: TypeAlias = Callable[[Any], None]
"""What a store runs in the transaction that moves a checkpoint: given its connection."""

AsyncTransactionWork: TypeAlias = Callable[[Any], Awaitable[None]]
"""`TransactionWork` of an async store: awaited."""

Handler: TypeAlias = (
    Callable[[list[RecordedEvent]], object]
    | Callable[[list[RecordedEvent], Any], object]
)
"""
A subscription's handler: given a batch, and with transactional delivery the connection too.

Typed this far and no further: a handler that takes no batch, or a batch
of something else, fails the type check; the connection's type is the
backend's (a ``psycopg.Connection`` or ``AsyncConnection`` on PostgreSQL).
"""

ResetHook: TypeAlias = Callable[[], object] | Callable[[Any], object]
"""What `reset` calls first: with no argument, or with transactional delivery the connection."""

MAX_BATCH_SIZE = 10_000
"""The most events a handler is given at once."""


def group_of(stream_id: str, members: int) -> int:
    """
    Return the member of a group of *members* that takes *stream_id*.

    The in-memory store and any backend without a hash of its own use this
    one (CRC-32 of the UTF-8 id); PostgreSQL hashes on the server. Each
    backend keeps every stream with one member, always the same.
    """
    return zlib.crc32(stream_id.encode("utf-8")) % members


@attrs.frozen
class LogFilter:
    """
    Which events of the global log a subscription takes; the others are skipped.

    Attributes:
        types: Only events of these types; ``None`` for every type.
        stream_prefix: Only streams whose id starts with this; ``None`` for all.
        group: ``(index, members)``: only the streams of this member of a
            consumer group; ``None`` for every stream.
    """

    types: tuple[str, ...] | None = None
    stream_prefix: str | None = None
    group: tuple[int, int] | None = None

    @classmethod
    def of(
        cls,
        types: Sequence[str] | None,
        stream_prefix: str | None,
        group: tuple[int, int] | None,
    ) -> LogFilter:
        """
        Check and build a filter from a subscription's arguments.

        Raises:
            InvalidArgumentError: A blank or non-str type or prefix, an empty
                list of types, or a group that is not ``(i, n)`` with
                ``0 <= i < n``.
        """
        if types is not None:
            if isinstance(types, str) or not isinstance(types, Sequence):
                raise InvalidArgumentTypeError(
                    f"types must be a sequence of str, got {types!r}"
                )
            if not types:
                raise InvalidArgumentError(
                    "types must name at least one type, or be None"
                )
            types = tuple(check_name(t, "event type") for t in types)
        if stream_prefix is not None:
            stream_prefix = check_name(stream_prefix, "stream_prefix")
        if group is not None:
            if not isinstance(group, tuple) or len(group) != 2:
                raise InvalidArgumentTypeError(
                    f"group must be a tuple (index, members), got {group!r}"
                )
            members = check_int(group[1], "group members", minimum=1)
            index = check_int(group[0], "group index", minimum=0, maximum=members - 1)
            group = (index, members)
        return cls(types, stream_prefix, group)

    @property
    def member(self) -> str:
        """The checkpoint's member key: ``""``, or ``"i/n"`` in a consumer group."""
        return "" if self.group is None else f"{self.group[0]}/{self.group[1]}"

    def matches(self, event: RecordedEvent) -> bool:
        """Tell whether *event* passes the filter (the runner's own, in-process check)."""
        if self.types is not None and event.type not in self.types:
            return False
        if self.stream_prefix is not None and not event.stream_id.startswith(
            self.stream_prefix
        ):
            return False
        return self.group is None or (
            group_of(event.stream_id, self.group[1]) == self.group[0]
        )

    @property
    def passes_all(self) -> bool:
        """Whether it lets every event through: no types, no prefix, no group."""
        return self.types is None and self.stream_prefix is None and self.group is None


@attrs.frozen
class LogPage:
    """
    One page of the global log read for a subscription.

    Attributes:
        events: The events that pass the filter, in log order.
        scanned_to: The position of the last event the page looked at,
            passing or not: where the checkpoint moves once *events* are
            handled. ``None`` when nothing new was visible.
        at_end: Whether the page looked at fewer events than its limit:
            nothing more was visible when it was read, so a runner that has
            handled it is caught up.
    """

    events: list[RecordedEvent]
    scanned_to: LogPosition | None
    at_end: bool


def page_of(
    events: Sequence[RecordedEvent], log_filter: LogFilter, limit: int
) -> LogPage:
    """
    Filter a page of `read_all` (read with *limit*) in process.

    The default of a backend that cannot filter where its events are, and
    the mapping of an unfiltered page on one that can.
    """
    passing = (
        list(events)
        if log_filter.passes_all
        else [event for event in events if log_filter.matches(event)]
    )
    return LogPage(
        passing, events[-1].position if events else None, len(events) < limit
    )


class OnError(enum.Enum):
    """What a subscription does with an event its handler keeps failing on."""

    STOP = "stop"
    """Stop, with the checkpoint just before the event (the default)."""

    PARK = "park"
    """Record the event and the error as parked, and go on with the next;
    `Subscription.replay_parked` hands parked events back."""


@attrs.frozen
class ParkedEvent:
    """
    An event a subscription's handler kept failing on, set aside under `OnError.PARK`.

    Attributes:
        event: The event, read from the log.
        error: ``"<type>: <message>"`` of the handler's last error.
        attempts: How many times the handler failed on it, replays included.
        parked_at: When it was (last) parked, in UTC.
    """

    event: RecordedEvent
    error: str
    attempts: int
    parked_at: datetime


class Delivery(enum.Enum):
    """How a subscription hands events to its handler, and when its checkpoint moves."""

    AT_LEAST_ONCE = "at-least-once"
    """The handler gets ``(events)``; the checkpoint moves after it returns.
    After a crash between the two the batch comes again: deduplicate by
    ``(stream_id, version)``."""

    TRANSACTIONAL = "transactional"
    """PostgreSQL: the handler gets ``(events, conn)``, a connection in an
    open transaction; the checkpoint moves in that transaction, so what the
    handler writes through *conn* is stored exactly once."""


class SubscriptionState(enum.Enum):
    """Where a subscription runner is."""

    IDLE = "idle"
    """Built, not started, or between `catch_up` calls."""

    RUNNING = "running"
    """Following the log, the one active runner of its name."""

    STANDBY = "standby"
    """In `run`, waiting: another runner of its name is active."""

    STOPPED = "stopped"
    """`run` returned because it was asked to stop."""

    FAILED = "failed"
    """Stopped on an event its handler failed on (`OnError.STOP`)."""


@attrs.frozen
class CatchUpProgress:
    """
    How far a long `catch_up` (a replay after `reset`, say) has come.

    Attributes:
        handled: Events handed to the handler so far in this catch-up.
        remaining: Events that were behind when it started, less those
            handled (an estimate: events appended meanwhile are not in it).
        events_per_second: *handled* over the seconds elapsed.
        elapsed: Seconds since the catch-up started.
    """

    handled: int
    remaining: int
    events_per_second: float
    elapsed: float


@attrs.frozen
class SubscriptionStatus:
    """
    Where a subscription is, and how far behind the log.

    Attributes:
        name: The subscription's name.
        member: ``""``, or ``"i/n"`` for a member of a consumer group.
        state: The runner's state.
        position: The checkpoint: the last log position handled or skipped;
            ``None`` before the first event.
        events_behind: Events after the checkpoint that pass the filter,
            counted up to 1,000,000 (then it is 1,000,000).
        seconds_behind: Age of the oldest such event, ``0.0`` when none.
        handled: Events this runner handed to its handler and the handler
            took; at least once, their checkpoint is saved up to
            ``checkpoint_interval`` later.
        last_error: ``"<type>: <message>"`` of the error that stopped it.
        failed_event: ``(stream_id, version)`` of the event it stopped on.
        parked: Events parked under `OnError.PARK`, not replayed yet.
        held_by: The open transaction holding the log back, when events wait
            behind it (PostgreSQL): what to look at when a subscription
            lags and nothing seems to arrive.
    """

    name: str
    member: str
    state: SubscriptionState
    position: LogPosition | None
    events_behind: int
    seconds_behind: float
    handled: int
    last_error: str | None = None
    failed_event: tuple[str, int] | None = None
    parked: int = 0
    held_by: LogHolder | None = None


class SubscriptionLock(Protocol):
    """What makes a runner the one active instance of its subscription, while it holds it."""

    def alive(self) -> bool:
        """Tell whether the lock is still held (its session may have died)."""

    def release(self) -> None:
        """Let another runner take the subscription."""


class LogListener(Protocol):
    """A session that hears when the log may have grown (PostgreSQL's LISTEN)."""

    def wait(self, timeout: float) -> bool:
        """Wait up to *timeout* seconds for a notification; tell whether one came."""

    def close(self) -> None:
        """End the session."""


class AsyncLogListener(Protocol):
    """`LogListener` for an async store."""

    async def wait(self, timeout: float) -> bool:
        """Wait up to *timeout* seconds for a notification; tell whether one came."""

    async def close(self) -> None:
        """End the session."""


class AsyncSubscriptionLock(Protocol):
    """`SubscriptionLock` for an async store."""

    async def alive(self) -> bool:
        """Tell whether the lock is still held (its session may have died)."""

    async def release(self) -> None:
        """Let another runner take the subscription."""


def seconds_since(at: datetime | None, now: datetime) -> float:
    """Return how long ago *at* was, ``0.0`` for ``None`` (nothing waiting)."""
    return 0.0 if at is None else max((now - at).total_seconds(), 0.0)


def refuse_coroutine_function(function: object, what: str) -> None:
    """Refuse a coroutine function where a sync runner would call it and never await it."""
    if inspect.iscoroutinefunction(function):
        raise InvalidArgumentTypeError(
            f"{what} is a coroutine function: a Subscription calls plain "
            "functions; use AsyncSubscription for coroutines"
        )


def refuse_awaitable(function: object, outcome: object) -> None:
    """Refuse what a sync runner got from a handler: an awaitable it would never await."""
    # Never awaited, its work would be lost, and yet checkpointed.
    if inspect.iscoroutine(outcome):
        outcome.close()
    raise InvalidArgumentTypeError(
        f"{function!r} returned an awaitable: a Subscription calls plain "
        "functions; use AsyncSubscription for coroutines"
    )


def check_batch_size(value: object) -> int:
    """Return *value* as a batch size: an int from 1 to `MAX_BATCH_SIZE`."""
    return check_int(value, "batch_size", minimum=1, maximum=MAX_BATCH_SIZE)


def check_progress(progress: object, every: object) -> None:
    """
    Refuse, before a catch-up handles anything, a *progress* callback or interval it cannot use.

    Raises:
        InvalidArgumentTypeError: *progress* is neither ``None`` nor callable.
        InvalidArgumentError: *every* is not a number of seconds >= 0.
    """
    if progress is None:
        return
    if not callable(progress):
        raise InvalidArgumentTypeError(
            f"progress must be callable or None, got {progress!r}"
        )
    if not isinstance(every, int | float) or isinstance(every, bool) or not every >= 0:
        raise InvalidArgumentError(
            f"progress_every must be a number of seconds >= 0, got {every!r}"
        )


def describe_error(exc: BaseException) -> str:
    """
    Return ``"Type: message"`` for a handler's *exc*, whatever its ``__str__`` does.

    The text is logged and stored with a parked event; an exception whose
    ``__str__`` fails must still park or stop the subscription at its event.
    """
    try:
        message = str(exc)
    except Exception:  # any failure: the class still says what it was
        message = "(its message could not be read)"
    return f"{type(exc).__name__}: {message}"


def describe_subscription(name: str, member: str) -> str:
    """Return how log lines name a subscription: ``'name'``, and its group member if any."""
    return repr(name) if not member else f"{name!r} (member {member})"


@attrs.define
class StoreOutage:
    """
    What a runner logs while its store fails it: one warning per outage, not one per poll.

    A runner retries an unreachable or timing-out store at every poll (twice
    a second by default); a line each time would bury the rest of a
    service's log for the whole outage. The first failure of a kind is a
    WARNING, its repeats DEBUG, and the first turn that gets through again
    an INFO line with how long the store was away.
    """

    logger: logging.Logger
    _kind: str | None = None
    _since: float = 0.0
    _failures: int = 0

    def failed(self, described: str, kind: str, exc: BaseException) -> None:
        """
        Log a turn that failed on the store.

        Args:
            described: The subscription as log lines name it.
            kind: What went wrong, as a phrase (``"cannot reach the store"``).
            exc: The store's error.
        """
        first = kind != self._kind
        if self._kind is None:
            self._since = time.monotonic()
        self._kind = kind
        self._failures += 1
        self.logger.log(
            logging.WARNING if first else logging.DEBUG,
            "subscription %s %s (%s); retrying at every poll%s",
            described,
            kind,
            exc,
            "" if first else f" ({self._failures} tries so far)",
        )

    def passed(self, described: str) -> None:
        """Log, once, that a turn got through after failures, and forget them."""
        if self._kind is None:
            return
        self.logger.info(
            "subscription %s reached the store again after %d failed tries in %.1f s",
            described,
            self._failures,
            time.monotonic() - self._since,
        )
        self._kind = None
        self._failures = 0
