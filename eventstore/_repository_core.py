"""
What `Repository` and `AsyncRepository` share: configuration, checks, hooks, and the decisions of a load and a save.

Nothing here does I/O. The two repository shells (``repository_async.py``
and the ``repository.py`` generated from it) fetch and append through their
store and call into this core for everything else.
"""

from __future__ import annotations

import enum
import inspect
import logging
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Generic, TypeVar

import attrs

from eventstore.aggregate import Aggregate
from eventstore.errors import (
    AggregateAlreadyExists,
    AggregateNotFound,
    ConcurrencyError,
    ConfigError,
    InvalidArgumentTypeError,
    SerializationError,
)
from eventstore.events import AppendRequest, NewEvent, RecordedEvent
from eventstore.retry import RetryPolicy
from eventstore.serialization import Registry
from eventstore.snapshots import LoadedStream, Snapshot, crosses_snapshot_boundary

__all__ = ["UNSET", "CommandFailed", "RepositoryCore", "SavePlan", "plan_save"]

A = TypeVar("A")

_log = logging.getLogger("eventstore.repository")


class CommandFailed(Exception):
    """Carries an error of the host's command past the retry policy."""

    def __init__(self, error: Exception) -> None:
        super().__init__(error)
        self.error = error


class _ClassDefault(enum.Enum):
    """The default of an ``__init__`` argument that keeps the class attribute."""

    CLASS_ATTRIBUTE = "the class attribute"

    def __repr__(self) -> str:
        return "<the class attribute>"


UNSET: Any = _ClassDefault.CLASS_ATTRIBUTE
"""Default of ``snapshot_every``: keep the class attribute."""

_AGGREGATE_BLANK: Any = vars(Aggregate)["blank"].__func__
"""`Aggregate.blank`, which builds a subclass from its id and field defaults alone."""


