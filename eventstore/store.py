# Generated from store_async.py by tools/async_to_sync.py: edit that file, not
# this one, then run `python tools/async_to_sync.py`.
"""The `EventStore` contract that every backend of it fulfils, with the checks they share."""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterator, Sequence
from datetime import datetime
from types import TracebackType
from typing import Self

import attrs

from eventstore import _validation as check
from eventstore._subscribing import (
    LogFilter,
    LogListener,
    LogPage,
    ParkedEvent,
    SubscriptionLock,
    TransactionWork,
    page_of,
)
from eventstore.errors import ConfigError, InvalidArgumentTypeError, StoreClosedError
from eventstore.events import (
    AppendRequest,
    AppendResult,
    ExpectedVersion,
    LogPosition,
    NewEvent,
    RecordedEvent,
)
from eventstore.health import HealthReport, LogHolder
from eventstore.snapshots import LoadedStream, Snapshot

__all__ = ["DEFAULT_SNAPSHOTS_TO_KEEP", "EventStore", "LocalLock"]

DEFAULT_SNAPSHOTS_TO_KEEP = 2
"""How many snapshots per stream a store keeps unless told otherwise."""


_LOCAL_LOCKS = threading.Lock()
"""Guards every store's set of subscription locks held in this process."""


@attrs.define
class LocalLock:
    """
    A subscription lock held in this process: the default of a backend without one of its own.

    Attributes:
        held: The keys held in the store (shared by its locks).
        key: ``(name, member)`` of the subscription.
    """

    held: set[tuple[str, str]]
    key: tuple[str, str]
    released: bool = False

    @classmethod
    def take(cls, held: set[tuple[str, str]], key: tuple[str, str]) -> LocalLock | None:
        """Return the lock of *key*, or ``None`` when another runner holds it."""
        with _LOCAL_LOCKS:
            if key in held:
                return None
            held.add(key)
        return cls(held, key)

    def alive(self) -> bool:
        """Whether it is still held: until released, in one process."""
        return not self.released

    def release(self) -> None:
        """Let another runner take the subscription."""
        with _LOCAL_LOCKS:
            if not self.released:
                self.released = True
                self.held.discard(self.key)


