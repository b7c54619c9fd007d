# Generated from contract_async.py by tools/async_to_sync.py: edit that file, not
# this one, then run `python tools/async_to_sync.py`.
"""
The executable contract of `EventStore`: one test suite for every backend.

Subclass `EventStoreContract` in a test module and give it a ``store``
fixture that yields a fresh, empty store; pytest then runs every rule of the
contract against that backend. eventstore runs it for `InMemoryEventStore` and
`PostgresEventStore`; a third-party backend passes by doing the same::

    from eventstore.testing import EventStoreContract

    class TestMyBackend(EventStoreContract):
        @pytest.fixture
        def store(self):
            with MyBackend(...) as store:
                yield store

The class name has no ``Test`` prefix, so pytest never collects it alone.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eventstore._validation import MAX_JSON_DEPTH
from eventstore.errors import (
    ConcurrencyError,
    DuplicateEventError,
    EventStoreError,
    InvalidArgumentError,
    InvalidArgumentTypeError,
    StoreClosedError,
)
from eventstore.events import (
    AppendRequest,
    AppendResult,
    ExpectedVersion,
    LogPosition,
    NewEvent,
    RecordedEvent,
)
from eventstore.health import HealthStatus
from eventstore.snapshots import Snapshot
from eventstore.store import EventStore
from eventstore.testing.concurrency import assert_one_winner_per_round
from eventstore.testing.logwait import check_store

__all__ = ["EventStoreContract", "json_objects", "read_log"]

LOG_TIMEOUT = 10.0
"""Seconds to wait for appended events to become visible in the global log."""


def read_log(
    store: EventStore,
    count: int,
    *,
    after: LogPosition | None = None,
    timeout: float = LOG_TIMEOUT,
    page_size: int = 1000,
) -> list[RecordedEvent]:
    """
    Read the global log after *after* until it holds *count* events, or fail.

    On PostgreSQL an event shows up in `EventStore.read_all` a moment after
    its append returns, while any older transaction in the cluster is still
    open (autovacuum's ANALYZE is one). Tests wait for it with a deadline
    instead of assuming it is instant.

    Raises:
        AssertionError: Fewer than *count* events were visible by *timeout*,
            or more than *count* were.
        InvalidArgumentTypeError: *store* is not an `EventStore`.
    """
    check_store(store)
    deadline = time.monotonic() + timeout
    events: list[RecordedEvent] = []
    checkpoint = after
    while True:
        page = store.read_all(checkpoint, limit=page_size)
        events.extend(page)
        if page:
            checkpoint = page[-1].position
        if len(events) >= count or time.monotonic() > deadline:
            break
        if not page:
            time.sleep(0.01)
    assert len(events) == count, (
        f"expected {count} events in the log, read {len(events)}"
    )
    return events


def _event(type_: str = "thing.happened", **data: Any) -> NewEvent:
    return NewEvent(type_, data or {"n": 1})


def _json_scalars() -> st.SearchStrategy[Any]:
    # PostgreSQL text cannot hold NUL, and JSON cannot hold NaN or infinities.
    text = st.text(
        st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")
    )
    # Within +-1e15: PostgreSQL's jsonb prints larger floats without an
    # exponent or a decimal point, so they read back as (nearly) equal ints.
    floats = st.floats(min_value=-1e15, max_value=1e15, allow_nan=False)
    return st.none() | st.booleans() | st.integers() | floats | text


def json_objects() -> st.SearchStrategy[dict[str, Any]]:
    """Generate JSON objects any backend must store and return unchanged."""
    keys = st.text(
        st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
        max_size=8,
    )
    values = st.recursive(
        _json_scalars(),
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(keys, children, max_size=4)
        ),
        max_leaves=12,
    )
    return st.dictionaries(keys, values, max_size=6)


_BAD_STREAM_IDS: list[tuple[object, type[Exception]]] = [
    ("", InvalidArgumentError),
    ("x" * 256, InvalidArgumentError),
    ("a\x00b", InvalidArgumentError),
    ("lone-\ud800-surrogate", InvalidArgumentError),
    (None, InvalidArgumentTypeError),
    (42, InvalidArgumentTypeError),
    (b"bytes", InvalidArgumentTypeError),
]

_BAD_EXPECTED_VERSIONS: list[tuple[object, type[Exception]]] = [
    (-1, InvalidArgumentError),
    (2**63, InvalidArgumentError),
    (None, InvalidArgumentTypeError),
    (True, InvalidArgumentTypeError),
    (1.0, InvalidArgumentTypeError),
    ("1", InvalidArgumentTypeError),
]


def _cyclic() -> dict[str, Any]:
    """Return a mapping that holds itself, which no JSON text can."""
    data: dict[str, Any] = {}
    data["self"] = data
    return data


def _nested(depth: int) -> dict[str, Any]:
    """Return a mapping nested *depth* levels deep, past Python's recursion limit."""
    data: dict[str, Any] = {}
    for _ in range(depth):
        data = {"x": data}
    return data


_BAD_DATA: list[tuple[object, type[Exception]]] = [
    ({"x": math.nan}, InvalidArgumentError),
    ({"x": math.inf}, InvalidArgumentError),
    ({"x": [-math.inf]}, InvalidArgumentError),
    ({"x": "nul\x00inside"}, InvalidArgumentError),
    ({"nul\x00key": 1}, InvalidArgumentError),
    ({"x": "lone \udc00 surrogate"}, InvalidArgumentError),
    ({1: "int key"}, InvalidArgumentTypeError),
    ({"nested": {None: "None key"}}, InvalidArgumentTypeError),
    ({"nested": [{True: "bool key"}]}, InvalidArgumentTypeError),
    ({"x": {1, 2}}, InvalidArgumentTypeError),
    ({"x": b"bytes"}, InvalidArgumentTypeError),
    ({"x": object()}, InvalidArgumentTypeError),
    (["not", "a", "mapping"], InvalidArgumentTypeError),
    ("text", InvalidArgumentTypeError),
    (None, InvalidArgumentTypeError),
    (_cyclic(), InvalidArgumentError),
    (_nested(100_000), InvalidArgumentError),
    # One object more than the limit: the top one and 256 inside it.
    (_nested(MAX_JSON_DEPTH), InvalidArgumentError),
    ({"x": [_nested(MAX_JSON_DEPTH - 1)]}, InvalidArgumentError),
]


class EventStoreContract:
    """
    The contract suite: subclass it and override the ``store`` fixture.

    Every test gets a fresh, empty store from that fixture. Tests that read
    the global log wait for it with `read_log`, so a backend whose log lags
    its appends (PostgreSQL) passes as long as the lag ends.
    """

    @pytest.fixture
    def store(self) -> EventStore:
        """
        Give each test a fresh, empty store; subclasses must override this fixture.

        The override may be a generator fixture that closes the store
        after the test.
        """
        pytest.fail("subclass EventStoreContract and override the store fixture")

    # --- appending ---------------------------------------------------------

    def test_append_to_a_new_stream_with_expected_version_0_starts_it_at_1(
        self, store: EventStore
    ) -> None:
        result = store.append("order-1", [_event()], expected_version=0)
        assert result.stream_id == "order-1"
        assert result.version == 1
        assert len(result.positions) == 1
        assert store.stream_version("order-1") == 1

    def test_append_stores_every_field_of_every_event_in_order(
        self, store: EventStore
    ) -> None:
        events = [
            NewEvent(
                "order.placed",
                {"total": 12.5, "lines": [{"sku": "A", "qty": 2}], "note": None},
                metadata={"correlation_id": "c-1", "causation_id": "m-9"},
                schema_version=3,
            ),
            NewEvent("order.paid", {"amount": 12.5, "paid": True}),
            NewEvent("order.shipped", {"carrier": "ÜPS ✈ 📦"}),
        ]
        result = store.append("order-1", events, expected_version=0)
        stored = [e for e in store.read_stream("order-1")]
        assert [e.version for e in stored] == [1, 2, 3]
        assert result.version == 3
        assert tuple(e.position for e in stored) == result.positions
        for new, recorded in zip(events, stored, strict=True):
            assert recorded.stream_id == "order-1"
            assert recorded.type == new.type
            assert recorded.data == new.data
            assert recorded.metadata == new.metadata
            assert recorded.event_id == new.event_id
            assert recorded.schema_version == new.schema_version
            assert recorded.recorded_at.tzinfo is not None
            assert recorded.recorded_at.utcoffset() == UTC.utcoffset(None)

    def test_recorded_at_is_the_store_clock_in_utc(self, store: EventStore) -> None:
        before = datetime.now(UTC)
        store.append("s", [_event()])
        (recorded,) = [e for e in store.read_stream("s")]
        # Aware and at offset zero: an aware time in another zone (+02:00) is
        # the same instant and would pass the clock check below unnoticed.
        assert recorded.recorded_at.tzinfo is not None
        assert recorded.recorded_at.utcoffset() == timedelta(0)
        # The database clock may differ a little from ours; minutes would be a bug.
        assert abs((recorded.recorded_at - before).total_seconds()) < 60

    def test_new_events_get_distinct_generated_ids(self, store: EventStore) -> None:
        store.append("s", [_event(), _event()])
        ids = [event.event_id for event in store.read_stream("s")]
        assert len(set(ids)) == 2
        assert all(isinstance(event_id, uuid.UUID) for event_id in ids)

    def test_matching_int_expected_version_appends(self, store: EventStore) -> None:
        store.append("s", [_event(), _event()], expected_version=0)
        result = store.append("s", [_event()], expected_version=2)
        assert result.version == 3

    @pytest.mark.parametrize(
        ("stored", "expected"), [(2, 1), (2, 3), (2, 0), (0, 1), (0, 5)]
    )
    def test_wrong_int_expected_version_raises_with_the_actual_version(
        self, store: EventStore, stored: int, expected: int
    ) -> None:
        if stored:
            store.append("s", [_event() for _ in range(stored)])
        with pytest.raises(ConcurrencyError) as caught:
            store.append("s", [_event()], expected_version=expected)
        assert caught.value.stream_id == "s"
        assert caught.value.expected == expected
        assert caught.value.actual == stored
        assert store.stream_version("s") == stored

    def test_expected_version_any_appends_to_new_and_existing_streams(
        self, store: EventStore
    ) -> None:
        result = store.append("s", [_event()], expected_version=ExpectedVersion.ANY)
        assert result.version == 1
        result = store.append("s", [_event()], expected_version=ExpectedVersion.ANY)
        assert result.version == 2
        result = store.append("s", [_event()])
        assert result.version == 3

    def test_expected_version_exists_needs_at_least_one_event(
        self, store: EventStore
    ) -> None:
        with pytest.raises(ConcurrencyError) as caught:
            store.append("s", [_event()], expected_version=ExpectedVersion.EXISTS)
        assert caught.value.actual == 0
        assert caught.value.expected is ExpectedVersion.EXISTS
        store.append("s", [_event()])
        result = store.append("s", [_event()], expected_version=ExpectedVersion.EXISTS)
        assert result.version == 2

    def test_concurrency_error_survives_pickling(self) -> None:
        import pickle  # noqa: PLC0415 - only this test needs it

        error = ConcurrencyError("s", 3, 5)
        copy = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own object
        assert (copy.stream_id, copy.expected, copy.actual) == ("s", 3, 5)
        assert str(copy) == str(error)

    def test_refused_append_writes_nothing(self, store: EventStore) -> None:
        store.append("s", [_event()])
        with pytest.raises(ConcurrencyError):
            store.append("s", [_event(), _event()], expected_version=0)
        assert store.stream_version("s") == 1
        assert len([e for e in store.read_stream("s")]) == 1
        read_log(store, 1)

    def test_refused_appends_leave_nothing_in_the_log(self, store: EventStore) -> None:
        first = store.append("s", [_event()])
        with pytest.raises(ConcurrencyError):
            store.append("s", [_event(), _event()], expected_version=5)
        stored = _stored_id(store, "s")
        with pytest.raises(DuplicateEventError):
            store.append("s", [NewEvent("x", {}, event_id=stored), _event()])
        with pytest.raises(InvalidArgumentError):
            store.append("s", [NewEvent("x", {"bad": math.nan})])
        second = store.append("s", [_event()])
        # Nothing of the refused appends is in the log. (Positions need not be
        # dense: a backend may also leave them no gap, as both of ours do,
        # which their own tests check.)
        log = read_log(store, 2)
        assert [e.position for e in log] == [first.positions[0], second.positions[0]]
        assert second.positions[0] > first.positions[0]

    def test_append_many_is_atomic_across_streams(self, store: EventStore) -> None:
        store.append("b", [_event()])
        with pytest.raises(ConcurrencyError) as caught:
            store.append_many(
                [
                    AppendRequest("a", [_event()], expected_version=0),
                    AppendRequest("b", [_event()], expected_version=0),
                ]
            )
        assert caught.value.stream_id == "b"
        assert store.stream_version("a") == 0
        assert store.stream_version("b") == 1

    def test_append_many_stores_every_request(self, store: EventStore) -> None:
        results = store.append_many(
            [
                AppendRequest("a", [_event(), _event()], expected_version=0),
                AppendRequest("b", [_event()]),
            ]
        )
        assert [(r.stream_id, r.version) for r in results] == [("a", 2), ("b", 1)]
        log = read_log(store, 3)
        assert [e.stream_id for e in log] == ["a", "a", "b"]

    def test_append_many_refuses_a_stream_named_twice(self, store: EventStore) -> None:
        with pytest.raises(InvalidArgumentError):
            store.append_many(
                [AppendRequest("a", [_event()]), AppendRequest("a", [_event()])]
            )
        with pytest.raises(InvalidArgumentError):
            store.append_many([])
        assert store.stream_version("a") == 0

    # --- idempotency -----------------------------------------------------------

    def test_resending_a_stored_batch_returns_the_original_result(
        self, store: EventStore
    ) -> None:
        batch = [_event(), _event()]
        original = store.append("s", batch, expected_version=0)
        again = store.append("s", batch, expected_version=0)
        assert again == original
        assert store.stream_version("s") == 2
        read_log(store, 2)

    @pytest.mark.parametrize(
        ("run", "version"),
        [((0,), 1), ((1,), 2), ((0, 1), 2), ((1, 2), 3), ((0, 1, 2), 3), ((3,), 4)],
        ids=["head", "tail", "whole-first", "across", "first-and-head", "last"],
    )
    def test_a_run_of_stored_events_resent_is_a_retry_of_them(
        self, store: EventStore, run: tuple[int, ...], version: int
    ) -> None:
        # Two stored batches, [0, 1] and [2, 3]: any consecutive run of their
        # events, in order, is a retry of those events, whatever the
        # expected version says now.
        events = [_event() for _ in range(4)]
        first = store.append("s", events[:2], expected_version=0)
        second = store.append("s", events[2:], expected_version=2)
        positions = first.positions + second.positions
        again = store.append("s", [events[n] for n in run], expected_version=0)
        assert again == AppendResult("s", version, tuple(positions[n] for n in run))
        assert store.stream_version("s") == 4
        read_log(store, 4)

    def test_resending_succeeds_after_the_stream_moved_on(
        self, store: EventStore
    ) -> None:
        batch = [_event()]
        original = store.append("s", batch, expected_version=0)
        store.append("s", [_event(), _event()], expected_version=1)
        assert store.append("s", batch, expected_version=0) == original
        assert (
            store.append("s", batch, expected_version=ExpectedVersion.EXISTS)
            == original
        )
        assert store.stream_version("s") == 3

    def test_idempotency_is_checked_through_append_many(
        self, store: EventStore
    ) -> None:
        batch = [_event()]
        (original,) = store.append_many([AppendRequest("s", batch, expected_version=0)])
        results = store.append_many(
            [
                AppendRequest("s", batch, expected_version=0),
                AppendRequest("t", [_event()]),
            ]
        )
        assert results[0] == original
        assert results[1].version == 1
        assert store.stream_version("s") == 1

    def test_partial_overlap_with_a_stored_batch_is_a_duplicate(
        self, store: EventStore
    ) -> None:
        stored = _event()
        store.append("s", [stored])
        fresh = _event()
        with pytest.raises(DuplicateEventError) as caught:
            store.append("s", [stored, fresh])
        assert caught.value.event_ids == (stored.event_id,)
        assert caught.value.stream_id == "s"
        assert store.stream_version("s") == 1

    def test_the_same_event_id_in_another_stream_is_another_event(
        self, store: EventStore
    ) -> None:
        # Event ids are unique per stream (schema v2, KurrentDB's rule).
        stored = _event()
        first = store.append("s", [stored])
        other = store.append("t", [stored], expected_version=0)
        assert (other.stream_id, other.version) == ("t", 1)
        assert other.positions != first.positions
        # Each stream's own re-send is still a retry, and returns its own result.
        assert store.append("t", [stored], expected_version=0) == other
        assert store.append("s", [stored]) == first
        log = read_log(store, 2)
        assert [(e.stream_id, e.event_id) for e in log] == [
            ("s", stored.event_id),
            ("t", stored.event_id),
        ]

    def test_a_batch_stored_in_another_stream_is_no_retry_here(
        self, store: EventStore
    ) -> None:
        batch = [_event(), _event()]
        store.append("s", batch)
        result = store.append("t", batch, expected_version=0)
        assert result.version == 2
        assert [e.event_id for e in store.read_stream("t")] == [
            e.event_id for e in batch
        ]
        with pytest.raises(DuplicateEventError) as caught:
            store.append("t", [batch[0], _event()])
        assert caught.value.event_ids == (batch[0].event_id,)

    def test_one_id_in_two_streams_of_one_append_many_is_two_events(
        self, store: EventStore
    ) -> None:
        shared = _event()
        requests = [
            AppendRequest("s", [shared], expected_version=0),
            AppendRequest("t", [shared, _event()], expected_version=0),
        ]
        results = store.append_many(requests)
        assert [result.version for result in results] == [1, 2]
        log = read_log(store, 3)
        assert [(e.stream_id, e.event_id) for e in log[:2]] == [
            ("s", shared.event_id),
            ("t", shared.event_id),
        ]
        # The same call again is a retry of both, not a conflict.
        assert store.append_many(requests) == results
        read_log(store, 3)

    def test_resending_a_batch_in_another_order_is_a_duplicate(
        self, store: EventStore
    ) -> None:
        first, second = _event(), _event()
        store.append("s", [first, second])
        with pytest.raises(DuplicateEventError):
            store.append("s", [second, first])
        assert store.stream_version("s") == 2

    def test_an_id_repeated_within_one_batch_is_a_duplicate(
        self, store: EventStore
    ) -> None:
        event = _event()
        with pytest.raises(DuplicateEventError):
            store.append("s", [event, event])
        assert store.stream_version("s") == 0

    # --- bad input -----------------------------------------------------------------

    @pytest.mark.parametrize(("stream_id", "error"), _BAD_STREAM_IDS)
    def test_bad_stream_ids_are_refused_everywhere(
        self, store: EventStore, stream_id: object, error: type[Exception]
    ) -> None:
        calls: list[Callable[[], object]] = [
            lambda: store.append(stream_id, [_event()]),  # type: ignore[arg-type]  # bad on purpose
            lambda: store.read_stream(stream_id),  # type: ignore[arg-type]  # bad on purpose
            lambda: store.stream_version(stream_id),  # type: ignore[arg-type]  # bad on purpose
            lambda: store.load_snapshot(stream_id),  # type: ignore[arg-type]  # bad on purpose
            lambda: store.load(stream_id),  # type: ignore[arg-type]  # bad on purpose
            lambda: store.save_snapshot(Snapshot(stream_id, 1, "t", 1, {})),  # type: ignore[arg-type]  # bad on purpose
        ]
        _each_raises(error, calls)
        assert store.read_all() == []

    def test_a_stream_id_of_255_characters_is_fine(self, store: EventStore) -> None:
        stream_id = "é" * 255
        store.append(stream_id, [_event()])
        assert store.stream_version(stream_id) == 1

    @pytest.mark.parametrize(("expected", "error"), _BAD_EXPECTED_VERSIONS)
    def test_bad_expected_versions_are_refused(
        self, store: EventStore, expected: object, error: type[Exception]
    ) -> None:
        with pytest.raises(error):
            store.append("s", [_event()], expected_version=expected)  # type: ignore[arg-type]  # bad on purpose
        assert store.stream_version("s") == 0

    @pytest.mark.parametrize(("data", "error"), _BAD_DATA)
    def test_data_json_cannot_hold_is_refused(
        self, store: EventStore, data: object, error: type[Exception]
    ) -> None:
        good = _event()
        with pytest.raises(error):
            store.append("s", [good, NewEvent("t", data)])  # type: ignore[arg-type]  # bad on purpose
        with pytest.raises(error):
            store.append("s", [NewEvent("t", {}, metadata=data)])  # type: ignore[arg-type]  # bad on purpose
        with pytest.raises(error):
            store.save_snapshot(Snapshot("s", 1, "t", 1, data))  # type: ignore[arg-type]  # bad on purpose
        assert store.stream_version("s") == 0
        assert store.load_snapshot("s") is None

    def test_data_nested_as_deep_as_the_limit_is_stored_and_read_back(
        self, store: EventStore
    ) -> None:
        # MAX_JSON_DEPTH levels of objects, the top one included: whatever
        # depth the caller's stack is at, every reader can read them back.
        deepest = _nested(MAX_JSON_DEPTH - 1)
        store.append("s", [NewEvent("t", deepest, metadata=deepest)])
        store.save_snapshot(Snapshot("s", 1, "t", 1, deepest))
        (recorded,) = [e for e in store.read_stream("s")]
        assert recorded.data == deepest
        assert recorded.metadata == deepest
        snapshot = store.load_snapshot("s")
        assert snapshot is not None
        assert snapshot.state == deepest

    def test_a_literal_backslash_u0000_in_text_is_fine(self, store: EventStore) -> None:
        data = {"path": "C:\\u0000\\dir", "escaped": "\\\\u0000"}
        store.append("s", [NewEvent("t", data)])
        (recorded,) = [e for e in store.read_stream("s")]
        assert recorded.data == data

    def test_an_empty_append_is_refused(self, store: EventStore) -> None:
        with pytest.raises(InvalidArgumentError):
            store.append("s", [])
        assert store.stream_version("s") == 0

    @pytest.mark.parametrize(
        "events", [_event(), "text", None, [{"type": "x"}], ({"a": 1},)], ids=repr
    )
    def test_events_that_are_not_new_events_are_refused(
        self, store: EventStore, events: object
    ) -> None:
        with pytest.raises(InvalidArgumentTypeError):
            store.append("s", events)  # type: ignore[arg-type]  # bad on purpose
        assert store.stream_version("s") == 0

    @pytest.mark.parametrize(
        "event",
        [
            NewEvent("", {}),
            NewEvent("a\x00b", {}),
            NewEvent("t" * 256, {}),
            NewEvent(None, {}),  # type: ignore[arg-type]  # bad on purpose
            NewEvent("t", {}, schema_version=0),
            NewEvent("t", {}, schema_version=True),
            NewEvent("t", {}, schema_version=2**31),
            NewEvent("t", {}, event_id="not-a-uuid"),  # type: ignore[arg-type]  # bad on purpose
        ],
        ids=repr,
    )
    def test_malformed_events_are_refused_with_the_whole_batch(
        self, store: EventStore, event: NewEvent
    ) -> None:
        with pytest.raises(InvalidArgumentError):
            store.append("s", [_event(), event])
        assert store.stream_version("s") == 0

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"from_version": 0},
            {"from_version": -1},
            {"from_version": True},
            {"from_version": None},
            {"to_version": 0},
            {"to_version": "3"},
            {"limit": 0},
            {"limit": 2.5},
            {"backwards": "yes"},
        ],
        ids=repr,
    )
    def test_bad_read_stream_arguments_fail_at_the_call(
        self, store: EventStore, kwargs: dict[str, Any]
    ) -> None:
        with pytest.raises(InvalidArgumentError):
            store.read_stream("s", **kwargs)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"to_version": 0},
            {"to_version": "2"},
            {"use_snapshot": "false"},
            {"use_snapshot": 0},
        ],
        ids=repr,
    )
    def test_bad_load_arguments_are_refused(
        self, store: EventStore, kwargs: dict[str, Any]
    ) -> None:
        with pytest.raises(InvalidArgumentError):
            store.load("s", **kwargs)
        with pytest.raises(InvalidArgumentError):
            store.load_snapshot("s", max_version=kwargs.get("to_version", 0))

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"after": "1/2"},
            {"after": 3},
            {"after": (1, 2)},
            {"after": LogPosition("a", "b")},  # type: ignore[arg-type]  # bad on purpose
            {"after": LogPosition(-1, -1)},
            {"after": LogPosition(True, 1)},
            {"limit": 0},
            {"limit": None},
            {"limit": False},
            {"limit": 2**63},
        ],
        ids=repr,
    )
    def test_bad_read_all_arguments_are_refused(
        self, store: EventStore, kwargs: dict[str, Any]
    ) -> None:
        with pytest.raises(InvalidArgumentError):
            store.read_all(**kwargs)

    def test_every_error_is_an_event_store_error(self) -> None:
        for error in (InvalidArgumentError, InvalidArgumentTypeError, ConcurrencyError):
            assert issubclass(error, EventStoreError)

    # --- reading streams -----------------------------------------------------------

    def test_a_missing_stream_reads_as_empty_at_version_0(
        self, store: EventStore
    ) -> None:
        assert [e for e in store.read_stream("nope")] == []
        assert [e for e in store.read_stream("nope", backwards=True)] == []
        assert store.stream_version("nope") == 0

    @pytest.mark.parametrize(
        ("kwargs", "versions"),
        [
            ({}, [1, 2, 3, 4, 5]),
            ({"from_version": 3}, [3, 4, 5]),
            ({"to_version": 2}, [1, 2]),
            ({"from_version": 2, "to_version": 4}, [2, 3, 4]),
            ({"from_version": 4, "to_version": 2}, []),
            ({"from_version": 6}, []),
            ({"to_version": 99}, [1, 2, 3, 4, 5]),
            ({"limit": 2}, [1, 2]),
            ({"from_version": 2, "limit": 2}, [2, 3]),
            ({"backwards": True}, [5, 4, 3, 2, 1]),
            ({"backwards": True, "limit": 2}, [5, 4]),
            ({"backwards": True, "to_version": 3}, [3, 2, 1]),
            ({"backwards": True, "from_version": 2, "to_version": 4}, [4, 3, 2]),
            ({"backwards": True, "to_version": 99, "limit": 1}, [5]),
            ({"backwards": True, "from_version": 9}, []),
        ],
        ids=repr,
    )
    def test_read_stream_honours_bounds_direction_and_limit(
        self, store: EventStore, kwargs: dict[str, Any], versions: list[int]
    ) -> None:
        store.append("s", [NewEvent("t", {"n": n}) for n in range(1, 6)])
        store.append("other", [_event()])
        events = [e for e in store.read_stream("s", **kwargs)]
        assert [e.version for e in events] == versions
        assert [e.data["n"] for e in events] == versions
        assert all(e.stream_id == "s" for e in events)

    def test_a_long_stream_reads_completely_in_order(self, store: EventStore) -> None:
        for start in range(0, 2500, 500):
            store.append(
                "long", [NewEvent("t", {"n": n}) for n in range(start, start + 500)]
            )
        forwards = [e.data["n"] for e in store.read_stream("long")]
        assert forwards == list(range(2500))
        backwards = [e.version for e in store.read_stream("long", backwards=True)]
        assert backwards == list(range(2500, 0, -1))

    def test_read_stream_is_an_iterator(self, store: EventStore) -> None:
        store.append("s", [_event(), _event()])
        iterator = store.read_stream("s")
        assert iter(iterator) is iterator
        first = next(iterator)
        assert first.version == 1

    def test_read_streams_range_is_fixed_by_its_first_step(
        self, store: EventStore
    ) -> None:
        store.append("s", [_event()])
        iterator = store.read_stream("s")
        store.append("s", [_event()])
        # The range is fixed at the call.
        assert [e.version for e in iterator] == [1]
        later = store.read_stream("s")
        first = next(later)
        store.append("s", [_event()])
        rest = [e.version for e in later]
        assert [first.version, *rest] == [1, 2]

    @settings(
        max_examples=25,
        deadline=None,
        # differing_executors: every backend's subclass runs this same test,
        # which is the point of a contract suite, not a mistake.
        suppress_health_check=[
            HealthCheck.function_scoped_fixture,
            HealthCheck.differing_executors,
        ],
    )
    @given(data=json_objects(), metadata=json_objects())
    def test_any_json_object_round_trips(
        self, store: EventStore, data: dict[str, Any], metadata: dict[str, Any]
    ) -> None:
        stream_id = f"json-{uuid.uuid4()}"
        store.append(stream_id, [NewEvent("t", data, metadata=metadata)])
        (recorded,) = [e for e in store.read_stream(stream_id)]
        assert recorded.data == data
        assert recorded.metadata == metadata

    # --- the global log ------------------------------------------------------------

    def test_an_empty_store_has_an_empty_log(self, store: EventStore) -> None:
        assert store.read_all() == []

    def test_the_log_holds_every_event_once_in_append_order(
        self, store: EventStore
    ) -> None:
        appended = [
            store.append(f"s-{n % 2}", [NewEvent("t", {"n": n})]) for n in range(5)
        ]
        appended.append(
            store.append("s-2", [NewEvent("t", {"n": 5}), NewEvent("t", {"n": 6})])
        )
        log = read_log(store, 7)
        assert [e.data["n"] for e in log] == list(range(7))
        positions = [e.position for e in log]
        assert positions == sorted(positions)
        assert len(set(positions)) == 7
        assert positions == [p for result in appended for p in result.positions]

    def test_checkpointed_paging_reads_each_event_exactly_once(
        self, store: EventStore
    ) -> None:
        for n in range(23):
            store.append(f"s-{n % 4}", [NewEvent("t", {"n": n})])
        read_log(store, 23)
        seen: list[int] = []
        checkpoint: LogPosition | None = None
        while page := store.read_all(checkpoint, limit=5):
            assert len(page) <= 5
            seen.extend(e.data["n"] for e in page)
            checkpoint = page[-1].position
        assert seen == list(range(23))
        assert store.read_all(checkpoint) == []

    def test_a_checkpoint_survives_a_round_trip_through_text(
        self, store: EventStore
    ) -> None:
        store.append("s", [_event(), _event(), _event()])
        first, *rest = read_log(store, 3)
        checkpoint = LogPosition.parse(str(first.position))
        assert checkpoint == first.position
        assert store.read_all(checkpoint) == rest

    def test_the_log_and_the_stream_return_the_same_events(
        self, store: EventStore
    ) -> None:
        store.append("s", [_event(), _event()])
        assert read_log(store, 2) == [e for e in store.read_stream("s")]

    # --- snapshots -------------------------------------------------------------

    def test_a_stream_without_snapshots_loads_none(self, store: EventStore) -> None:
        assert store.load_snapshot("s") is None

    def test_a_saved_snapshot_loads_with_its_state(self, store: EventStore) -> None:
        state = {"title": "Q3", "findings": [{"id": "f1", "severity": 2}], "meta": {}}
        store.save_snapshot(Snapshot("s", 4, "document", 2, state))
        loaded = store.load_snapshot("s")
        assert loaded is not None
        assert (
            loaded.stream_id,
            loaded.version,
            loaded.type,
            loaded.schema_version,
        ) == (
            "s",
            4,
            "document",
            2,
        )
        assert loaded.state == state
        assert loaded.recorded_at is not None
        assert loaded.recorded_at.tzinfo is not None

    def test_load_snapshot_picks_the_newest_at_or_below_max_version(
        self, store: EventStore
    ) -> None:
        store.save_snapshot(Snapshot("s", 3, "t", 1, {"v": 3}))
        store.save_snapshot(Snapshot("s", 6, "t", 1, {"v": 6}))
        assert _snapshot_version(store.load_snapshot("s")) == 6
        assert _snapshot_version(store.load_snapshot("s", max_version=6)) == 6
        assert _snapshot_version(store.load_snapshot("s", max_version=5)) == 3
        assert store.load_snapshot("s", max_version=2) is None
        assert store.load_snapshot("other") is None

    def test_saving_at_an_existing_version_replaces_the_snapshot(
        self, store: EventStore
    ) -> None:
        store.save_snapshot(Snapshot("s", 3, "t", 1, {"old": True}))
        store.save_snapshot(Snapshot("s", 3, "t", 2, {"new": True}))
        loaded = store.load_snapshot("s")
        assert loaded is not None
        assert loaded.state == {"new": True}
        assert loaded.schema_version == 2

    def test_only_the_newest_two_snapshots_are_kept(self, store: EventStore) -> None:
        for version in (2, 4, 6):
            store.save_snapshot(Snapshot("s", version, "t", 1, {"v": version}))
        assert store.load_snapshot("s", max_version=3) is None
        assert _snapshot_version(store.load_snapshot("s", max_version=5)) == 4

    def test_load_returns_the_snapshot_and_the_events_after_it(
        self, store: EventStore
    ) -> None:
        store.append("s", [NewEvent("t", {"n": n}) for n in range(1, 8)])
        store.save_snapshot(Snapshot("s", 5, "t", 1, {"upto": 5}))
        loaded = store.load("s")
        assert loaded.snapshot is not None
        assert loaded.snapshot.version == 5
        assert [e.version for e in loaded.events] == [6, 7]
        assert loaded.version == 7

    def test_load_as_of_a_version_uses_an_older_snapshot(
        self, store: EventStore
    ) -> None:
        store.append("s", [NewEvent("t", {"n": n}) for n in range(1, 8)])
        store.save_snapshot(Snapshot("s", 2, "t", 1, {"upto": 2}))
        store.save_snapshot(Snapshot("s", 5, "t", 1, {"upto": 5}))
        loaded = store.load("s", to_version=4)
        assert _snapshot_version(loaded.snapshot) == 2
        assert [e.version for e in loaded.events] == [3, 4]
        assert loaded.version == 4

    def test_load_without_snapshots_returns_every_event(
        self, store: EventStore
    ) -> None:
        store.append("s", [_event(), _event(), _event()])
        store.save_snapshot(Snapshot("s", 2, "t", 1, {}))
        loaded = store.load("s", use_snapshot=False)
        assert loaded.snapshot is None
        assert [e.version for e in loaded.events] == [1, 2, 3]
        assert loaded.version == 3

    def test_load_of_a_missing_stream_is_empty_at_version_0(
        self, store: EventStore
    ) -> None:
        loaded = store.load("nope")
        assert (loaded.snapshot, loaded.events, loaded.version) == (None, (), 0)

    def test_load_never_uses_a_snapshot_beyond_the_streams_end(
        self, store: EventStore
    ) -> None:
        store.append("s", [_event()])
        # Stored as given (the store does not check), but never loaded.
        store.save_snapshot(Snapshot("s", 5, "t", 1, {"n": 5}))
        store.save_snapshot(Snapshot("absent", 2, "t", 1, {}))
        loaded = store.load("s")
        assert (loaded.snapshot, loaded.version, len(loaded.events)) == (None, 1, 1)
        absent = store.load("absent")
        assert (absent.snapshot, absent.version, absent.events) == (None, 0, ())
        assert _snapshot_version(store.load_snapshot("s")) == 5

    def test_load_with_a_snapshot_at_the_head_has_no_events(
        self, store: EventStore
    ) -> None:
        store.append("s", [_event(), _event()])
        store.save_snapshot(Snapshot("s", 2, "t", 1, {"upto": 2}))
        loaded = store.load("s")
        assert (_snapshot_version(loaded.snapshot), loaded.events, loaded.version) == (
            2,
            (),
            2,
        )

    @pytest.mark.parametrize(
        "snapshot",
        [
            Snapshot("s", 0, "t", 1, {}),
            Snapshot("s", 1, "", 1, {}),
            Snapshot("s", 1, "t", 0, {}),
            Snapshot("s", True, "t", 1, {}),
            Snapshot("s", 2**63, "t", 1, {}),
            Snapshot("s", 1, "t", 2**31, {}),
        ],
        ids=repr,
    )
    def test_malformed_snapshots_are_refused(
        self, store: EventStore, snapshot: Snapshot
    ) -> None:
        with pytest.raises(InvalidArgumentError):
            store.save_snapshot(snapshot)
        assert store.load_snapshot("s") is None

    # --- concurrency ---------------------------------------------------------------

    def test_racing_appends_with_one_expected_version_have_one_winner(
        self, store: EventStore
    ) -> None:
        assert_one_winner_per_round(store, threads=6, rounds=10, stream_id="race")

    # --- lifecycle -------------------------------------------------------------

    def test_health_of_an_open_store_is_ok(self, store: EventStore) -> None:
        report = store.health()
        assert report.status is HealthStatus.OK
        assert report.latency_ms is not None
        assert report.latency_ms >= 0
        assert set(report.to_dict()) >= {
            "status",
            "latency_ms",
            "schema_version",
            "pool",
        }

    def test_a_closed_store_refuses_calls_and_reports_unavailable(
        self, store: EventStore
    ) -> None:
        store.append("s", [_event()])
        store.close()
        assert store.closed
        calls: list[Callable[[], object]] = [
            lambda: store.append("s", [_event()]),
            lambda: store.append_many([AppendRequest("s", [_event()])]),
            store.read_all,
            lambda: store.stream_version("s"),
            lambda: store.save_snapshot(Snapshot("s", 1, "t", 1, {})),
            lambda: store.load_snapshot("s"),
            lambda: store.load("s"),
        ]
        _each_raises(StoreClosedError, calls)
        with pytest.raises(StoreClosedError):
            [event for event in store.read_stream("s")]
        report = store.health()
        assert report.status is HealthStatus.UNAVAILABLE
        store.close()  # closing twice is harmless

    def test_a_read_under_way_when_the_store_closes_ends_at_its_next_step(
        self, store: EventStore
    ) -> None:
        store.append("s", [_event(), _event(), _event()])
        reading = store.read_stream("s")
        first = next(reading)
        assert first.version == 1
        store.close()
        # Whether the rest is fetched already or not: both backends alike.
        with pytest.raises(StoreClosedError):
            next(reading)

    def test_a_store_is_a_context_manager_that_closes(self, store: EventStore) -> None:
        with store as entered:
            assert entered is store
        assert store.closed


def _each_raises(error: type[Exception], calls: list[Callable[[], object]]) -> None:
    """Assert that each of *calls* raises *error* (when called, or when awaited)."""
    for call in calls:
        with pytest.raises(error):
            call()


def _stored_id(store: EventStore, stream_id: str) -> uuid.UUID:
    event = next(store.read_stream(stream_id))
    return event.event_id


def _snapshot_version(snapshot: Snapshot | None) -> int | None:
    return None if snapshot is None else snapshot.version