class RepositoryCore(Generic[A]):
    """
    The configuration, hooks and decisions of a repository, without its I/O.

    `Repository` and `AsyncRepository` derive from it; see `Repository` for
    the class attributes and the hooks a host overrides.
    """

    aggregate_type: type[A]
    _store_class: ClassVar[type]
    """The store kind a repository takes: `EventStore`, or `AsyncEventStore` for an async one."""
    stream_prefix: str = ""
    snapshot_every: int | None = None
    snapshot_type: type | None = None
    retry_policy: RetryPolicy = RetryPolicy()

    def __init__(
        self,
        store: Any,
        registry: Registry,
        *,
        stream_prefix: str | None = None,
        snapshot_every: int | None = UNSET,
        retry_policy: RetryPolicy | None = None,
        **rest: Any,
    ) -> None:
        super().__init__(**rest)
        if not isinstance(store, self._store_class):
            raise InvalidArgumentTypeError(
                f"{type(self).__name__} needs an {self._store_class.__name__}, got "
                f"{type(store).__name__}"
            )
        if retry_policy is not None and not isinstance(retry_policy, RetryPolicy):
            raise InvalidArgumentTypeError(
                f"retry_policy must be a RetryPolicy, got {type(retry_policy).__name__}"
            )
        if not isinstance(registry, Registry):
            raise InvalidArgumentTypeError(
                f"registry must be a Registry, got {type(registry).__name__}"
            )
        self.store = store
        self.registry = registry
        if stream_prefix is not None:
            self.stream_prefix = stream_prefix
        if snapshot_every is not UNSET:
            self.snapshot_every = snapshot_every
        if retry_policy is not None:
            self.retry_policy = retry_policy
        if not isinstance(self.stream_prefix, str) or not self.stream_prefix:
            raise ConfigError(
                f"{type(self).__name__}.stream_prefix must be a non-empty str"
            )
        if self.stream_prefix.endswith("-"):
            # The repository writes the separator itself: "account-" would
            # make streams "account--<id>" (a subscription's stream_prefix,
            # a plain starts-with, is the one that takes "account-").
            raise ConfigError(
                f"{type(self).__name__}.stream_prefix {self.stream_prefix!r} ends "
                f"with '-': give {self.stream_prefix.rstrip('-')!r}, and the "
                "repository writes the '-' before each id"
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
        """Refuse now a missing aggregate type, or one the default `new_aggregate` could not build."""
        name = type(self).__name__
        cls = getattr(self, "aggregate_type", None)
        if not isinstance(cls, type):
            # Needed whoever builds the aggregates: saves, update()'s result
            # and snapshots are checked against it.
            raise ConfigError(f"{name}.aggregate_type must be a class, got {cls!r}")
        if type(self).new_aggregate is not RepositoryCore.new_aggregate:
            return  # the host builds its own
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
            if type(self).snapshot_state is not RepositoryCore.snapshot_state:
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

    def pending_event_ids(self, aggregate: A) -> Sequence[uuid.UUID] | None:
        """
        Return the ids to store the pending events under, one each, or ``None`` to draw new ones per save.

        Ids that stay the same from one save of an aggregate to the next let
        a save whose reply was lost (the retry policy gave up, yet it had
        committed) be sent again and be recognised as a retry, returning its
        result, rather than conflict with its own events. Default: the ids
        an `Aggregate` drew when each event was raised; ``None`` for other
        classes, and when the count does not match `pending_events`.
        """
        if not isinstance(aggregate, Aggregate):
            return None
        return aggregate.pending_event_ids

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
        except Exception as exc:
            # A snapshot is a cache: one that does not decode, or that the
            # host's restore_snapshot cannot take (an older shape), is
            # replaced by the events it stands for, never trusted or fatal.
            _log.warning(
                "ignoring snapshot of stream %r at version %d (%s: %s); replaying its events",
                snapshot.stream_id,
                snapshot.version,
                type(exc).__name__,
                exc,
                exc_info=not isinstance(exc, SerializationError),
                extra={
                    "stream_id": snapshot.stream_id,
                    "snapshot_version": snapshot.version,
                },
            )
            return None

    def _already_exists(
        self, aggregate: A, error: ConcurrencyError
    ) -> AggregateAlreadyExists:
        """Return the error `create` raises for *aggregate*, whose stream *error* found taken."""
        return AggregateAlreadyExists(
            error.stream_id, self.id_of(aggregate), error.actual
        )

    def _log_unavailable(self, error: BaseException, attempt: int) -> None:
        """Log a load's or save's unreachable store at WARNING, when it is tried again."""
        if attempt >= self.retry_policy.max_attempts:
            return  # raised to the caller, whose error it now is
        _log.warning(
            "%s could not reach the store (%s); trying again (attempt %d of %d)",
            type(self).__name__,
            error,
            attempt,
            self.retry_policy.max_attempts,
            extra={"attempt": attempt},
        )

    def _encode_pending(
        self, aggregate: A, metadata: Mapping[str, Any] | None
    ) -> list[NewEvent]:
        events = self.pending_events(aggregate)
        ids = self.pending_event_ids(aggregate)
        if ids is None or len(ids) != len(events):
            return [
                self.registry.to_new_event(event, metadata=metadata) for event in events
            ]
        return [
            self.registry.to_new_event(event, metadata=metadata, event_id=event_id)
            for event, event_id in zip(events, ids, strict=True)
        ]

    def _found(
        self, loaded: LoadedStream, aggregate_id: str, version: int | None
    ) -> None:
        """Raise `AggregateNotFound` unless *loaded* holds the aggregate (at *version*)."""
        if loaded.version == 0 or (version is not None and loaded.version < version):
            raise AggregateNotFound(
                loaded.stream_id, aggregate_id, version, loaded.version
            )

    def _rebuild(
        self,
        aggregate_id: str,
        aggregate: A | None,
        events: Iterable[RecordedEvent],
        version: int,
    ) -> A:
        """Apply *events* to *aggregate* (or a blank one) and mark it saved at *version*."""
        if aggregate is None:
            aggregate = self.new_aggregate(aggregate_id)
        for event in events:
            aggregate = self.apply_event(aggregate, self.registry.from_recorded(event))
        self.mark_saved(aggregate, version)
        return aggregate

    def _snapshot_due(self, old_version: int, new_version: int) -> bool:
        """Whether a save from *old_version* to *new_version* crosses a snapshot boundary."""
        return self.snapshot_every is not None and crosses_snapshot_boundary(
            old_version, new_version, self.snapshot_every
        )


@attrs.frozen
class SavePlan:
    """The one append that saves several aggregates, and where each result goes."""

    requests: list[AppendRequest]
    saving: list[tuple[int, int]]
    """Per request: the index of its aggregate in the items, and its expected version."""


def plan_save(
    items: Sequence[tuple[RepositoryCore[Any], Any]],
    metadata: Mapping[str, Any] | None,
) -> SavePlan:
    """
    Encode the pending events of ``(repository, aggregate)`` pairs as one atomic append.

    Raises:
        ConfigError: The repositories use different stores.
        InvalidArgumentTypeError: An item is not a ``(repository, aggregate)``
            pair, or an aggregate not of its repository's type.
    """
    for item in items:
        if not (
            isinstance(item, tuple | list)
            and len(item) == 2  # a pair
            and isinstance(item[0], RepositoryCore)
        ):
            raise InvalidArgumentTypeError(
                "save_together takes (repository, aggregate) pairs, got "
                f"{type(item).__name__} {item!r}"
            )
    requests: list[AppendRequest] = []
    saving: list[tuple[int, int]] = []
    first = items[0][0] if items else None
    for index, (repository, aggregate) in enumerate(items):
        if first is not None and repository.store is not first.store:
            raise ConfigError("save_together needs repositories that share one store")
        if not isinstance(aggregate, repository.aggregate_type):
            # Its events would land in this repository's stream, where no
            # load of this type could ever replay them.
            raise InvalidArgumentTypeError(
                f"{type(repository).__name__} saves "
                f"{repository.aggregate_type.__name__} aggregates, got "
                f"{type(aggregate).__name__}"
            )
        events = repository._encode_pending(aggregate, metadata)
        if not events:
            continue
        version = repository.version_of(aggregate)
        stream_id = repository.stream_id(repository.id_of(aggregate))
        requests.append(AppendRequest(stream_id, events, expected_version=version))
        saving.append((index, version))
    return SavePlan(requests, saving)


def check_command(command: object, *, coroutines: bool) -> None:
    """
    Refuse, before any I/O, a command `update` cannot run.

    Args:
        command: What the caller passed.
        coroutines: Whether the repository awaits a coroutine function's result.

    Raises:
        InvalidArgumentTypeError: *command* is not callable, or is a
            coroutine function where *coroutines* is false (its coroutine
            would never run, and nothing be saved).
    """
    if not callable(command):
        raise InvalidArgumentTypeError(
            f"command must be callable, got {type(command).__name__}"
        )
    if not coroutines and (
        inspect.iscoroutinefunction(command)
        or inspect.iscoroutinefunction(type(command).__call__)
    ):
        raise InvalidArgumentTypeError(
            "command is a coroutine function: use AsyncRepository.update for it"
        )


def refuse_awaitable(outcome: object) -> None:
    """
    Refuse what a sync `update`'s command returned if it is awaitable (never awaited, it saves nothing).

    Raises:
        InvalidArgumentTypeError: *outcome* is awaitable; it is closed first,
            so Python does not warn that it was never awaited.
    """
    if inspect.isawaitable(outcome):
        close = getattr(outcome, "close", None)
        if callable(close):
            close()
        raise InvalidArgumentTypeError(
            "command returned an awaitable: use AsyncRepository.update for it"
        )


def _as_aggregate(aggregate: object, hook: str) -> Aggregate:
    if not isinstance(aggregate, Aggregate):
        raise ConfigError(
            f"{type(aggregate).__name__} does not derive from eventstore.Aggregate: "
            f"override Repository.{hook}() for it"
        )
    return aggregate
