"""
Argument checks and JSON encoding that every backend shares.

Pure functions: they look at arguments, never at a store. `EventStore` runs
them before it calls a backend, so every backend refuses the same input with
the same error, before anything is written, and receives events already
encoded to JSON text (which both backends store).
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from eventstore.errors import (
    ConfigError,
    DuplicateEventError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    _describe,
)
from eventstore.events import AppendRequest, ExpectedVersion, LogPosition, NewEvent
from eventstore.snapshots import Snapshot

MAX_NAME_LENGTH = 255
"""Longest stream id or type name, in characters."""

MAX_JSON_DEPTH = 256
"""Most levels of objects and arrays in an event's data, metadata or a snapshot's state."""

MAX_JSON_BYTES = 268_435_455
"""Longest JSON text of one value, in UTF-8 bytes: PostgreSQL's jsonb limit (256 MiB - 1)."""

MAX_JSON_ITEMS = 8_388_608
"""
Most items in one JSON array, or members in one object: 2**23.

PostgreSQL's jsonb parser holds a container's items in one allocation, and
allocations stop at 1 GiB: an object of more than 2**23 members (an array
of more than 2**24 items) fails there with an internal error, however
short its text. One limit for both, on every backend.
"""

MAX_APPEND_BYTES = 1_000_000_000
"""
Most bytes one append of several events may carry: their data, metadata and types.

PostgreSQL closes a connection that sends a message of 1 GiB or more, and
an append is one statement, sent as one message: the rest of the 1 GiB
leaves room for the ids, the other columns and the framing.
"""

MAX_SECONDS = threading.TIMEOUT_MAX
"""Longest wait the platform's locks and events take (about 292 years)."""


def _not_json(value: object) -> object:
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


_ENCODER = json.JSONEncoder(
    ensure_ascii=False,  # keeps lone surrogates raw, so the UTF-8 check finds them
    allow_nan=False,
    separators=(",", ":"),
    default=_not_json,
)
# JSONEncoder.encode builds a new C encoder on every call; building it once
# halves the cost of encoding a small event. Same settings as _ENCODER; no
# cycle markers (_check_keys refuses a cycle first, as nesting too deep).
_c_make_encoder = getattr(json.encoder, "c_make_encoder", None)
_C_ENCODE = (
    None
    if _c_make_encoder is None
    else _c_make_encoder(
        None,
        _not_json,
        json.encoder.encode_basestring,
        None,
        ":",
        ",",
        False,
        False,
        False,
    )
)


def _to_json(obj: dict[str, Any]) -> str:
    if _C_ENCODE is None:  # pragma: no cover - CPython always has the C encoder
        return _ENCODER.encode(obj)
    return "".join(_C_ENCODE(obj, 0))


_SCALARS = frozenset({str, int, float, bool, type(None)})
# An escaped NUL preceded by an even number of backslashes (a literal
# backslash followed by "u0000" is fine).
_ESCAPED_NUL = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


# The Encoded* records are NamedTuples, not attrs classes: two are built on
# every append, and a NamedTuple is three times cheaper to build.


class EncodedEvent(NamedTuple):
    """A validated `NewEvent` with its data and metadata as JSON text."""

    event_id: uuid.UUID
    type: str
    schema_version: int
    data: str
    metadata: str


class EncodedAppend(NamedTuple):
    """A validated append for one stream."""

    stream_id: str
    expected_version: int | ExpectedVersion
    events: tuple[EncodedEvent, ...]


class EncodedSnapshot(NamedTuple):
    """A validated `Snapshot` with its state as JSON text."""

    stream_id: str
    version: int
    type: str
    schema_version: int
    state: str


def check_name(value: object, what: str) -> str:
    """
    Return *value* if it is a usable stream id or type name.

    Raises:
        InvalidArgumentTypeError: Not a str.
        InvalidArgumentError: Empty, longer than 255 characters, or holding a
            NUL character or a lone surrogate (PostgreSQL text cannot hold
            either, so neither backend accepts them).
    """
    if (
        type(value) is str
        and 0 < len(value) <= MAX_NAME_LENGTH
        and value.isascii()
        and "\x00" not in value
    ):
        return value  # the common case, decided in one test
    if not isinstance(value, str):
        raise InvalidArgumentTypeError(f"{what} must be a str, got {_describe(value)}")
    if not value:
        raise InvalidArgumentError(f"{what} must not be empty")
    if len(value) > MAX_NAME_LENGTH:
        raise InvalidArgumentError(
            f"{what} is {len(value)} characters long; at most {MAX_NAME_LENGTH} "
            f"are allowed: {_describe(value)}"
        )
    if "\x00" in value:
        raise InvalidArgumentError(f"{what} contains a NUL character: {value!r}")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidArgumentError(
                f"{what} contains a lone surrogate: {_describe(value)}"
            ) from None
    return value


