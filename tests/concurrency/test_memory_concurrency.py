import asyncio
import sys
import threading
import time

import pytest

from eventstore import (
    AsyncInMemoryEventStore,
    InMemoryEventStore,
    LogPosition,
    NewEvent,
    StoreClosedError,
)
from eventstore.testing.concurrency import assert_one_winner_per_round

THREADS = 10
ROUNDS = 100


def test_ten_threads_racing_one_expected_version_have_exactly_one_winner_per_round() -> (
    None
):
    assert_one_winner_per_round(InMemoryEventStore(), threads=THREADS, rounds=ROUNDS)


def test_a_reader_following_the_log_sees_every_event_of_eight_writers_exactly_once() -> (
    None
):
    store = InMemoryEventStore()
    writers, appends_each = 8, 500
    start = threading.Barrier(writers + 1)
    done = threading.Event()
    seen: list[tuple[str, int]] = []

    def write(writer: int) -> None:
        start.wait()
        for n in range(appends_each):
            store.append(
                f"writer-{writer}", [NewEvent("t", {"n": n})], expected_version=n
            )

    def follow() -> None:
        checkpoint: LogPosition | None = None
        start.wait()
        while True:
            finished = (
                done.is_set()
            )  # read before the page, so the last page is complete
            page = store.read_all(checkpoint, limit=97)
            seen.extend((e.stream_id, e.data["n"]) for e in page)
            if page:
                checkpoint = page[-1].position
            elif finished:
                return

    reader = threading.Thread(target=follow)
    threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
    reader.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    reader.join()

    expected = {(f"writer-{w}", n) for w in range(writers) for n in range(appends_each)}
    assert len(seen) == len(expected)
    assert set(seen) == expected
    for w in range(writers):
        assert [n for s, n in seen if s == f"writer-{w}"] == list(range(appends_each))


@pytest.mark.parametrize("flavour", ["sync", "async"])
def test_stream_version_never_shows_part_of_a_batch_being_written(flavour: str) -> None:
    # The async store is documented as safe across threads too: each thread
    # then runs its own event loop over the one store.
    batch, batches, looks = 50, 1_000, 200_000
    sync_store = InMemoryEventStore()
    async_store = AsyncInMemoryEventStore()
    started = threading.Barrier(2, timeout=10)
    seen: list[int] = []

    def version() -> int:
        if flavour == "sync":
            return sync_store.stream_version("s")
        return asyncio.run(async_store.stream_version("s"))

    def write() -> None:
        started.wait()
        for n in range(batches):
            events = [NewEvent("t", {"n": n}) for _ in range(batch)]
            if flavour == "sync":
                sync_store.append("s", events, expected_version=n * batch)
            else:
                asyncio.run(async_store.append("s", events, expected_version=n * batch))

    writer = threading.Thread(target=write)
    # Threads switch every microsecond, not every 5 ms: a look can land
    # anywhere inside a batch.
    switch_interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        writer.start()
        started.wait()
        deadline = time.monotonic() + 30.0
        for _ in range(looks):
            if not writer.is_alive() or time.monotonic() > deadline:
                break
            seen.append(version())
        writer.join(30.0)
    finally:
        sys.setswitchinterval(switch_interval)
    assert not writer.is_alive()
    partial = [v for v in seen if v % batch]
    assert partial == [], (
        f"{len(partial)} looks saw part of a batch, e.g. {partial[:5]}"
    )
    assert version() == batch * batches


class _ClosedAfterTheCheck(InMemoryEventStore):
    """Closed by another thread just after a call's public open check passed."""

    armed = False

    def _check_open(self) -> None:
        super()._check_open()
        if self.armed:
            self.armed = False
            closer = threading.Thread(target=self.close)
            closer.start()
            closer.join(10)


@pytest.mark.parametrize(
    "call",
    [
        lambda store: store.load("s"),
        lambda store: store.stream_version("s"),
        lambda store: store.read_all(),
        lambda store: list(store.read_stream("s")),
        lambda store: store.load_snapshot("s"),
        lambda store: store.append("s", [NewEvent("t", {})]),
    ],
    ids=[
        "load",
        "stream_version",
        "read_all",
        "read_stream",
        "snapshot",
        "append",
    ],
)
def test_a_call_the_store_was_closed_under_raises_closed_not_an_empty_answer(
    call: object,
) -> None:
    # close() empties the tables: a call past the open check read them as an
    # empty store (version 0, no events, AggregateNotFound in a repository,
    # a checkpoint "moved by another runner").
    store = _ClosedAfterTheCheck()
    store.append("s", [NewEvent("t", {"n": n}) for n in range(5)])
    store.armed = True
    with pytest.raises(StoreClosedError):
        call(store)  # type: ignore[operator]
    assert store.closed


async def test_an_async_call_the_store_was_closed_under_raises_closed() -> None:
    class ClosedAfterTheCheck(AsyncInMemoryEventStore):
        armed = False

        def _check_open(self) -> None:
            super()._check_open()
            if self.armed:
                self.armed = False
                closer = threading.Thread(target=asyncio.run, args=(self.close(),))
                closer.start()
                closer.join(10)

    store = ClosedAfterTheCheck()
    await store.append("s", [NewEvent("t", {})])
    store.armed = True
    with pytest.raises(StoreClosedError):
        await store.stream_version("s")
