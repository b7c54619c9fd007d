"""
What a following subscription costs the process it runs in, read from each thread's own CPU time.

Run ``python -m benchmarks.follower_cost [--rounds N]``. One store (a pool
of 9) on an embedded PostgreSQL; 8 writer threads append single events to
50 streams each for a second per round while one `Subscription.run` follows
in a thread of the same process, as in ``append_with_follower``. The
follower's thread CPU (``time.thread_time``) is split by what it spent in
the store's hooks: reading and decoding pages, saving the checkpoint,
loading it, and waiting for a notification. The writers' CPU is the
process's less the follower's.

Python runs one thread at a time, so where the writers' process is what
bounds their rate, a follower in it takes its share of that time and the
writers keep ``writers / (writers + follower)`` of their rate without it
(the last line); where the server bounds it, more. The benchmark run's
paired rounds give the rate itself, through the host's noise; this probe
gives what bounds it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from benchmarks.context import event, run_probe
from eventstore import RecordedEvent, Subscription
from eventstore.postgres import PoolConfig, PostgresEventStore, _subscriptions

WRITERS = 8
STREAMS_PER_WRITER = 50
SECONDS_PER_ROUND = 1.0
HOOKS = ("_read_log_page", "_save_checkpoint", "_load_checkpoint")
PARTS = (
    ("reading and decoding pages", "_read_log_page"),
    ("saving the checkpoint", "_save_checkpoint"),
    ("loading the checkpoint", "_load_checkpoint"),
    ("waiting for a notification", "wait"),
)


class _Costs:
    """CPU seconds spent in each wrapped call, counted by the calling thread."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = dict.fromkeys((*HOOKS, "wait"), 0.0)
        self.calls: dict[str, int] = dict.fromkeys((*HOOKS, "wait"), 0)

    def wrap(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            started = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds[name] += time.thread_time() - started
                self.calls[name] += 1

        return timed


def _write(store: PostgresEventStore, index: int, until: float) -> int:
    count = 0
    while time.monotonic() < until:
        store.append(f"w{index}-{count % STREAMS_PER_WRITER}", [event(count)])
        count += 1
    return count


def _round(store: PostgresEventStore) -> int:
    """Append for `SECONDS_PER_ROUND` from every writer; return how many events."""
    until = time.monotonic() + SECONDS_PER_ROUND
    counts = [0] * WRITERS

    def writer(index: int) -> None:
        counts[index] = _write(store, index, until)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(WRITERS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts)


def measure(dsn: str, rounds: int) -> str:
    """Follow *rounds* rounds of 8 writers; return a table of CPU per appended event."""
    costs = _Costs()
    store = PostgresEventStore(
        dsn, schema="follower_cost", pool_config=PoolConfig(min_size=9, max_size=9)
    )
    listener_wait = _subscriptions.Listener.wait
    try:
        store.migrate()
        for name in HOOKS:
            setattr(store, name, costs.wrap(name, getattr(store, name)))
        # The listener is made by the store; its class is the one seam.
        _subscriptions.Listener.wait = costs.wrap("wait", listener_wait)  # type: ignore[method-assign]
        handled = 0

        def handler(events: list[RecordedEvent]) -> None:
            nonlocal handled
            handled += len(events)

        follower = Subscription(store, "follower", handler)
        stop = threading.Event()
        follower_cpu = 0.0

        def follow() -> None:
            nonlocal follower_cpu
            started = time.thread_time()
            follower.run(stop)
            follower_cpu = time.thread_time() - started

        thread = threading.Thread(target=follow, name="follower")
        thread.start()
        started = time.process_time()
        appended = sum(_round(store) for _ in range(rounds))
        deadline = time.monotonic() + 30
        while handled < appended and time.monotonic() < deadline:
            time.sleep(0.01)
        stop.set()
        thread.join()
        process_cpu = time.process_time() - started
    finally:
        _subscriptions.Listener.wait = listener_wait  # type: ignore[method-assign]
        store.close()
    assert handled == appended, (handled, appended)
    per_event = 1e6 / appended
    writers_cpu = process_cpu - follower_cpu
    lines = [
        f"{appended:,} events appended by {WRITERS} threads in {rounds} rounds of "
        f"{SECONDS_PER_ROUND:g} s, each handled once by one follower in the same process",
        "",
        "| CPU of | calls | µs per call | µs per appended event |",
        "| --- | --- | --- | --- |",
    ]
    for label, name in PARTS:
        calls = costs.calls[name]
        each = costs.seconds[name] / calls * 1e6 if calls else 0.0
        lines.append(
            f"| follower: {label} | {calls:,} | {each:.0f} | "
            f"{costs.seconds[name] * per_event:.2f} |"
        )
    lines += [
        f"| follower, in all | - | - | {follower_cpu * per_event:.2f} |",
        f"| the {WRITERS} writers, in all | - | - | {writers_cpu * per_event:.2f} |",
        "",
        "follower's share of the process's CPU: "
        f"{follower_cpu / process_cpu:.3f}; where the process bounds the writers, "
        f"they keep {writers_cpu / process_cpu:.3f} of their rate without it",
    ]
    return "\n".join(lines)


def main() -> None:
    run_probe(measure, __doc__.split("\n\n")[0], {})


if __name__ == "__main__":
    main()
