# Generated from logwait_async.py by tools/async_to_sync.py: edit that file, not
# this one, then run `python tools/async_to_sync.py`.
"""Wait until an event is visible in the global log, with a deadline."""

from __future__ import annotations

import time

from eventstore.errors import InvalidArgumentTypeError
from eventstore.events import LogPosition
from eventstore.store import EventStore

__all__ = ["check_store", "wait_for_position"]


def wait_for_position(
    store: EventStore,
    position: LogPosition,
    *,
    timeout: float = 10.0,
    interval: float = 0.005,
) -> None:
    """
    Poll `EventStore.read_all` until the event at *position* is visible, or fail.

    On PostgreSQL an event enters the global log only once every older
    transaction in the cluster has ended (including autovacuum's ANALYZE), so
    a test that reads the log right after appending must wait for it; this
    never assumes it is instant.

    Args:
        store: The store to poll.
        position: A position an append returned.
        timeout: Seconds to wait at most.
        interval: Seconds between polls.

    Raises:
        AssertionError: The event did not become visible within *timeout*.
        InvalidArgumentTypeError: *store* is not an `EventStore`.

    """
    check_store(store)
    # Everything at or after *position* sorts after (transaction, position - 1).
    before = LogPosition(position.transaction_id, position.position - 1)
    deadline = time.monotonic() + timeout
    while True:
        page = store.read_all(before, limit=1)
        if page and page[0].position >= position:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"log position {position} not visible in read_all after {timeout}s "
                "(a long transaction may be holding the log back)"
            )
        time.sleep(interval)


def check_store(store: object) -> None:
    """
    Refuse a store of the other kind (sync where async is due, or the reverse), naming the twin.

    Raises:
        InvalidArgumentTypeError: *store* is not an `EventStore`.
    """
    if not isinstance(store, EventStore):
        raise InvalidArgumentTypeError(
            f"needs an EventStore, got {type(store).__name__}: "
            "eventstore.testing has an async twin of this helper for it"
        )
