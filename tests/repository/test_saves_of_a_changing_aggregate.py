"""What a save stores, and what it leaves pending, when the aggregate changes while it is under way."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from eventstore import AppendRequest, AppendResult, AsyncInMemoryEventStore
from tests.repository.domain import AsyncCounterRepository, Counter, make_registry


class HeldAppends(AsyncInMemoryEventStore):
    """Appends wait until the test lets them go on."""

    def __init__(self) -> None:
        super().__init__()
        self.appending = asyncio.Event()
        self.go_on = asyncio.Event()

    async def append_many(
        self, requests: Sequence[AppendRequest]
    ) -> list[AppendResult]:
        self.appending.set()
        await asyncio.wait_for(self.go_on.wait(), 10)
        return await super().append_many(requests)


async def test_an_event_raised_during_a_save_stays_pending_and_out_of_its_snapshot() -> (
    None
):
    store = HeldAppends()
    store.go_on.set()
    repo = AsyncCounterRepository(store, make_registry(), snapshot_every=2)
    counter = Counter.open("c1", "x")
    await repo.create(counter)  # version 1
    store.go_on.clear()
    store.appending.clear()
    counter.increment(1)  # in the save below: version 2, a snapshot is due
    saving = asyncio.create_task(repo.save(counter))
    await asyncio.wait_for(store.appending.wait(), 10)
    counter.increment(1000)  # another task's, while the append is under way
    store.go_on.set()
    await asyncio.wait_for(saving, 10)

    assert [event.amount for event in counter.pending_events] == [1000]
    assert counter.version == 2
    # No snapshot of a state holding an event the stream does not.
    assert await store.load_snapshot("counter-c1") is None
    assert (await repo.get("c1")).total == 1
    await repo.save(counter)  # the next save stores it
    assert counter.pending_events == ()
    assert (await repo.get("c1")).total == 1001


def test_mark_saved_keeps_the_events_the_stored_version_does_not_cover() -> None:
    counter = Counter.open("c1", "x")
    counter.increment(2)
    counter.increment(3)
    counter.mark_saved(2)  # the open and the first increment were stored
    assert [event.amount for event in counter.pending_events] == [3]
    counter.mark_saved(3)
    assert counter.pending_events == ()
