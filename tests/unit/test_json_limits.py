"""The JSON every backend stores is bounded as PostgreSQL's jsonb is: its size, counted in UTF-8 bytes."""

from __future__ import annotations

import pytest

from eventstore import (
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
