"""Every statement of the store has a generic plan that uses an index, on both layouts."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import attrs
import psycopg
import pytest

from eventstore.postgres import PostgresEventStore

pytestmark = pytest.mark.postgres

_PLACEHOLDER = re.compile(r"%(?:\((\w+)\))?[sb]")


def numbered(statement: bytes) -> str:
    """Turn psycopg placeholders into $n, one number per distinct name."""
    numbers: dict[str, str] = {}

    def replace(match: re.Match[str]) -> str:
        key = match.group(1) or f"_{match.start()}"
        if key not in numbers:
            numbers[key] = f"${len(numbers) + 1}"
        return numbers[key]

    return _PLACEHOLDER.sub(replace, statement.decode())


def _fields(prefix: str, compiled: Any) -> Iterator[tuple[str, bytes]]:
    for field in attrs.fields(type(compiled)):
        value = getattr(compiled, field.name)
        if isinstance(value, bytes):
            yield prefix + field.name, value
        elif field.name == "append":
            for key, (text, _) in value.items():
                yield f"{prefix}append {key}", text


def statements(store: PostgresEventStore) -> Iterator[tuple[str, bytes]]:
    compiled = store._sql
    yield from _fields("", compiled)
    yield from _fields("stream ", compiled.stream)
    # On a partitioned schema, the statements the store sends to a stream's
    # own partitions too.
    store.stream_version("settles-the-routing")
    routed = store._router.for_stream("s")
    if routed is not compiled.stream:
        yield from _fields("routed ", routed)


@pytest.mark.parametrize("partitions", [None, 8], ids=["plain", "partitioned"])
def test_generic_plans_never_scan_a_whole_store_table(
    postgres_dsn: str, postgres_schema: str, partitions: int | None
) -> None:
    # The store's connections use plan_cache_mode=force_generic_plan, so
    # this plan, made with no parameter values and on empty tables, is the
    # one every call runs.
    with PostgresEventStore(
        postgres_dsn, schema=postgres_schema, partitions=partitions
    ) as store:
        store.migrate()
        with store.pool.connection() as conn:
            row = conn.execute("SHOW plan_cache_mode").fetchone()
            assert row == ("force_generic_plan",)
        checked = 0
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            for name, statement in statements(store):
                plan = conn.execute(
                    "EXPLAIN (GENERIC_PLAN) " + numbered(statement)
                ).fetchall()
                scans = [
                    line
                    for (line,) in plan
                    if "Seq Scan" in line
                    and re.search(r"\b(events|streams|snapshots)(_p\d+)?\b", line)
                ]
                assert not scans, (name, scans)
                checked += 1
        assert checked >= (60 if partitions else 30)
