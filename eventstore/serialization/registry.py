"""The type registry: stable type names, schema versions, encode and decode."""

from __future__ import annotations

import copy
import threading
import uuid
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import attrs

from eventstore._ids import new_event_id
from eventstore._validation import MAX_SCHEMA_VERSION, check_int, check_name
from eventstore.errors import (
    FutureSchemaVersionError,
    InvalidArgumentError,
    RegistrationError,
    SerializationError,
    UnknownTypeError,
)
from eventstore.events import NewEvent, RecordedEvent
from eventstore.serialization._converter import Codec, Structure, Unstructure
from eventstore.serialization._diagnose import decode_problem, encode_problem
from eventstore.serialization._shapes import describe_registry
from eventstore.serialization._types import AttrsNode, analyze_class
from eventstore.serialization.upcasting import Plan, Upcaster, UpcasterFn, build_plans
from eventstore.snapshots import Snapshot

__all__ = ["Payload", "Registry"]

_TOO_DEEP = "nested deeper than Python's recursion limit, or holding itself"


T = TypeVar("T", bound=type)
F = TypeVar("F", bound=UpcasterFn)


@attrs.frozen
class Payload:
    """
    An encoded object: its type name, schema version and JSON-able data.

    Attributes:
        type: The registered type name.
        schema_version: The current schema version of the type.
        data: A JSON object (str keys, JSON values only).

    """

    type: str
    schema_version: int
    data: dict[str, Any]


@attrs.frozen(eq=False)
class _Entry:
    name: str
    cls: type
    version: int
    node: AttrsNode
    unstructure: Unstructure
    structure: Structure


def _check_name(name: object, what: str) -> str:
    # The store's own check, so that no registered name is refused at append.
    try:
        checked = check_name(name, what)
    except InvalidArgumentError as exc:
        raise RegistrationError(f"{exc}; the store would refuse it") from None
    if not checked.strip():
        raise RegistrationError(f"{what} must not be blank, not {name!r}")
    return checked


def _check_version(
    version: object, what: str, *, maximum: int = MAX_SCHEMA_VERSION
) -> int:
    # The store's bounds: a schema version is a PostgreSQL integer.
    try:
        return check_int(version, what, minimum=1, maximum=maximum)
    except InvalidArgumentError as exc:
        raise RegistrationError(str(exc)) from None


