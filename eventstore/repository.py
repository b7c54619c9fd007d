"""`Repository`: load and save aggregates as event streams, with retries and snapshots."""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, Generic, TypeVar

import attrs

from eventstore._validation import check_optional_int
from eventstore.aggregate import Aggregate
from eventstore.errors import (
    AggregateNotFound,
    ConcurrencyError,
    ConfigError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    SerializationError,
    StoreUnavailableError,
)
from eventstore.events import AppendRequest, AppendResult, NewEvent, RecordedEvent
from eventstore.retry import RetryPolicy, log_conflict
from eventstore.serialization import Registry
from eventstore.snapshots import Snapshot, crosses_snapshot_boundary
from eventstore.store import EventStore

__all__ = ["Repository", "save_together"]

A = TypeVar("A")
R = TypeVar("R")

_log = logging.getLogger("eventstore.repository")


class _CommandFailed(Exception):
    """Carries an error of the host's command past the retry policy."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class _ClassDefault(enum.Enum):
    """The default of an ``__init__`` argument that keeps the class attribute."""

    CLASS_ATTRIBUTE = "the class attribute"

    def __repr__(self) -> str:
        return "<the class attribute>"


_UNSET: Any = _ClassDefault.CLASS_ATTRIBUTE

_AGGREGATE_BLANK: Any = vars(Aggregate)["blank"].__func__
"""`Aggregate.blank`, which builds a subclass from its id and field defaults alone."""


class Repository(Generic[A]):
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

    The configuration is checked when the repository is built: the
    aggregate type must be buildable blank (every field but ``id`` has a
    default, or it has its own ``blank()``), and with ``snapshot_every`` set
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
        ConfigError: No stream prefix; a snapshot interval below 1; an
            aggregate type that cannot be built blank (the message names
            the fields and the fix); a snapshot type the registry does not know.
    """

    aggregate_type: type[A]
    stream_prefix: str = ""
    snapshot_every: int | None = None
    snapshot_type: type | None = None
    retry_policy: RetryPolicy = RetryPolicy()

    def __init__(
        self,
        store: EventStore,
        registry: Registry,
        *,
        stream_prefix: str | None = None,
        snapshot_every: int | None = _UNSET,
        retry_policy: RetryPolicy | None = None,
        **rest: Any,
    ) -> None:
        super().__init__(**rest)
        self.store = store
        self.registry = registry
        if stream_prefix is not None:
            self.stream_prefix = stream_prefix
        if snapshot_every is not _UNSET:
            self.snapshot_every = snapshot_every
        if retry_policy is not None:
            self.retry_policy = retry_policy
        if not isinstance(self.stream_prefix, str) or not self.stream_prefix:
            raise ConfigError(
                f"{type(self).__name__}.stream_prefix must be a non-empty str"
            )
        every = self.snapshot_every
        if every is not None and (
            isinstance(every, bool) or not isinstance(every, int) or every < 1
        ):
            raise ConfigError(
                f"{type(self).__name__}.snapshot_every must be an int >= 1 or None, got {every!r}"
            )
        self._check_blank_aggregate()
        if every is not None:
            self._check_snapshot_type()

    def _check_blank_aggregate(self) -> None:
        """Refuse now an aggregate type the default `new_aggregate` could not build."""
        if type(self).new_aggregate is not Repository.new_aggregate:
            return  # the host builds its own
        name = type(self).__name__
        cls = getattr(self, "aggregate_type", None)
        if not isinstance(cls, type):
            raise ConfigError(
                f"{name}.aggregate_type must be a class, got {cls!r}; set it, "
                "or override new_aggregate()"
            )
        blank = getattr(cls, "blank", None)
        if blank is None:
            raise ConfigError(
                f"{name}: {cls.__name__} has no blank() classmethod; add one, "
                "derive it from eventstore.Aggregate, or override new_aggregate()"
            )
        if getattr(blank, "__func__", None) is not _AGGREGATE_BLANK:
            return  # its own blank() knows how
        required = [
            field.alias
            for field in attrs.fields(cls)
            if field.init and field.default is attrs.NOTHING and field.name != "id"
        ]
        if required:
            raise ConfigError(
                f"{cls.__name__} cannot be built blank to replay its events: "
                f"{', '.join(required)} {'has' if len(required) == 1 else 'have'} "
                f"no default. Give {'it' if len(required) == 1 else 'them'} a "
                f"default, or override {cls.__name__}.blank() (or "
                f"{name}.new_aggregate())"
            )

    def _check_snapshot_type(self) -> None:
        """Refuse now a snapshot type the registry would refuse at every save."""
        cls = self.snapshot_type
        if cls is None:
            if type(self).snapshot_state is not Repository.snapshot_state:
                return  # the host's snapshot_state decides; nothing to check
            cls = self.aggregate_type
        try:
            self.registry.type_name_of(cls)
        except SerializationError:
            raise ConfigError(
                f"{type(self).__name__}.snapshot_every is {self.snapshot_every}, but "
                f"its snapshot type {getattr(cls, '__qualname__', cls)} is not "
                "registered: register it (@registry.register('name', version=1)), "
                "or set snapshot_every = None"
            ) from None

    def __repr__(self) -> str:
        return f"<{type(self).__name__} prefix={self.stream_prefix!r} store={self.store!r}>"

    # --- the API -------------------------------------------------------------

    def stream_id(self, aggregate_id: str) -> str:
        """
        Return the stream of *aggregate_id*: ``f"{stream_prefix}-{aggregate_id}"``.

        Raises:
            InvalidArgumentTypeError: *aggregate_id* is not a str.

        """
        if aggregate_id.__class__ is not str and not isinstance(aggregate_id, str):
            raise InvalidArgumentTypeError(
                f"aggregate id must be a str, got {type(aggregate_id).__name__} "
                f"{aggregate_id!r}"
            )
        return f"{self.stream_prefix}-{aggregate_id}"

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
        if loaded.version == 0 or (version is not None and loaded.version < version):
            raise AggregateNotFound(stream_id, aggregate_id, version, loaded.version)
        aggregate = None
        events: Iterable[RecordedEvent] = loaded.events
        if loaded.snapshot is not None:
            aggregate = self._restore(loaded.snapshot, aggregate_id)
            if aggregate is None:
                events = self._transient_retry(
                    lambda: list(
                        self.store.read_stream(stream_id, to_version=loaded.version)
                    )
                )
        if aggregate is None:
            aggregate = self.new_aggregate(aggregate_id)
        for event in events:
            aggregate = self.apply_event(aggregate, self.registry.from_recorded(event))
        self.mark_saved(aggregate, loaded.version)
        return aggregate

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
            ConcurrencyError: An aggregate with this id exists already.
            InvalidArgumentError: The aggregate has no pending events.
        """
        if self.version_of(aggregate) != 0:
            raise ConcurrencyError(
                self.stream_id(self.id_of(aggregate)), 0, self.version_of(aggregate)
            )
        result = self.save(aggregate, metadata=metadata)
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
            command: Changes the aggregate by calling its command methods.
            metadata: Added to every event saved.

        Returns:
            The aggregate as saved.

        Raises:
            ConcurrencyError: Still conflicting after the policy's attempts;
                its ``attempts`` says how many.
            AggregateNotFound: No such aggregate.
        """
        stream_id = self.stream_id(aggregate_id)

        def attempt() -> A:
            aggregate = self.get(aggregate_id)
            try:
                command(aggregate)
            except Exception as exc:
                # Carried past the retry whatever it is: a ConcurrencyError
                # from the command's own writes is the host's, not ours.
                raise _CommandFailed(exc) from exc
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
        except _CommandFailed as failed:
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

    # --- hooks for aggregates of your own -----------------------------------------

    def new_aggregate(self, aggregate_id: str) -> A:
        """Return an aggregate with no history; default: ``aggregate_type.blank(id)``."""
        blank: Callable[[str], A] | None = getattr(self.aggregate_type, "blank", None)
        if blank is None:
            raise ConfigError(
                f"{type(self).__name__}: override new_aggregate() for {self.aggregate_type!r}"
            )
        return blank(aggregate_id)

    def apply_event(self, aggregate: A, event: object) -> A:
        """Apply a stored *event* during a load and return the aggregate (new or changed)."""
        _as_aggregate(aggregate, "apply_event").apply(event)
        return aggregate

    def pending_events(self, aggregate: A) -> Sequence[object]:
        """Return the events recorded on *aggregate* and not saved yet."""
        return _as_aggregate(aggregate, "pending_events").pending_events

    def mark_saved(self, aggregate: A, version: int) -> None:
        """Record that *aggregate* is stored at *version* with nothing pending."""
        _as_aggregate(aggregate, "mark_saved").mark_saved(version)

    def version_of(self, aggregate: A) -> int:
        """Return the stream version *aggregate* was loaded or last saved at (0: new)."""
        return _as_aggregate(aggregate, "version_of").version

    def id_of(self, aggregate: A) -> str:
        """Return the id of *aggregate*."""
        return _as_aggregate(aggregate, "id_of").id

    def snapshot_state(self, aggregate: A) -> object:
        """Return the object to snapshot for *aggregate*; default: the aggregate itself."""
        return aggregate

    def restore_snapshot(self, state: object, aggregate_id: str) -> A:
        """
        Turn a decoded snapshot state back into an aggregate.

        Raises:
            SerializationError: The state is not an aggregate of this repository's type.
        """
        if not isinstance(state, self.aggregate_type):
            raise SerializationError(
                f"snapshot holds a {type(state).__name__}, not a {self.aggregate_type.__name__}"
            )
        if self.id_of(state) != aggregate_id:
            raise SerializationError(
                f"snapshot holds aggregate {self.id_of(state)!r}, not {aggregate_id!r}"
            )
        return state

    # --- internals ---------------------------------------------------------------------

    def _restore(self, snapshot: Snapshot, aggregate_id: str) -> A | None:
        try:
            return self.restore_snapshot(
                self.registry.from_snapshot(snapshot), aggregate_id
            )
        except SerializationError as exc:
            _log.warning(
                "ignoring snapshot of stream %r at version %d (%s); replaying its events",
                snapshot.stream_id,
                snapshot.version,
                exc,
                extra={
                    "stream_id": snapshot.stream_id,
                    "snapshot_version": snapshot.version,
                },
            )
            return None

    def _encode_pending(
        self, aggregate: A, metadata: Mapping[str, Any] | None
    ) -> list[NewEvent]:
        return [
            self.registry.to_new_event(event, metadata=metadata)
            for event in self.pending_events(aggregate)
        ]

    def _after_save(self, aggregate: A, old_version: int, result: AppendResult) -> None:
        self.mark_saved(aggregate, result.version)
        if self.snapshot_every is None or not crosses_snapshot_boundary(
            old_version, result.version, self.snapshot_every
        ):
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

    def _transient_retry(self, fn: Callable[[], R]) -> R:
        return self.retry_policy.call(fn, retry_on=(StoreUnavailableError,))


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
    """
    if not items:
        return []
    first = items[0][0]
    requests: list[AppendRequest] = []
    saving: list[tuple[int, int]] = []  # (index into items, expected version)
    for index, (repository, aggregate) in enumerate(items):
        if repository.store is not first.store:
            raise ConfigError("save_together needs repositories that share one store")
        events = repository._encode_pending(aggregate, metadata)
        if not events:
            continue
        version = repository.version_of(aggregate)
        stream_id = repository.stream_id(repository.id_of(aggregate))
        requests.append(AppendRequest(stream_id, events, expected_version=version))
        saving.append((index, version))
    outcome: list[AppendResult | None] = [None] * len(items)
    if not requests:
        return outcome
    # The same requests, same event ids, on every attempt: if an attempt
    # committed and only its reply was lost, the next returns its result.
    results = first._transient_retry(lambda: first.store.append_many(requests))
    for (index, version), result in zip(saving, results, strict=True):
        repository, aggregate = items[index]
        outcome[index] = result
        repository._after_save(aggregate, version, result)
    return outcome


def _as_aggregate(aggregate: object, hook: str) -> Aggregate:
    if not isinstance(aggregate, Aggregate):
        raise ConfigError(
            f"{type(aggregate).__name__} does not derive from eventstore.Aggregate: "
            f"override Repository.{hook}() for it"
        )
    return aggregate
