"""AsyncRepository under cancellation: what is committed is never left looking unsaved."""

from __future__ import annotations

import asyncio

import pytest

from eventstore import AsyncInMemoryEventStore
from eventstore._validation import EncodedSnapshot
from tests.repository.domain import AsyncCounterRepository, Counter, make_registry


class HeldSnapshots(AsyncInMemoryEventStore):
    """Holds every snapshot write until released: the await a cancellation lands in."""

    def __init__(self) -> None:
        super().__init__()
        self.snapshotting = asyncio.Event()
        self.release = asyncio.Event()

    async def _save_snapshot(self, snapshot: EncodedSnapshot) -> None:
        self.snapshotting.set()
        await self.release.wait()
        await super()._save_snapshot(snapshot)


async def test_a_save_all_cancelled_in_its_first_snapshot_leaves_every_aggregate_saved() -> (
    None
):
    store = HeldSnapshots()
    repo = AsyncCounterRepository(store, make_registry(), snapshot_every=1)
    first, second = Counter.open("a", "x"), Counter.open("b", "y")
    saving = asyncio.create_task(repo.save_all([first, second]))
    await asyncio.wait_for(store.snapshotting.wait(), 5.0)
    saving.cancel()
    with pytest.raises(asyncio.CancelledError):
        await saving
    # Both appends committed together; both aggregates know it.
    assert [await store.stream_version(s) for s in ("counter-a", "counter-b")] == [1, 1]
    assert [(c.version, c.pending_events) for c in (first, second)] == [
        (1, ()),
        (1, ()),
    ]
    store.release.set()
    second.increment()
    assert await repo.save(second) is not None  # no conflict with its own events
