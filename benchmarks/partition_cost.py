"""
The server's cost of a stream's statements on each layout, read from the backend's own CPU time.

Run ``python -m benchmarks.partition_cost [--rounds N]``. Three stores of
one connection each on an embedded PostgreSQL (``synchronous_commit`` off,
so the server's CPU rather than the disk is what an append waits for):

- ``plain``: the plain layout;
- ``partitioned``: ``partitions=8``, statements on a stream sent to its own
  partitions (`eventstore.postgres._routing`);
- ``partitioned, through the parents``: the same layout with its partitions
  renamed, so the store cannot tell which is which and sends every
  statement to the parent tables, as it did before it routed.

A round runs, on each in turn, 64 streams' worth of one iteration each: an
append to an existing stream, and every third iteration a losing append
(a claim refused, then the diagnosis), `stream_version` and a read of the
stream. The figures are medians over the rounds of the backend's CPU time
(``/proc/<pid>/stat``, so only with the server on this machine) and of the
wall time, per iteration. The benchmark run's workloads time the same
statements among others; this probe isolates what the layout costs the
server, which the run's figures show only through its noise.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import psycopg
from psycopg import sql

from benchmarks.context import event, run_probe
from eventstore import ConcurrencyError
from eventstore.postgres import PoolConfig, PostgresEventStore

STREAMS = 64
ITERATIONS = 1_500
PARTITIONS = 8
SIDES = ("plain", "partitioned", "partitioned, through the parents")


def _cpu_seconds(pid: int) -> float | None:
    """The CPU time of process *pid* (user + system), or None where /proc cannot tell."""
    stat = Path(f"/proc/{pid}/stat")
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _iterate(store: PostgresEventStore, streams: list[str], count: int) -> None:
    for n in range(count):
        stream = streams[n % len(streams)]
        store.append(stream, [event(n)])
        if n % 3 == 0:
            with suppress(ConcurrencyError):
                store.append(stream, [event(n)], expected_version=1)
            store.stream_version(stream)
            next(iter(store.read_stream(stream, limit=1)))


@contextmanager
def _stores(dsn: str) -> Iterator[dict[str, PostgresEventStore]]:
    admin = psycopg.connect(dsn, autocommit=True)
    schemas = ("cost_plain", "cost_partitioned", "cost_parents")
    stores: dict[str, PostgresEventStore] = {}
    try:
        for schema in schemas:
            admin.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(schema)
                )
            )
        for name, schema in zip(SIDES, schemas, strict=True):
            setup = PostgresEventStore(
                dsn, schema=schema, partitions=None if name == "plain" else PARTITIONS
            )
            setup.migrate()
            setup.close()
        for table in ("streams", "events", "snapshots"):
            for remainder in range(PARTITIONS):
                admin.execute(
                    sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                        sql.Identifier("cost_parents", f"{table}_p{remainder}"),
                        sql.Identifier(f"{table}_part{remainder}"),
                    )
                )
        for name, schema in zip(SIDES, schemas, strict=True):
            stores[name] = PostgresEventStore(
                dsn, schema=schema, pool_config=PoolConfig(min_size=1, max_size=1)
            )
        yield stores
    finally:
        for store in stores.values():
            store.close()
        for schema in schemas:
            admin.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(
                    sql.Identifier(schema)
                )
            )
        admin.close()


def measure(dsn: str, rounds: int, iterations: int = ITERATIONS) -> str:
    """Time every side for *rounds* rounds of *iterations*; return a table."""
    streams = [f"stream-{n}" for n in range(STREAMS)]
    cpu: dict[str, list[float]] = {name: [] for name in SIDES}
    wall: dict[str, list[float]] = {name: [] for name in SIDES}
    routed: dict[str, bool] = {}
    with _stores(dsn) as stores:
        pids: dict[str, int] = {}
        for name, store in stores.items():
            for stream in streams:
                store.append(stream, [event(0)])
            _iterate(store, streams, 3 * STREAMS)  # every statement prepared
            with store.pool.connection() as conn:
                pids[name] = conn.info.backend_pid
            routed[name] = store._router.direct
        for round_ in range(rounds):
            order = SIDES[round_ % 3 :] + SIDES[: round_ % 3]
            for name in order:
                before = _cpu_seconds(pids[name])
                started = time.perf_counter()
                _iterate(stores[name], streams, iterations)
                wall[name].append((time.perf_counter() - started) / iterations)
                after = _cpu_seconds(pids[name])
                if before is not None and after is not None:
                    cpu[name].append((after - before) / iterations)
    assert routed == {
        "plain": False,
        "partitioned": True,
        "partitioned, through the parents": False,
    }, routed
    base_cpu = statistics.median(cpu["plain"]) if cpu["plain"] else None
    base_wall = statistics.median(wall["plain"])
    lines = [
        f"{iterations:,} iterations per side and round, medians of {rounds} rounds "
        f"({STREAMS} streams, {PARTITIONS} partitions; synchronous_commit off)",
        "",
        "| side | server CPU us / iteration | / plain | wall us / iteration | / plain |",
        "| --- | --- | --- | --- | --- |",
    ]
    for name in SIDES:
        per_wall = statistics.median(wall[name])
        if cpu[name] and base_cpu:
            per_cpu = statistics.median(cpu[name])
            cpu_cells = f"{per_cpu * 1e6:.1f} | {per_cpu / base_cpu:.2f}"
        else:
            cpu_cells = "- | -"
        lines.append(
            f"| {name} | {cpu_cells} | {per_wall * 1e6:.1f} | {per_wall / base_wall:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    run_probe(measure, __doc__.split("\n\n")[0], {"synchronous_commit": "off"})


if __name__ == "__main__":
    main()