def check_stream_id(stream_id: object) -> str:
    """Return *stream_id* if valid; see `check_name`."""
    return check_name(stream_id, "stream id")


MAX_BIGINT = 2**63 - 1
"""Largest version, position or limit: what PostgreSQL's bigint holds."""

MAX_SCHEMA_VERSION = 2**31 - 1
"""Largest schema version: what PostgreSQL's integer holds."""


def check_int(
    value: object, what: str, *, minimum: int, maximum: int = MAX_BIGINT
) -> int:
    """
    Return *value* if it is an int (not a bool) between *minimum* and *maximum*.

    The default *maximum* is the bigint range, so both backends accept the
    same numbers.

    Raises:
        InvalidArgumentTypeError: Not an int, or a bool.
        InvalidArgumentError: Out of range.
    """
    if type(value) is not int and (
        not isinstance(value, int) or isinstance(value, bool)
    ):
        raise InvalidArgumentTypeError(f"{what} must be an int, got {_describe(value)}")
    if value < minimum:
        raise InvalidArgumentError(f"{what} must be at least {minimum}, got {value}")
    if value > maximum:
        raise InvalidArgumentError(f"{what} must be at most {maximum}, got {value}")
    return value


def check_optional_int(value: object, what: str, *, minimum: int) -> int | None:
    """Return *value* if it is ``None`` or passes `check_int`."""
    return None if value is None else check_int(value, what, minimum=minimum)


def check_expected_version(value: object) -> int | ExpectedVersion:
    """
    Return *value* if it is an expected version: an int >= 0 or an `ExpectedVersion`.

    Raises:
        InvalidArgumentTypeError: ``None``, a bool, or another type.
        InvalidArgumentError: A negative int.
    """
    if isinstance(value, ExpectedVersion):
        return value
    if value is None:
        raise InvalidArgumentTypeError(
            "expected version must not be None: pass ExpectedVersion.ANY to skip the check"
        )
    return check_int(value, "expected version", minimum=0)


def check_log_position(value: object, what: str = "after") -> LogPosition | None:
    """
    Return *value*, the argument named *what*, if it is ``None`` or a `LogPosition`.

    Raises:
        InvalidArgumentTypeError: Anything else (parse text with
            `LogPosition.parse`), or a position whose fields are not ints.
        InvalidArgumentError: A negative field.
    """
    if value is None:
        return value
    if isinstance(value, LogPosition):
        check_int(value.transaction_id, "log position transaction id", minimum=0)
        check_int(value.position, "log position", minimum=0)
        return value
    raise InvalidArgumentTypeError(
        f"{what} must be a LogPosition or None, got {_describe(value)}; "
        "use LogPosition.parse() for a stored checkpoint"
    )


def encode_json_object(value: object, what: str) -> str:
    """
    Encode *value*, a JSON object, to compact JSON text.

    Both backends store this text, so both accept and return the same values.

    Raises:
        InvalidArgumentTypeError: Not a mapping, a non-str key anywhere, or a
            value JSON cannot hold (a set, bytes, an object).
        InvalidArgumentError: NaN or an infinity, a NUL character, a lone
            surrogate, nesting deeper than `MAX_JSON_DEPTH` levels (a
            reference cycle too), or more than `MAX_JSON_BYTES` of JSON.
    """
    if type(value) is dict:
        if not value:
            return "{}"
        obj: dict[str, Any] = value
    elif isinstance(value, Mapping):
        obj = dict(value)
    else:
        raise InvalidArgumentTypeError(
            f"{what} must be a mapping (a JSON object), got {_describe(value)}"
        )
    _check_keys(obj, what, 1)
    try:
        text = _to_json(obj)
    except TypeError as exc:
        raise InvalidArgumentTypeError(f"{what} is not JSON: {exc}") from exc
    except (ValueError, RecursionError) as exc:
        raise InvalidArgumentError(f"{what} is not JSON: {exc}") from exc
    if "\\u0000" in text and _ESCAPED_NUL.search(text):
        raise InvalidArgumentError(f"{what} contains a NUL character")
    if text.isascii():
        size = len(text)
    else:
        try:
            size = len(text.encode("utf-8"))
        except UnicodeEncodeError as exc:
            raise InvalidArgumentError(f"{what} contains a lone surrogate") from exc
    if size > MAX_JSON_BYTES:
        # Both backends refuse it: PostgreSQL's jsonb cannot hold it.
        raise InvalidArgumentError(
            f"{what} is {size:,} bytes of JSON; at most {MAX_JSON_BYTES:,} "
            "(PostgreSQL's jsonb limit) can be stored"
        )
    return text


