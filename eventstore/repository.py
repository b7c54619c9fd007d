# Generated from repository_async.py by tools/async_to_sync.py: edit that file, not
# this one, then run `python tools/async_to_sync.py`.
"""`Repository`: load and save aggregates as event streams, with retries and snapshots."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

from eventstore._repository_core import (
    UNSET,
    CommandFailed,
    RepositoryCore,
    check_command,
    plan_save,
    refuse_awaitable,
)
from eventstore._validation import check_optional_int
from eventstore.errors import (
    ConcurrencyError,
    InvalidArgumentError,
    StoreUnavailableError,
)
from eventstore.events import AppendResult, RecordedEvent
from eventstore.retry import Attempt, RetryPolicy, log_conflict
from eventstore.serialization import Registry
from eventstore.store import EventStore

__all__ = ["Repository", "save_together"]

A = TypeVar("A")
R = TypeVar("R")

_log = logging.getLogger("eventstore.repository")


class Repository(RepositoryCore[A]):
    """
    Load and save one kind of aggregate, each as its own stream.

    Subclass it per aggregate and configure it with class attributes; an
    instance may override any of them with keyword arguments::

        class DocumentRepository(Repository[Document]):
            aggregate_type = Document
            stream_prefix = "document"
            snapshot_every = 50                  # None: never
            retry_policy = RetryPolicy(max_retries=3, base_delay=0.05)

        repo = DocumentRepository(store, registry)
        doc = repo.get(doc_id)
        repo.update(doc_id, lambda d: d.add_finding(finding))

    It is a mixin as much as a base: no metaclass, and a cooperative
    ``__init__`` that passes unknown keyword arguments on, so a host class can
    combine it with its own repository base.

    Aggregates deriving from `Aggregate` work as they are. For other classes,
    override the hooks `new_aggregate`, `apply_event`, `pending_events`,
    `mark_saved`, `version_of`, `id_of`, and for snapshots `snapshot_state`
    and `restore_snapshot`.

    The configuration is checked when the repository is built: the store
    must be an `EventStore`, ``aggregate_type`` a class (whoever builds
    the aggregates), buildable blank unless `new_aggregate` is overridden
    (every field but ``id`` has a default, or it has its own ``blank()``),
    and with ``snapshot_every`` set
    the snapshot type must be registered. The snapshot type is the
    aggregate type, or the class attribute ``snapshot_type``: set it when
    an overridden `snapshot_state` returns another class, so it is checked
    too.

    Args:
        store: Where the streams live.
        registry: The serializer registry that knows the aggregate's event
            types (and its snapshot type, when snapshots are taken).
        stream_prefix: Overrides the class attribute for this instance;
            ``None`` (the default) keeps it.
        snapshot_every: Overrides the class attribute for this instance: a
            snapshot whenever a save passes a multiple of this version.
            Omitted, the class attribute is kept (the signature shows
            ``<the class attribute>``); ``None`` means never take snapshots.
        retry_policy: Overrides the class attribute for this instance.
            ``None`` (the default) keeps the class attribute; it does not
            turn retries off. For no retries of conflicts or of transient
            errors, pass ``RetryPolicy(max_retries=0)``.

    Raises:
        ConfigError: No stream prefix; a snapshot interval below 1; no
            aggregate type, or one that cannot be built blank (the message
            names the fields and the fix); a snapshot type the registry
            does not know.
        InvalidArgumentTypeError: *store* is not an `EventStore`,
            *registry* not a `Registry`, or *retry_policy* not a `RetryPolicy`.
    """

    store: EventStore
    _store_class = EventStore

    def __init__(
        self,
        store: EventStore,
        registry: Registry,
        *,
        stream_prefix: str | None = None,
        snapshot_every: int | None = UNSET,
        retry_policy: RetryPolicy | None = None,
        **rest: Any,
    ) -> None:
        super().__init__(
            store,
            registry,
            stream_prefix=stream_prefix,
            snapshot_every=snapshot_every,
            retry_policy=retry_policy,
            **rest,
        )

    def get(self, aggregate_id: str, *, version: int | None = None) -> A:
        """
        Load an aggregate: its newest usable snapshot plus the events after it.

        A snapshot that cannot be used (corrupt, of an unknown type, or of a
        schema newer than this code) is skipped with a WARNING, and the
        aggregate is rebuilt from its events, with the same result.

        Args:
            aggregate_id: The aggregate's id.
            version: Load the state as of this version (1 or more) instead
                of the latest.

        Raises:
            AggregateNotFound: The stream has no events, or fewer than
                *version* (the message says how many).
            InvalidArgumentError: *aggregate_id* is not a str, or *version*
                is not an int of 1 or more.
            UnknownTypeError: A stored event's type is not registered; the
                error names its stream and version.
            SerializationError: A stored event cannot be decoded.
            StoreUnavailableError: The store stayed unreachable through the
                retry policy's attempts.
        """
        stream_id = self.stream_id(aggregate_id)
        check_optional_int(version, "version", minimum=1)
        loaded = self._transient_retry(
            lambda: self.store.load(
                stream_id,
                to_version=version,
                use_snapshot=self.snapshot_every is not None,
            )
        )
        self._found(loaded, aggregate_id, version)
        aggregate = None
        events: Sequence[RecordedEvent] = loaded.events
        if loaded.snapshot is not None:
            aggregate = self._restore(loaded.snapshot, aggregate_id)
            if aggregate is None:
                events = self._transient_retry(
                    lambda: self._read_events(stream_id, loaded.version)
                )
        return self._rebuild(aggregate_id, aggregate, events, loaded.version)

    def save(
        self, aggregate: A, *, metadata: Mapping[str, Any] | None = None
    ) -> AppendResult | None:
        """
        Append the aggregate's pending events, expecting the version it was loaded at.

        A transient connection error re-sends the *same* append (same event
        ids, same expected version) per the retry policy: if the first attempt
        had committed, the store's idempotency returns its result. After a
        save that crosses a `snapshot_every` boundary, a snapshot is stored;
        a failure to snapshot is logged and never fails the save.

        Args:
            aggregate: The aggregate, with pending events.
            metadata: Added to every event (correlation and causation ids, say).

        Returns:
            The append's result, or ``None`` when nothing was pending.

        Raises:
            ConcurrencyError: The stream moved on since the aggregate was
                loaded; reload and decide again (or use `update`).
        """
        (result,) = save_together([(self, aggregate)], metadata=metadata)
        return result

    def create(
        self, aggregate: A, *, metadata: Mapping[str, Any] | None = None
    ) -> AppendResult:
        """
        Save a new aggregate: its stream must not exist yet.

        Raises:
            AggregateAlreadyExists: An aggregate with this id exists already
                (a `ConcurrencyError`).
            InvalidArgumentError: The aggregate has no pending events, or
                is not new (it was loaded or saved).
        """
        if self.version_of(aggregate) != 0:
            raise InvalidArgumentError(
                f"{type(aggregate).__name__} {self.id_of(aggregate)!r} was loaded "
                f"or saved at version {self.version_of(aggregate)}: create() takes "
                "new aggregates; use save() for this one"
            )
        try:
            result = self.save(aggregate, metadata=metadata)
        except ConcurrencyError as error:
            raise self._already_exists(aggregate, error) from None
        if result is None:
            raise InvalidArgumentError(
                f"{type(aggregate).__name__} has no pending events to create it with"
            )
        return result

    def update(
        self,
        aggregate_id: str,
        command: Callable[[A], object],
        *,
        metadata: Mapping[str, Any] | None = None,
    ) -> A:
        """
        Load the aggregate, run *command* on it, and save, retrying conflicts.

        On a `ConcurrencyError` the whole load-command-save runs again on
        fresh state: re-sending the same events with the stale expected
        version could never succeed. Each conflict is logged at WARNING on the
        ``eventstore.repository`` logger with the stream id, the expected and
        actual versions and the attempt. Errors raised by *command* are never
        retried.

        Args:
            aggregate_id: The aggregate to change.
            command: Changes the aggregate by calling its command methods,
                or returns the changed aggregate (an immutable one), which is
                then the one saved.
            metadata: Added to every event saved.

        Returns:
            The aggregate as saved.

        Raises:
            ConcurrencyError: Still conflicting after the policy's attempts;
                its ``attempts`` says how many.
            AggregateNotFound: No such aggregate.
        """
        stream_id = self.stream_id(aggregate_id)

        check_command(command, coroutines=False)

        def attempt() -> A:
            aggregate = self.get(aggregate_id)
            try:
                outcome = command(aggregate)
                refuse_awaitable(outcome)
            except Exception as exc:
                # Carried past the retry whatever it is: a ConcurrencyError
                # from the command's own writes is the host's, not ours.
                raise CommandFailed(exc) from exc
            if isinstance(outcome, self.aggregate_type):
                aggregate = outcome  # an immutable aggregate, changed into a new one
            self.save(aggregate, metadata=metadata)
            return aggregate

        def log(error: BaseException, attempt_number: int) -> None:
            if isinstance(error, ConcurrencyError) and error.stream_id == stream_id:
                log_conflict(
                    _log,
                    error,
                    attempt_number,
                    max_attempts=self.retry_policy.max_attempts,
                )

        try:
            return self.retry_policy.call(
                attempt, retry_on=(ConcurrencyError,), on_error=log
            )
        except CommandFailed as failed:
            host_error = failed.error
        # Raised outside the except clause, so its context stays the host's own.
        raise host_error

    def save_all(
        self, aggregates: Sequence[A], *, metadata: Mapping[str, Any] | None = None
    ) -> list[AppendResult | None]:
        """
        Save several aggregates atomically: all their events land, or none.

        Both shipped backends do this in one transaction (`EventStore.append_many`).

        Raises:
            ConcurrencyError: One of them moved on; nothing was saved.
        """
        return save_together(
            [(self, aggregate) for aggregate in aggregates], metadata=metadata
        )

    def _read_events(self, stream_id: str, to_version: int) -> list[RecordedEvent]:
        return [
            event for event in self.store.read_stream(stream_id, to_version=to_version)
        ]

    def _snapshot_after_save(
        self, aggregate: A, old_version: int, result: AppendResult
    ) -> None:
        if not self._snapshot_due(old_version, result.version):
            return
        if self.pending_events(aggregate):
            # Raised while the save was under way: the state holds an event
            # the stream does not, and a snapshot must equal a replay.
            return
        try:
            snapshot = self.registry.to_snapshot(
                result.stream_id, result.version, self.snapshot_state(aggregate)
            )
            self.store.save_snapshot(snapshot)
        except Exception:
            # A snapshot is a cache: losing one costs a longer load, never data.
            _log.warning(
                "could not snapshot stream %r at version %d; the save stands",
                result.stream_id,
                result.version,
                exc_info=True,
                extra={"stream_id": result.stream_id, "version": result.version},
            )

    def _transient_retry(self, fn: Attempt[R]) -> R:
        return self.retry_policy.call(
            fn, retry_on=(StoreUnavailableError,), on_error=self._log_unavailable
        )


def save_together(
    items: Sequence[tuple[Repository[Any], Any]],
    *,
    metadata: Mapping[str, Any] | None = None,
) -> list[AppendResult | None]:
    """
    Save aggregates of one or several repositories in one atomic append.

    Every repository must use the same store. Each aggregate's pending
    events are appended with the version it was loaded at as the expected
    version; if any is refused, nothing is stored. A transient error re-sends
    the same append per the first repository's retry policy.

    Args:
        items: ``(repository, aggregate)`` pairs.
        metadata: Added to every event.

    Returns:
        One result per pair, ``None`` where nothing was pending.

    Raises:
        ConcurrencyError: An aggregate's stream moved on; nothing was saved.
        ConfigError: The repositories use different stores.
        InvalidArgumentTypeError: An item is not a ``(repository,
            aggregate)`` pair, or an aggregate not of its repository's type.
    """
    plan = plan_save(items, metadata)
    outcome: list[AppendResult | None] = [None] * len(items)
    if not plan.requests:
        return outcome
    first = items[0][0]
    # The same requests, same event ids, on every attempt: if an attempt
    # committed and only its reply was lost, the next returns its result.
    results = first._transient_retry(lambda: first.store.append_many(plan.requests))
    # Every aggregate is marked saved before any snapshot is taken: a
    # snapshot awaits, and a cancellation there must not leave committed
    # aggregates looking unsaved (saving them again would conflict with
    # their own events).
    for (index, _), result in zip(plan.saving, results, strict=True):
        repository, aggregate = items[index]
        outcome[index] = result
        repository.mark_saved(aggregate, result.version)
    for (index, version), result in zip(plan.saving, results, strict=True):
        repository, aggregate = items[index]
        repository._snapshot_after_save(aggregate, version, result)
    return outcome
