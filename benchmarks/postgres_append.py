"""
Single-writer append throughput of PostgresEventStore next to a raw psycopg INSERT.

Starts an embedded PostgreSQL (fsync and synchronous_commit on), then runs
interleaved chunks of: a raw autocommit one-row prepared INSERT into a table
with the events' columns, `append` with an int expected version, and `append`
with ExpectedVersion.ANY. Prints the median rate of each and its ratio to the
raw INSERT. Run: ``python benchmarks/postgres_append.py [chunks]``.
"""

from __future__ import annotations

import statistics
import sys
import time
import uuid

import psycopg

from eventstore import NewEvent
from eventstore.postgres import PoolConfig, PostgresEventStore
from eventstore.testing.postgres_server import EmbeddedServer

CHUNK = 200

RAW_TABLE = (
    "CREATE TABLE raw (position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,"
    " stream_id text NOT NULL, version bigint NOT NULL, event_id uuid NOT NULL,"
    " type text NOT NULL, schema_version int NOT NULL, data jsonb NOT NULL,"
    " metadata jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT now())"
)
RAW_INSERT = (
    "INSERT INTO raw (stream_id, version, event_id, type, schema_version, data, metadata)"
    " VALUES (%s, %s, %s, %s, %s, %s::jsonb, %s::jsonb)"
)


def main(chunks: int) -> None:
    with EmbeddedServer.start({"synchronous_commit": "on"}) as server:
        store = PostgresEventStore(
            server.dsn, schema="bench", pool_config=PoolConfig(min_size=1, max_size=1)
        )
        store.migrate()
        conn = psycopg.connect(server.dsn, autocommit=True)
        conn.execute(RAW_TABLE)
        counters = {"raw": 0, "exact": 0}

        def raw() -> None:
            for _ in range(CHUNK):
                counters["raw"] += 1
                conn.execute(
                    RAW_INSERT,
                    ("s", counters["raw"], uuid.uuid4(), "t", 1, '{"a":1}', "{}"),
                    prepare=True,
                )

        def exact() -> None:
            for _ in range(CHUNK):
                store.append(
                    "s", [NewEvent("t", {"a": 1})], expected_version=counters["exact"]
                )
                counters["exact"] += 1

        def any_version() -> None:
            for i in range(CHUNK):
                store.append(f"a{i % 50}", [NewEvent("t", {"a": 1})])

        runs = {
            "raw INSERT": raw,
            "append(expected=int)": exact,
            "append(ANY)": any_version,
        }
        for run in runs.values():  # warm up: connections, prepared statements
            run()
        rates: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(chunks):
            for name, run in runs.items():
                started = time.perf_counter()
                run()
                rates[name].append(CHUNK / (time.perf_counter() - started))
        base = statistics.median(rates["raw INSERT"])
        for name, measured in rates.items():
            median = statistics.median(measured)
            print(f"{name:22s} {median:6.0f}/s  {median / base:.2f}x raw")
        conn.close()
        store.close()


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 30)