def _check_keys(value: Any, what: str, depth: int) -> None:
    # json.dumps silently turns int, float, bool and None keys into strings,
    # which would come back as other keys than went in: refuse them instead.
    # And a fixed depth limit (which also ends a reference cycle): nesting
    # allowed up to Python's recursion limit from the caller's stack could
    # be stored, then fail every reader deeper in a stack with RecursionError.
    if depth > MAX_JSON_DEPTH:
        raise InvalidArgumentError(
            f"{what} nests objects and arrays more than {MAX_JSON_DEPTH} levels "
            "deep (or holds a reference cycle)"
        )
    if isinstance(value, dict):
        if len(value) > MAX_JSON_ITEMS:
            raise _too_many_items(what, "an object of", len(value), "members")
        for key, item in value.items():
            if type(key) is not str and not isinstance(key, str):
                raise InvalidArgumentTypeError(
                    f"{what} has a non-str key {_describe(key)}; JSON keys are strings"
                )
            if type(item) not in _SCALARS:
                _check_keys(item, what, depth + 1)
    elif isinstance(value, list | tuple):
        if len(value) > MAX_JSON_ITEMS:
            raise _too_many_items(what, "an array of", len(value), "items")
        for item in value:
            if type(item) not in _SCALARS:
                _check_keys(item, what, depth + 1)


def _too_many_items(
    what: str, kind: str, count: int, items: str
) -> InvalidArgumentError:
    return InvalidArgumentError(
        f"{what} holds {kind} {count:,} {items}; at most {MAX_JSON_ITEMS:,} "
        "(what PostgreSQL's jsonb can parse) can be stored"
    )


def encode_event(event: object) -> EncodedEvent:
    """
    Validate one `NewEvent` and encode its data and metadata.

    Raises:
        InvalidArgumentTypeError, InvalidArgumentError: As the checks above.
    """
    if not isinstance(event, NewEvent):
        raise InvalidArgumentTypeError(
            f"events must be NewEvent objects, got {_describe(event)}"
        )
    if not isinstance(event.event_id, uuid.UUID):
        raise InvalidArgumentTypeError(
            f"event id must be a UUID, got {_describe(event.event_id)}"
        )
    return EncodedEvent(
        event_id=event.event_id,
        type=check_name(event.type, "event type"),
        schema_version=check_int(
            event.schema_version,
            "schema version",
            minimum=1,
            maximum=MAX_SCHEMA_VERSION,
        ),
        data=encode_json_object(event.data, "event data"),
        metadata=encode_json_object(event.metadata, "event metadata"),
    )


def encode_append(
    stream_id: object, events: object, expected_version: object
) -> EncodedAppend:
    """
    Validate an append and encode its events.

    Raises:
        InvalidArgumentError: A bad stream id or expected version, no events,
            or a bad event.
        DuplicateEventError: The batch holds one event id twice.
    """
    checked_stream_id = check_stream_id(stream_id)
    checked_expected = check_expected_version(expected_version)
    if type(events) is not list and (
        isinstance(events, NewEvent | str | bytes | Mapping)
        or not isinstance(events, Iterable)
    ):
        raise InvalidArgumentTypeError(
            f"events must be a sequence of NewEvent, got {_describe(events)}"
        )
    encoded = tuple(encode_event(event) for event in events)
    if not encoded:
        raise InvalidArgumentError(
            f"append to stream {checked_stream_id!r} has no events"
        )
    if len(encoded) > 1:
        _refuse_repeated_ids(checked_stream_id, (event.event_id for event in encoded))
        # One event is always small enough: two values of MAX_JSON_BYTES.
        _refuse_oversized(checked_stream_id, encoded)
    return EncodedAppend(checked_stream_id, checked_expected, encoded)


