"""
A `Subscription.run` in a process of its own, for ``append_with_follower``'s ``followed_process`` side.

Run as ``python -m benchmarks.follower_process DSN SCHEMA OUT``: it follows
*SCHEMA*'s log as subscription ``follower`` (a store with a pool of 1 and
no NOTIFY of its own, as the in-process follower) until its standard input
closes, printing
how many events it has taken after every batch; then it writes to *OUT*, as JSON, its final state, its error (if any)
and every event it was handed: ``[event id as int, stream, version,
time.monotonic() at arrival]``. On Linux ``time.monotonic`` is the
system-wide ``CLOCK_MONOTONIC``, so the parent compares the arrivals with
its own clock.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

from eventstore import RecordedEvent, Subscription
from eventstore.postgres import PoolConfig, PostgresEventStore

POLL_INTERVAL = 0.5
"""As the in-process followers' (`Subscription`'s default)."""


def follow(dsn: str, schema: str, out: Path) -> None:
    """Follow *schema*'s log until standard input closes; write what arrived to *out*."""
    arrivals: list[tuple[int, str, int, float]] = []

    def handle(events: list[RecordedEvent]) -> None:
        now = time.monotonic()
        arrivals.extend((e.event_id.int, e.stream_id, e.version, now) for e in events)
        print(len(arrivals), flush=True)  # how many so far, for the parent's wait

    stop = threading.Event()
    error: BaseException | None = None
    with PostgresEventStore(
        dsn,
        schema=schema,
        pool_config=PoolConfig(min_size=1, max_size=1),
        notify_interval=None,
    ) as store:
        subscription = Subscription(
            store, "follower", handle, poll_interval=POLL_INTERVAL
        )

        def run() -> None:
            nonlocal error
            try:
                subscription.run(stop)
            except BaseException as exc:  # reported to the parent
                error = exc

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        sys.stdin.read()  # until the parent closes it
        stop.set()
        thread.join(timeout=60.0)
        out.write_text(
            json.dumps(
                {
                    "state": subscription.state.value,
                    "error": None if error is None else repr(error),
                    "alive": thread.is_alive(),
                    "arrivals": arrivals,
                }
            )
        )


if __name__ == "__main__":
    follow(sys.argv[1], sys.argv[2], Path(sys.argv[3]))