class Registry:
    """
    Map stable type names to attrs classes with schema versions; encode and decode them.

    Register events and aggregate snapshot types with `register` (a
    decorator) or `add`, and upcasters for older payloads with `upcaster`.
    The registry validates its upcaster chains on the first encode or decode
    (or an explicit `validate`), so a gap is found before any read.

    Example:
        >>> import attrs
        >>> registry = Registry()
        >>> @registry.register("greeting.sent", version=1)
        ... @attrs.frozen
        ... class GreetingSent:
        ...     text: str
        >>> payload = registry.encode(GreetingSent("hi"))
        >>> registry.decode(payload.type, payload.schema_version, payload.data)
        GreetingSent(text='hi')

    """

    def __init__(self) -> None:
        self._codec = Codec()
        self._nodes: dict[type, AttrsNode] = {}
        self._by_name: dict[str, _Entry] = {}
        self._by_class: dict[type, _Entry] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self._plans: dict[tuple[str, int], Plan] = {}
        # Filled by validate(): the hot paths read only these.
        self._current: dict[str, _Entry] = {}
        self._encoders: dict[type, _Entry] = {}
        self._valid = False
        self._lock = threading.RLock()

    # -- registration ---------------------------------------------------------

    def register(self, type_name: str, *, version: int = 1) -> Callable[[T], T]:
        """
        Register the decorated attrs class under *type_name* at schema *version*.

        Raises:
            RegistrationError: The name or class is already registered, the
                class is not an attrs class, or a field's type is unsupported.

        """

        def decorate(cls: T) -> T:
            plain = isinstance(cls, type) and not attrs.has(cls)
            if plain:
                # Most often @attrs.frozen written above @register: the
                # decorator below runs first and sees the plain class.
                raise RegistrationError(
                    f"{getattr(cls, '__qualname__', cls)} is not an attrs class: "
                    "decorate it with "
                    "@attrs.frozen (or @attrs.define), written below "
                    f"@register({type_name!r}) so that register sees the attrs class"
                )
            self.add(cls, type_name, version=version)
            return cls

        return decorate

    def add(self, cls: type, type_name: str, *, version: int = 1) -> None:
        """
        Register attrs class *cls* under *type_name* at schema *version*.

        Nested attrs classes used by its fields need no registration.

        Raises:
            RegistrationError: As for `register`.

        """
        _check_name(type_name, "a type name")
        _check_version(version, f"the schema version of {type_name!r}")
        with self._lock:
            if type_name in self._by_name:
                raise RegistrationError(
                    f"type name {type_name!r} is already registered for "
                    f"{self._by_name[type_name].cls.__qualname__}"
                )
            if cls in self._by_class:
                raise RegistrationError(
                    f"{getattr(cls, '__qualname__', cls)} is already registered as "
                    f"{self._by_class[cls].name!r}"
                )
            node = analyze_class(cls, self._nodes)
            entry = _Entry(
                name=type_name,
                cls=cls,
                version=version,
                node=node,
                unstructure=self._codec.unstructure_fn(node),
                structure=self._codec.structure_fn(node),
            )
            self._by_name[type_name] = entry
            self._by_class[cls] = entry
            self._invalidate()

    def upcaster(
        self,
        type_name: str,
        *,
        from_version: int,
        rename_to: str | None = None,
        to_version: int | None = None,
    ) -> Callable[[F], F]:
        """
        Register the decorated function as the upcaster of *type_name* payloads at *from_version*.

        The function takes the payload's data (a dict, which it may change)
        and returns the data of the next version: *from_version* + 1 of the
        same type, or, with *rename_to*, the data of type *rename_to* at
        *to_version* (default: *from_version*). A renaming upcaster reads the
        last version of a name that is no longer registered; stored payloads
        under the old name then decode as the new type.

        Raises:
            RegistrationError: An upcaster for this name and version exists,
                or the arguments are inconsistent. Chains are checked as a
                whole by `validate`.

        """
        _check_name(type_name, "an upcaster's type name")
        # It leads to from_version + 1, which must be a schema version too.
        _check_version(from_version, "from_version", maximum=MAX_SCHEMA_VERSION - 1)
        if rename_to is None:
            if to_version is not None and to_version != from_version + 1:
                raise RegistrationError(
                    f"an upcaster of {type_name!r} from version {from_version} leads "
                    f"to version {from_version + 1}; to_version is only for renames"
                )
            target, target_version = type_name, from_version + 1
        else:
            target = _check_name(rename_to, "rename_to")
            if target == type_name:
                raise RegistrationError(f"rename_to repeats the name {type_name!r}")
            target_version = _check_version(
                from_version if to_version is None else to_version, "to_version"
            )

        def decorate(fn: F) -> F:
            if not callable(fn):
                raise RegistrationError(f"an upcaster must be callable, not {fn!r}")
            with self._lock:
                key = (type_name, from_version)
                if key in self._upcasters:
                    raise RegistrationError(
                        f"{type_name!r} already has an upcaster from version "
                        f"{from_version}: {self._upcasters[key].describe()}"
                    )
                self._upcasters[key] = Upcaster(
                    type_name, from_version, target, target_version, fn
                )
                self._invalidate()
            return fn

        return decorate

    def validate(self) -> None:
        """
        Check every upcaster chain and freeze the lookup tables.

        Called by the first encode or decode; call it yourself at start-up
        to fail even earlier. Registering more afterwards is allowed and
        validates again on next use.

        Raises:
            RegistrationError: A chain has a gap, a cycle, or leads nowhere.

        """
        with self._lock:
            if self._valid:
                return
            current = {name: entry.version for name, entry in self._by_name.items()}
            self._plans = build_plans(current, self._upcasters)
            self._current = dict(self._by_name)
            self._encoders = dict(self._by_class)
            self._valid = True

    def _invalidate(self) -> None:
        self._valid = False
        self._current = {}
        self._encoders = {}

    # -- lookups --------------------------------------------------------------

    def type_name_of(self, cls_or_obj: object) -> str:
        """
        Return the registered type name of a class or of an instance.

        Raises:
            SerializationError: The class is not registered.

        """
        cls = cls_or_obj if isinstance(cls_or_obj, type) else type(cls_or_obj)
        entry = self._by_class.get(cls)
        if entry is None:
            raise self._unregistered(cls)
        return entry.name

    def schema_version_of(self, type_name: str) -> int:
        """
        Return the current schema version of *type_name*.

        Raises:
            UnknownTypeError: The name is not registered.

        """
        entry = self._by_name.get(type_name)
        if entry is None:
            raise UnknownTypeError(type_name)
        return entry.version

    def types(self) -> dict[str, type]:
        """Return the registered type names and their classes."""
        return {name: entry.cls for name, entry in self._by_name.items()}

    def upcasters(self) -> dict[tuple[str, int], Upcaster]:
        """Return the registered upcasters by (type name, from version)."""
        return dict(self._upcasters)

    def old_versions(self) -> list[tuple[str, int]]:
        """
        Return every (type name, version) that upcasters read.

        Raises:
            RegistrationError: The upcaster chains are broken.

        """
        self.validate()
        return [key for key, plan in self._plans.items() if plan.steps]

    def _node_of(self, cls: type) -> AttrsNode:
        """Return the analysed field tree of a registered (or nested) class."""
        node = self._nodes.get(cls)
        if node is None:
            raise self._unregistered(cls)
        return node

    def describe(self) -> dict[str, Any]:
        """
        Describe the shape of every registered type as JSON-able data, for the schema lock.

        Returns:
            ``{"types": {name: {"schema_version", "fields", "nested",
            "enums"}}, "upcasters": {name: [from versions]}, "renames":
            {old name: {"from_version", "to", "to_version"}}}``.

        """
        return describe_registry(
            {
                name: (entry.version, entry.node)
                for name, entry in self._by_name.items()
            },
            self._upcasters.values(),
        )

    # -- encode / decode ------------------------------------------------------

    def encode(self, obj: object) -> Payload:
        """
        Encode a registered object into its type name, schema version and JSON data.

        Raises:
            SerializationError: The object's class is not registered, or a
                value cannot be stored (naive datetime, NaN or infinity, a
                value of the wrong type); the message names the field.
            RegistrationError: The upcaster chains are broken.

        """
        entry = self._encoders.get(obj.__class__)
        if entry is None:
            self.validate()
            entry = self._encoders.get(obj.__class__)
            if entry is None:
                raise self._unregistered(obj.__class__)
        try:
            data = entry.unstructure(obj)
        except Exception as exc:
            try:
                problem = encode_problem(
                    entry.node, obj, entry.cls.__qualname__
                ) or str(exc)
            except RecursionError:  # the diagnosis walks as deep as the encoder
                problem = _TOO_DEEP
            raise SerializationError(
                f"cannot encode {entry.name!r} v{entry.version}: {problem}"
            ) from exc
        return Payload(entry.name, entry.version, data)

    def decode(
        self, type_name: str, schema_version: int, data: Mapping[str, Any]
    ) -> Any:
        """
        Decode a stored payload into an object of the current schema.

        Upcasters run first when *schema_version* is older than the current
        one (on a copy: *data* is never changed). Fields missing from the
        payload take their attrs defaults.

        Raises:
            UnknownTypeError: No type or upcaster knows *type_name*.
            FutureSchemaVersionError: *schema_version* is newer than the code.
            SerializationError: The data does not fit the class (a missing
                field without a default, a value of the wrong type, an
                unexpected field); the message names type, version and field.
            RegistrationError: The upcaster chains are broken.

        """
        entry = self._current.get(type_name)
        if entry is not None and schema_version == entry.version:
            try:
                return entry.structure(data, entry.cls)
            except Exception as exc:
                raise self._decode_error(
                    entry, type_name, schema_version, data, exc
                ) from exc
        return self._decode_slow(type_name, schema_version, data)

    def _decode_slow(
        self, type_name: str, schema_version: int, data: Mapping[str, Any]
    ) -> Any:
        self.validate()
        if schema_version.__class__ is not int:
            raise SerializationError(
                f"schema version of {type_name!r} must be an int, not {schema_version!r}"
            )
        plan = self._plans.get((type_name, schema_version))
        if plan is None:
            known = [version for name, version in self._plans if name == type_name]
            if not known:
                raise UnknownTypeError(type_name)
            if schema_version > max(known):
                raise FutureSchemaVersionError(type_name, schema_version, max(known))
            raise SerializationError(
                f"{type_name!r} has no schema version {schema_version}"
            )
        try:
            current: Any = copy.deepcopy(dict(data))
        except RecursionError as exc:
            raise SerializationError(
                f"cannot decode {type_name!r} v{schema_version}: {_TOO_DEEP}"
            ) from exc
        for step in plan.steps:
            try:
                current = step.fn(current)
            except Exception as exc:
                raise SerializationError(
                    f"upcaster {step.describe()} failed on a {type_name!r} "
                    f"v{schema_version} payload: {exc!r}"
                ) from exc
            if not isinstance(current, dict):
                raise SerializationError(
                    f"upcaster {step.describe()} returned {type(current).__name__}, "
                    "not a dict"
                )
        entry = self._current[plan.target]
        try:
            return entry.structure(current, entry.cls)
        except Exception as exc:
            raise self._decode_error(
                entry, type_name, schema_version, current, exc
            ) from exc

    def _decode_error(
        self,
        entry: _Entry,
        type_name: str,
        schema_version: int,
        data: object,
        exc: Exception,
    ) -> SerializationError:
        try:
            problem = decode_problem(entry.node, data, entry.cls.__qualname__)
        except RecursionError:  # the diagnosis walks as deep as the decoder
            problem = _TOO_DEEP
        if problem is None:  # e.g. an attrs validator refused a value
            problem = f"{entry.cls.__qualname__}: {_reason(exc)}"
        upcast = (
            f" (upcast to {entry.name!r} v{entry.version})"
            if (type_name, schema_version) != (entry.name, entry.version)
            else ""
        )
        return SerializationError(
            f"cannot decode {type_name!r} v{schema_version}{upcast}: {problem}"
        )

    def _unregistered(self, cls: type) -> SerializationError:
        return SerializationError(
            f"{cls.__module__}.{cls.__qualname__} is not registered: register it "
            "with @registry.register('type.name', version=1)"
        )

    # -- store records --------------------------------------------------------

    def to_new_event(
        self,
        obj: object,
        *,
        metadata: Mapping[str, Any] | None = None,
        event_id: uuid.UUID | None = None,
    ) -> NewEvent:
        """Encode *obj* as a `NewEvent` ready to append."""
        payload = self.encode(obj)
        if event_id is None:
            event_id = new_event_id()
        return NewEvent(
            type=payload.type,
            data=payload.data,
            metadata={} if metadata is None else metadata,
            event_id=event_id,
            schema_version=payload.schema_version,
        )

    def from_recorded(self, event: RecordedEvent) -> Any:
        """
        Decode a stored event (upcasting it when old).

        Raises:
            UnknownTypeError: The event's type is not registered; the error
                names the event's stream and version.
            SerializationError: As for `decode`, its message naming the
                event's stream and version.

        """
        try:
            return self.decode(event.type, event.schema_version, event.data)
        except UnknownTypeError as exc:
            raise UnknownTypeError(
                exc.type_name, event.stream_id, event.version
            ) from None
        except SerializationError as exc:
            if type(exc) is not SerializationError:
                raise  # a subclass keeps its own attributes and message
            raise SerializationError(
                f"{exc} (stream {event.stream_id!r}, version {event.version})"
            ) from exc

    def to_snapshot(self, stream_id: str, version: int, state: object) -> Snapshot:
        """Encode aggregate *state* as the `Snapshot` of *stream_id* at *version*."""
        payload = self.encode(state)
        return Snapshot(
            stream_id=stream_id,
            version=version,
            type=payload.type,
            schema_version=payload.schema_version,
            state=payload.data,
        )

    def from_snapshot(self, snapshot: Snapshot) -> Any:
        """
        Decode a snapshot's state (upcasting it when old).

        Raises:
            FutureSchemaVersionError: Written by newer code; rebuild from the
                events instead.

        """
        return self.decode(snapshot.type, snapshot.schema_version, snapshot.state)


def _reason(exc: BaseException) -> str:
    """Return what *exc* says; for a group (cattrs' detailed errors), what its members say."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_reason(member) for member in exc.exceptions)
    return str(exc)