def encode_requests(requests: object) -> tuple[EncodedAppend, ...]:
    """
    Validate the requests of an atomic multi-stream append.

    Raises:
        InvalidArgumentError: No requests, a stream named twice, or a bad request.
        DuplicateEventError: One event id appears twice within one request.
    """
    if isinstance(requests, AppendRequest) or not isinstance(requests, Iterable):
        raise InvalidArgumentTypeError(
            f"requests must be a sequence of AppendRequest, got {_describe(requests)}"
        )
    encoded: list[EncodedAppend] = []
    for request in requests:
        if not isinstance(request, AppendRequest):
            raise InvalidArgumentTypeError(
                f"requests must be AppendRequest objects, got {_describe(request)}"
            )
        encoded.append(
            encode_append(request.stream_id, request.events, request.expected_version)
        )
    if not encoded:
        raise InvalidArgumentError("append_many needs at least one request")
    stream_ids = [append.stream_id for append in encoded]
    if len(set(stream_ids)) != len(stream_ids):
        raise InvalidArgumentError(
            "append_many names a stream more than once; put its events in one request"
        )
    # Ids are unique per stream: each request's own were checked above, and
    # the same id in two of them is two events.
    return tuple(encoded)


def _refuse_repeated_ids(stream_id: str, event_ids: Iterable[uuid.UUID]) -> None:
    seen: set[uuid.UUID] = set()
    repeated: list[uuid.UUID] = []
    for event_id in event_ids:
        if event_id in seen:
            repeated.append(event_id)
        seen.add(event_id)
    if repeated:
        raise DuplicateEventError(stream_id, repeated)


_EVENT_FRAMING = 64
"""Bytes an event adds to an append's message beyond its data, metadata and type: its id, schema version, lengths."""


def _refuse_oversized(stream_id: str, events: tuple[EncodedEvent, ...]) -> None:
    # A character is at most 4 bytes of UTF-8: most batches pass this bound
    # without encoding anything.
    chars = sum(len(e.data) + len(e.metadata) + len(e.type) for e in events)
    if 4 * chars + _EVENT_FRAMING * len(events) <= MAX_APPEND_BYTES:
        return
    size = sum(
        _utf8_bytes(e.data) + _utf8_bytes(e.metadata) + _utf8_bytes(e.type)
        for e in events
    )
    size += _EVENT_FRAMING * len(events)
    if size > MAX_APPEND_BYTES:
        raise InvalidArgumentError(
            f"append to stream {stream_id!r} carries {size:,} bytes in "
            f"{len(events):,} events; at most {MAX_APPEND_BYTES:,} fit in one "
            "append (PostgreSQL takes no message of 1 GiB): split it into "
            "several appends"
        )


def _utf8_bytes(text: str) -> int:
    # Validated text: no lone surrogates, so it encodes.
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def encode_snapshot(snapshot: object) -> EncodedSnapshot:
    """
    Validate a `Snapshot` and encode its state.

    Raises:
        InvalidArgumentTypeError, InvalidArgumentError: As the checks above.
    """
    if not isinstance(snapshot, Snapshot):
        raise InvalidArgumentTypeError(
            f"expected a Snapshot, got {_describe(snapshot)}"
        )
    return EncodedSnapshot(
        stream_id=check_stream_id(snapshot.stream_id),
        version=check_int(snapshot.version, "snapshot version", minimum=1),
        type=check_name(snapshot.type, "snapshot type"),
        schema_version=check_int(
            snapshot.schema_version,
            "schema version",
            minimum=1,
            maximum=MAX_SCHEMA_VERSION,
        ),
        state=encode_json_object(snapshot.state, "snapshot state"),
    )


def check_seconds(
    value: object,
    what: str,
    *,
    error: type[Exception] = ConfigError,
    zero: bool = False,
) -> float:
    """Return *value* as a positive (or, with *zero*, also 0) number of seconds up to `MAX_SECONDS`, or raise *error*."""
    if (
        not isinstance(value, int | float)
        or isinstance(value, bool)
        or not 0 <= value <= MAX_SECONDS
        or (value == 0 and not zero)
    ):
        kind = "a number of seconds >= 0" if zero else "a positive number of seconds"
        raise error(f"{what} must be {kind} up to {MAX_SECONDS:.0f}, got {value!r}")
    return float(value)