class EventStore(abc.ABC):
    """
    An append-only store of event streams with a global log and snapshots.

    The public methods check their arguments, the same way for every backend,
    and then call the backend's ``_``-prefixed hooks with validated, encoded
    values. A backend implements the hooks; it never re-checks arguments.

    Every backend behaves identically: `eventstore.testing.EventStoreContract`
    is the executable form of this contract, and a third-party backend passes
    by subclassing it.

    Stores are context managers: ``with PostgresEventStore(dsn) as store: …``
    closes the store on exit.
    """

    _closed: bool = False
    _held_subscriptions: set[tuple[str, str]] | None = None
    _notify_window: float = 0.1
    """Seconds after a wake-up within which appends may have sent no notification."""

    # --- writing ---------------------------------------------------------

    def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        *,
        expected_version: int | ExpectedVersion = ExpectedVersion.ANY,
    ) -> AppendResult:
        """
        Append *events* to *stream_id* atomically.

        All events land, in order, or none do. Re-sending a batch that is
        already stored in this stream, same ids in the same order, returns the
        original result and stores nothing, whatever the stream's version is
        now: a retry after a lost reply is always safe.

        Args:
            stream_id: 1 to 255 characters, no NUL.
            events: In order; at least one.
            expected_version: The version the caller last saw: an int (0: the
                stream must not exist yet), `ExpectedVersion.ANY` (no check),
                or `ExpectedVersion.EXISTS` (at least one event).

        Returns:
            The stream's new version and the events' log positions.

        Raises:
            ConcurrencyError: The stream is at another version.
            DuplicateEventError: An event id is stored already and this is not
                a retry of that batch, or an id repeats within the batch.
            InvalidArgumentError: Bad arguments; nothing was written.
            StoreUnavailableError: The store could not be reached; the append
                may or may not have landed, and re-sending it is safe.

        Example:
            >>> from eventstore import InMemoryEventStore, NewEvent
            >>> store = InMemoryEventStore()
            >>> result = store.append(
            ...     "doc-1", [NewEvent("doc.created", {"title": "Q3"})], expected_version=0
            ... )
            >>> result.version
            1
        """
        encoded = check.encode_append(stream_id, events, expected_version)
        self._check_open()
        results = self._append((encoded,))
        return results[0]

    def append_many(self, requests: Sequence[AppendRequest]) -> list[AppendResult]:
        """
        Append to several streams in one atomic step.

        Each request follows the rules of `append` (expected version,
        idempotent retry); if any request is refused, nothing of any request
        is stored.

        Args:
            requests: One per stream; a stream may appear only once.

        Returns:
            One result per request, in order.

        Raises:
            ConcurrencyError, DuplicateEventError, InvalidArgumentError: As
                for `append`, for the first request refused.
        """
        encoded = check.encode_requests(requests)
        self._check_open()
        return self._append(encoded)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        """
        Store *snapshot*, replacing any at the same stream and version.

        Older snapshots beyond the store's keep count are dropped.

        Raises:
            InvalidArgumentError: A bad stream id, version, type or state.
        """
        encoded = check.encode_snapshot(snapshot)
        self._check_open()
        self._save_snapshot(encoded)

    # --- reading ---------------------------------------------------------

    def read_stream(
        self,
        stream_id: str,
        *,
        from_version: int = 1,
        to_version: int | None = None,
        backwards: bool = False,
        limit: int | None = None,
    ) -> Iterator[RecordedEvent]:
        """
        Iterate over the events of *stream_id* between two versions, inclusive.

        Forwards from *from_version*, or, when *backwards*, from *to_version*
        (or the stream's end) down to *from_version*. Events are fetched in
        pages, so a long stream is read in constant memory. A stream that does
        not exist reads as empty.

        Args:
            stream_id: The stream to read.
            from_version: Lowest version to include, at least 1.
            to_version: Highest version to include; ``None`` for the end.
            backwards: Newest first.
            limit: Most events to return; ``None`` for all.

        Raises:
            InvalidArgumentError: A bad stream id, version or limit (raised
                by this call, not by the first ``next()``).
        """
        check.check_stream_id(stream_id)
        check.check_int(from_version, "from_version", minimum=1)
        check.check_optional_int(to_version, "to_version", minimum=1)
        check.check_optional_int(limit, "limit", minimum=1)
        if not isinstance(backwards, bool):
            raise InvalidArgumentTypeError("backwards must be a bool")
        self._check_open()
        return self._read_stream(stream_id, from_version, to_version, backwards, limit)

    def stream_version(self, stream_id: str) -> int:
        """
        Return the version of *stream_id*: its number of events, 0 if it does not exist.

        Raises:
            InvalidArgumentError: A bad stream id.
        """
        check.check_stream_id(stream_id)
        self._check_open()
        return self._stream_version(stream_id)

    def read_all(
        self, after: LogPosition | None = None, *, limit: int = 1000
    ) -> list[RecordedEvent]:
        """
        Return one page of the global log: the events after *after*, oldest first.

        Every committed event appears exactly once, in an order that never
        changes once read, so a reader that checkpoints the position of the
        last event it handled never skips or repeats one, even while writers
        run concurrently. An event may show up a moment after its `append`
        returned, while older transactions that could still commit before it
        are open.

        Args:
            after: The checkpoint; ``None`` to start at the beginning.
            limit: Most events to return, at least 1.

        Raises:
            InvalidArgumentError: *after* is not a `LogPosition`, or a bad limit.
        """
        check.check_log_position(after)
        check.check_int(limit, "limit", minimum=1)
        self._check_open()
        return self._read_all(after, limit)

    def load_snapshot(
        self, stream_id: str, *, max_version: int | None = None
    ) -> Snapshot | None:
        """
        Return the newest snapshot of *stream_id* at or below *max_version*, or ``None``.

        Raises:
            InvalidArgumentError: A bad stream id or version.
        """
        check.check_stream_id(stream_id)
        check.check_optional_int(max_version, "max_version", minimum=1)
        self._check_open()
        return self._load_snapshot(stream_id, max_version)

    def load(
        self,
        stream_id: str,
        *,
        to_version: int | None = None,
        use_snapshot: bool = True,
    ) -> LoadedStream:
        """
        Fetch what rebuilding an aggregate needs: its newest snapshot and the events after it.

        On PostgreSQL this is one round trip.

        Args:
            stream_id: The aggregate's stream.
            to_version: Load the state as of this version; ``None`` for the latest.
            use_snapshot: ``False`` to skip snapshots and return every event.

        Raises:
            InvalidArgumentError: A bad stream id or version.
            InvalidArgumentTypeError: *use_snapshot* is not a bool.
        """
        check.check_stream_id(stream_id)
        check.check_optional_int(to_version, "to_version", minimum=1)
        if not isinstance(use_snapshot, bool):
            raise InvalidArgumentTypeError("use_snapshot must be a bool")
        self._check_open()
        return self._load(stream_id, to_version, use_snapshot)

    # --- lifecycle -------------------------------------------------------

    def health(self) -> HealthReport:
        """
        Report whether the store is usable, with latency and pool figures.

        Never raises: a store that cannot be reached, or is closed, reports
        `HealthStatus.UNAVAILABLE`.
        """
        return self._health()

    def close(self) -> None:
        """Release the store's resources; further calls raise `StoreClosedError`."""
        if not self._closed:
            self._closed = True
            self._close()

    @property
    def closed(self) -> bool:
        """Whether `close` was called."""
        return self._closed

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(f"{type(self).__name__} is closed")

    # --- what a backend implements ---------------------------------------

    def _load(
        self, stream_id: str, to_version: int | None, use_snapshot: bool
    ) -> LoadedStream:
        """
        Fetch a snapshot and the later events; backends may do it in one round trip.

        Only a snapshot at or below the stream's version is used: one beyond
        it (saved for versions the stream never reached) would load a stream
        that does not exist, or a version every save then conflicts with.
        """
        snapshot = None
        if use_snapshot:
            version = self._stream_version(stream_id)
            high = version if to_version is None else min(to_version, version)
            snapshot = self._load_snapshot(stream_id, high) if high else None
        start = 1 if snapshot is None else snapshot.version + 1
        events = [
            event
            for event in self._read_stream(stream_id, start, to_version, False, None)
        ]
        return LoadedStream.of(stream_id, snapshot, tuple(events))

    # --- what a backend implements for subscriptions ----------------------

    def _read_log_page(
        self, after: LogPosition | None, limit: int, log_filter: LogFilter
    ) -> LogPage:
        """
        Read up to *limit* events of the log after *after*; keep those *log_filter* passes.

        The default filters a page of `read_all` in process; a backend that
        can filter where the events are stored overrides it.
        """
        return page_of(self._read_all(after, limit), log_filter, limit)

    def _log_behind(
        self, after: LogPosition | None, log_filter: LogFilter, cap: int
    ) -> tuple[int, datetime | None]:
        """
        Count the events after *after* that pass *log_filter* (at most *cap*).

        Returns:
            The count, and when the oldest of them was recorded (``None``
            when there is none).
        """
        count, oldest, position = 0, None, after
        while count < cap:
            page = self._read_log_page(position, 1000, log_filter)
            if page.scanned_to is None:
                break
            if oldest is None and page.events:
                oldest = page.events[0].recorded_at
            count += len(page.events)
            position = page.scanned_to
            if page.at_end:
                break
        return min(count, cap), oldest

    def _listen(self) -> LogListener | None:
        """
        Open a session that hears when the log may have grown, or ``None`` (poll instead).

        Raises:
            StoreUnavailableError: The store cannot be reached.
        """
        return None

    def _log_holder(self) -> LogHolder | None:
        """Return the transaction holding the log back, if any; ``None`` by default."""
        return None

    def _load_checkpoint(self, name: str, member: str) -> LogPosition | None:
        """Return the checkpoint of subscription *name* (``None``: the log's start)."""
        raise ConfigError(
            f"{type(self).__name__} does not store subscription checkpoints"
        )

    def _save_checkpoint(
        self,
        name: str,
        member: str,
        expected: LogPosition | None,
        new: LogPosition,
        *,
        durable: bool = True,
    ) -> None:
        """
        Move the checkpoint of *name* from *expected* to *new*, atomically.

        Not *durable*, the move may be lost in a crash of the store (the
        checkpoint then falls back to an earlier one), in exchange for a
        cheaper commit: for a checkpoint taken after an at-least-once
        handler, whose events may come again anyway.

        Raises:
            SubscriptionConflictError: The checkpoint is not at *expected*.
        """
        raise ConfigError(
            f"{type(self).__name__} does not store subscription checkpoints"
        )

    def _reset_checkpoint(
        self,
        name: str,
        member: str,
        to: LogPosition | None,
        work: TransactionWork | None,
    ) -> None:
        """
        Set the checkpoint of *name* to *to* (``None``: the log's start), whatever it is.

        *work*, when given, runs with a connection in the same transaction
        (transactional stores only).
        """
        raise ConfigError(
            f"{type(self).__name__} does not store subscription checkpoints"
        )

    def _park(
        self,
        name: str,
        member: str,
        event: RecordedEvent,
        error: str,
        attempts: int,
        *,
        still_parked: bool = False,
    ) -> None:
        """
        Record *event* as parked by *name*, with the handler's error (again: add the attempts).

        With *still_parked* (a failed replay's), only if it is parked now: a
        replay elsewhere may have taken it meanwhile.
        """
        raise ConfigError(f"{type(self).__name__} does not store parked events")

    def _park_in_transaction(
        self,
        name: str,
        member: str,
        event: RecordedEvent,
        error: str,
        attempts: int,
        *,
        expected: LogPosition | None,
    ) -> None:
        """
        Park *event* as `_park` does and move the checkpoint from *expected* to it, in one transaction.

        Raises:
            SubscriptionConflictError: The checkpoint was not at *expected*;
                nothing is parked.
        """
        raise ConfigError(
            f"{type(self).__name__} has no transactions to share with a handler: "
            "transactional delivery needs PostgreSQL"
        )

    def _parked(
        self, name: str, member: str, after: LogPosition | None, limit: int
    ) -> list[ParkedEvent]:
        """Return up to *limit* events parked by *name* after *after*, in log order."""
        raise ConfigError(f"{type(self).__name__} does not store parked events")

    def _parked_count(self, name: str, member: str) -> int:
        """Return how many events *name* has parked; 0 without parking."""
        return 0

    def _unpark(self, name: str, member: str, stream_id: str, version: int) -> None:
        """Forget that *name* parked event *version* of *stream_id*."""
        raise ConfigError(f"{type(self).__name__} does not store parked events")

    def _replay_in_transaction(
        self,
        name: str,
        member: str,
        stream_id: str,
        version: int,
        work: TransactionWork,
    ) -> bool:
        """
        Unpark the event and run *work*, in one transaction.

        Returns:
            Whether *work* ran: ``False``, with nothing done, when the event
            was no longer parked (another replay unparked it first).
        """
        raise ConfigError(
            f"{type(self).__name__} has no transactions to share with a handler: "
            "transactional delivery needs PostgreSQL"
        )

    def _lock_subscription(self, name: str, member: str) -> SubscriptionLock | None:
        """
        Take the lock that makes the caller the one active runner of *name*.

        Returns:
            The lock, or ``None`` when another runner holds it. The default
            is a lock in this process, per store object.
        """
        with _LOCAL_LOCKS:
            if self._held_subscriptions is None:
                self._held_subscriptions = set()
        return LocalLock.take(self._held_subscriptions, (name, member))

    def _deliver_in_transaction(
        self,
        name: str,
        member: str,
        expected: LogPosition | None,
        new: LogPosition,
        work: TransactionWork,
    ) -> None:
        """
        Run *work* with a connection in a transaction that also moves the checkpoint.

        Raises:
            ConfigError: The backend has no transactions (the default).
            SubscriptionConflictError: The checkpoint is not at *expected*;
                nothing of the transaction is kept.
        """
        raise ConfigError(
            f"{type(self).__name__} has no transactions to share with a handler: "
            "transactional delivery needs PostgreSQL"
        )

    @abc.abstractmethod
    def _append(self, appends: Sequence[check.EncodedAppend]) -> list[AppendResult]:
        """Store validated appends atomically, all or none."""

    @abc.abstractmethod
    def _read_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        backwards: bool,
        limit: int | None,
    ) -> Iterator[RecordedEvent]:
        """Iterate over a stream's events in the given range and direction."""

    @abc.abstractmethod
    def _stream_version(self, stream_id: str) -> int:
        """Return a stream's version, 0 when absent."""

    @abc.abstractmethod
    def _read_all(self, after: LogPosition | None, limit: int) -> list[RecordedEvent]:
        """Return a page of the global log after *after*."""

    @abc.abstractmethod
    def _save_snapshot(self, snapshot: check.EncodedSnapshot) -> None:
        """Store a validated snapshot and drop the ones beyond the keep count."""

    @abc.abstractmethod
    def _load_snapshot(
        self, stream_id: str, max_version: int | None
    ) -> Snapshot | None:
        """Return the newest snapshot at or below *max_version*."""

    @abc.abstractmethod
    def _health(self) -> HealthReport:
        """Report health; must not raise."""

    @abc.abstractmethod
    def _close(self) -> None:
        """Release resources; called once."""
