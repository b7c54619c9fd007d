"""
`Aggregate`: an optional base class for event-sourced aggregates.

Subclass it with attrs, declare how each event type changes the state with
`applies`, and record new events from command methods with `raise_event`.
Host apps that keep their own aggregate classes skip this module and
override a few hooks of `Repository` instead.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Self, TypeVar

import attrs

from eventstore._ids import new_event_id
from eventstore.errors import UnhandledEventError
from eventstore.serialization import TRANSIENT

__all__ = ["Aggregate", "applies"]

_Handler = Callable[[Any, Any], None]
F = TypeVar("F", bound=Callable[..., Any])

_MARKER = "__eventstore_applies__"
_handler_tables: dict[type, dict[type, _Handler]] = {}


def applies(*event_types: type) -> Callable[[F], F]:
    """
    Mark a method of an `Aggregate` as the handler of *event_types*.

    The method takes the event and changes the aggregate's state; it must not
    fail for an event that was valid when recorded, since replays call it for
    every stored event.

    Example:
        >>> @attrs.define
        ... class Counter(Aggregate):
        ...     count: int = 0
        ...
        ...     @applies(int)
        ...     def _added(self, amount: int) -> None:
        ...         self.count += amount
        >>> counter = Counter(id="c-1")
        >>> counter.raise_event(5)
        >>> counter.count, counter.pending_events
        (5, (5,))
    """

    def mark(method: F) -> F:
        setattr(method, _MARKER, (*getattr(method, _MARKER, ()), *event_types))
        return method

    return mark


def _handlers(cls: type) -> dict[type, _Handler]:
    table = _handler_tables.get(cls)
    if table is None:
        table = {}
        for klass in reversed(cls.__mro__):
            for name, member in vars(klass).items():
                for event_type in getattr(member, _MARKER, ()):
                    # By name, from the class itself: a subclass that
                    # overrides the method (decorated again or not) is heard.
                    table[event_type] = getattr(cls, name)
        _handler_tables[cls] = table
    return table


@attrs.define(kw_only=True)
class Aggregate:
    """
    A base for aggregates: identity, persisted version, and unsaved events.

    Subclasses are attrs classes (``@attrs.define``) whose fields are the
    state. Every field is part of the snapshot except the pending events,
    which are marked transient. Register the subclass with the serializer
    under a snapshot type name when its repository takes snapshots.

    Attributes:
        id: The aggregate id; its stream is ``f"{stream_prefix}-{id}"``.
        version: The stream version this state was loaded at or last saved
            at; pending events are not counted until saved.

    Example:
        >>> @attrs.define
        ... class Ticket(Aggregate):
        ...     open: bool = False
        ...
        ...     def open_ticket(self) -> None:
        ...         self.raise_event("opened")
        ...
        ...     @applies(str)
        ...     def _on_text(self, event: str) -> None:
        ...         self.open = event == "opened"
        >>> ticket = Ticket(id="t-1")
        >>> ticket.open_ticket()
        >>> ticket.open, ticket.version, len(ticket.pending_events)
        (True, 0, 1)
    """

    id: str
    version: int = 0
    # Each pending event with its id, drawn when it is raised: every save of
    # this object sends the same ids, so one whose reply was lost, saved
    # again, is recognised by the store as a retry. (One field, as before:
    # a new one would change every schema lock of an aggregate's snapshot.)
    _pending: list[tuple[Any, uuid.UUID]] = attrs.field(
        init=False, factory=list, eq=False, repr=False, metadata={TRANSIENT: True}
    )

    @classmethod
    def blank(cls, aggregate_id: str) -> Self:
        """
        Return an instance with no history, ready to have events applied.

        The repository calls this before replaying a stream. Override it when
        the subclass has fields without defaults.
        """
        return cls(id=aggregate_id)

    @property
    def pending_events(self) -> tuple[Any, ...]:
        """The events recorded since the last load or save, oldest first."""
        return tuple(event for event, _ in self._pending)

    @property
    def pending_event_ids(self) -> tuple[uuid.UUID, ...]:
        """The ids the pending events are stored under, one each, drawn when they were raised."""
        return tuple(event_id for _, event_id in self._pending)

    def raise_event(self, event: object) -> None:
        """
        Apply *event* to the state and keep it to be saved.

        Call this from command methods, after checking the command is valid:
        an event is a fact, and applying it must not fail.

        Raises:
            UnhandledEventError: No handler is declared for the event's type.
        """
        self.apply(event)
        self._pending.append((event, new_event_id()))

    def apply(self, event: object) -> None:
        """
        Change the state by *event*, through the handler declared with `applies`.

        A handler for a base class of the event's type also matches.

        Raises:
            UnhandledEventError: No handler is declared for the event's type.
        """
        table = _handlers(type(self))
        for event_type in type(event).__mro__:
            handler = table.get(event_type)
            if handler is not None:
                handler(self, event)
                return
        raise UnhandledEventError(type(self).__name__, type(event).__name__)

    def mark_saved(self, version: int) -> None:
        """
        Record that the stream is stored up to *version*, and its pending events with it.

        Only the events that version covers stop being pending, the oldest
        ones: an event raised while the save was under way (by another task
        or thread) was not in it, and stays pending for the next save.
        """
        stored = max(version - self.version, 0)
        self.version = version
        del self._pending[:stored]
