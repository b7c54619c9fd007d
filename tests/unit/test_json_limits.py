"""The JSON every backend stores is bounded as PostgreSQL's jsonb is: its size, counted in UTF-8 bytes."""

from __future__ import annotations

import pytest

from eventstore import (
    AppendRequest,
    EventStore,
    InMemoryEventStore,
    InvalidArgumentError,
    NewEvent,
    Snapshot,
    _validation,
)


def test_the_limit_is_postgresqls_jsonb_limit() -> None:
    # jsonb refuses a string or an object past 2**28 - 1 bytes; the store
    # refuses it up front on every backend, as bad input, not an outage.
    assert _validation.MAX_JSON_BYTES == 2**28 - 1


def test_json_past_the_limit_is_refused_on_append_and_snapshot_and_nothing_is_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Built for real, a value past 256 MiB would take the test ~800 MB.
    monkeypatch.setattr(_validation, "MAX_JSON_BYTES", 20)
    store = InMemoryEventStore()
    fits = {"a": "x" * 12}  # {"a":"xxxxxxxxxxxx"}: 20 bytes
    store.append("s", [NewEvent("t", fits)])
    store.save_snapshot(Snapshot("s", 1, "t", 1, fits))
    # Non-ASCII text counts its UTF-8 bytes: {"a":"ééééééé"} is 15 characters, 22 bytes.
    for too_big in ({"a": "x" * 13}, {"a": "é" * 7}):
        with pytest.raises(InvalidArgumentError, match="bytes of JSON"):
            store.append("s", [NewEvent("t", {}), NewEvent("t", too_big)])
        with pytest.raises(InvalidArgumentError, match="bytes of JSON"):
            store.append("s", [NewEvent("t", {}, metadata=too_big)])
        with pytest.raises(InvalidArgumentError, match="bytes of JSON"):
            store.save_snapshot(Snapshot("s", 1, "t", 1, too_big))
    assert store.stream_version("s") == 1
    snapshot = store.load_snapshot("s")
    assert snapshot is not None
    assert snapshot.state == fits


def test_the_item_limit_is_what_postgresqls_jsonb_parser_can_hold() -> None:
    # Measured on PostgreSQL 18 (docs/choices.md): an object of 2**23
    # members parses and one more fails ("invalid memory alloc request
    # size"); arrays fail past 2**24. One limit for both.
    assert _validation.MAX_JSON_ITEMS == 2**23


def _stores(request: pytest.FixtureRequest) -> list[EventStore]:
    return [InMemoryEventStore(), request.getfixturevalue("postgres_store")]


@pytest.mark.postgres
def test_an_array_or_object_past_the_item_limit_is_refused_on_every_backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    stores = _stores(request)
    # The real limit for arrays: refused from its length, before any
    # encoding, so it costs the list alone.
    huge = {"a": [0] * (_validation.MAX_JSON_ITEMS + 1)}
    for store in stores:
        with pytest.raises(InvalidArgumentError, match="an array of 8,388,609 items"):
            store.append("s", [NewEvent("t", huge)])
    monkeypatch.setattr(_validation, "MAX_JSON_ITEMS", 3)
    fits = {"a": [1, 2, 3], "b": {"x": 1, "y": 2, "z": 3}, "c": 0}
    too_many: list[dict[str, object]] = [
        {"a": [1, 2, 3, 4]},
        {"a": 1, "b": 2, "c": 3, "d": 4},
        {"a": [{"deep": [(1, 2, 3, 4)]}]},
    ]
    for store in stores:
        store.append("s", [NewEvent("t", fits)])
        for data in too_many:
            with pytest.raises(InvalidArgumentError, match="at most 3"):
                store.append("s", [NewEvent("t", data)])
            with pytest.raises(InvalidArgumentError, match="at most 3"):
                store.append("s", [NewEvent("t", {}, metadata=data)])
            with pytest.raises(InvalidArgumentError, match="at most 3"):
                store.save_snapshot(Snapshot("s", 1, "t", 1, data))
        assert [e.data for e in store.read_stream("s")] == [fits]


@pytest.mark.postgres
def test_an_append_past_the_message_limit_is_refused_on_every_backend(
    request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PostgreSQL closes the connection on a message of 1 GiB (seen as an
    # outage, retried in vain); built for real, such an append would take
    # the test gigabytes. An event's id, schema version and lengths count
    # 64 bytes besides its data, metadata and type.
    stores = _stores(request)
    monkeypatch.setattr(_validation, "MAX_APPEND_BYTES", 2 * (64 + 1 + 2 + 12))
    fits = [NewEvent("t", {"a": "xxxx"}) for _ in range(2)]  # {"a":"xxxx"}: 12 bytes
    for store in stores:
        assert store.append("s", fits).version == 2
        # One event alone is never refused: two of its values always fit.
        assert store.append("s", [NewEvent("t", {"a": "x" * 100})]).version == 3
        # Non-ASCII counts its UTF-8 bytes: {"a":"ééé"} is 11 characters, 14 bytes.
        for events in (
            [NewEvent("t", {"a": "xxxxx"}), NewEvent("t", {"a": "xxxx"})],
            [NewEvent("t", {"a": "ééé"}), NewEvent("t", {"a": "xxxx"})],
            [NewEvent("tt", {"a": "xxxx"}), NewEvent("t", {"a": "xxxx"})],
        ):
            with pytest.raises(InvalidArgumentError, match="split it into several"):
                store.append("s", events)
            with pytest.raises(InvalidArgumentError, match="split it into several"):
                store.append_many([AppendRequest("other", events)])
        assert store.stream_version("s") == 3
        assert store.stream_version("other") == 0
