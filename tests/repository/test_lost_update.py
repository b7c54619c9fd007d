import threading

import pytest

from eventstore import ConcurrencyError, EventStore, RetryPolicy
from tests.repository.domain import Counter, CounterRepository, make_registry

THREADS = 8
CALLS_EACH = 50


def test_concurrent_updates_never_lose_an_increment(store: EventStore) -> None:
    # Waits are injected (no sleeping), so contention stays high and the test fast.
    policy = RetryPolicy(max_retries=3, jitter=False, sleep=lambda _s: None)
    repo = CounterRepository(
        store, make_registry(), retry_policy=policy, snapshot_every=25
    )
    repo.create(Counter.open("shared", "hits"))
    barrier = threading.Barrier(THREADS)
    successes = [0] * THREADS
    failures: list[list[BaseException]] = [[] for _ in range(THREADS)]

    def work(index: int) -> None:
        barrier.wait()
        for _ in range(CALLS_EACH):
            try:
                repo.update("shared", lambda counter: counter.increment())
            except Exception as exc:  # the outcome under test, whatever it is
                failures[index].append(exc)
            else:
                successes[index] += 1

    threads = [threading.Thread(target=work, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    final = repo.get("shared")
    assert final.total == sum(successes)
    assert final.version == 1 + sum(successes)
    all_failures = [f for per_thread in failures for f in per_thread]
    assert sum(successes) + len(all_failures) == THREADS * CALLS_EACH
    for failure in all_failures:
        assert isinstance(failure, ConcurrencyError)
        assert failure.attempts == policy.max_attempts
    assert sum(successes) > 0


@pytest.mark.parametrize("threads", [4])
def test_with_enough_retries_every_update_lands(
    store: EventStore, threads: int
) -> None:
    policy = RetryPolicy(max_retries=1000, base_delay=0.0, max_delay=0.0, jitter=False)
    repo = CounterRepository(store, make_registry(), retry_policy=policy)
    repo.create(Counter.open("shared", "hits"))
    barrier = threading.Barrier(threads)

    def work() -> None:
        barrier.wait()
        for _ in range(25):
            repo.update("shared", lambda counter: counter.increment())

    workers = [threading.Thread(target=work) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert repo.get("shared").total == threads * 25
