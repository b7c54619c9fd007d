import threading

from eventstore import (
    InMemoryEventStore,
    LogPosition,
    NewEvent,
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
