"""Wait until an event is visible in the global log, with a deadline."""

from __future__ import annotations

import asyncio
import time

from eventstore.errors import InvalidArgumentTypeError
from eventstore.events import LogPosition
from eventstore.store_async import AsyncEventStore

__all__ = ["async_wait_for_position", "check_store"]


async def async_wait_for_position(
    store: AsyncEventStore,
    position: LogPosition,
    *,
    timeout: float = 10.0,
    interval: float = 0.005,
) -> None:
    """
    Poll `AsyncEventStore.read_all` until the event at *position* is visible, or fail.

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
        InvalidArgumentTypeError: *store* is not an `AsyncEventStore`.

    """
    check_store(store)
    # Everything at or after *position* sorts after (transaction, position - 1).
    before = LogPosition(position.transaction_id, position.position - 1)
    deadline = time.monotonic() + timeout
    while True:
        page = await store.read_all(before, limit=1)
        if page and page[0].position >= position:
            return
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"log position {position} not visible in read_all after {timeout}s "
                "(a long transaction may be holding the log back)"
            )
        if True:  # ASYNC
            await asyncio.sleep(interval)
        else:
            time.sleep(interval)  # type: ignore[unreachable]


def check_store(store: object) -> None:
    """
    Refuse a store of the other kind (sync where async is due, or the reverse), naming the twin.

    Raises:
        InvalidArgumentTypeError: *store* is not an `AsyncEventStore`.
    """
    if not isinstance(store, AsyncEventStore):
        if True:  # ASYNC
            raise InvalidArgumentTypeError(
                f"needs an AsyncEventStore, got {type(store).__name__}: "
                "eventstore.testing has a sync twin of this helper for it"
            )
        else:
            raise InvalidArgumentTypeError(
                f"needs an AsyncEventStore, got {type(store).__name__}: "
                "eventstore.testing has an async twin of this helper for it"
            )
