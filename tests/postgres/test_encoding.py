"""Text comes back as str on a database whose encoding is SQL_ASCII."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql

from eventstore import NewEvent, Snapshot
from eventstore.postgres import PostgresEventStore
from eventstore.testing.logwait import wait_for_position

pytestmark = pytest.mark.postgres


@pytest.fixture
def sql_ascii_dsn(postgres_dsn: str) -> Iterator[str]:
    """A throwaway database with encoding SQL_ASCII, as initdb makes under a C locale."""
    name = f"es_ascii_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_dsn, autocommit=True) as admin:
        admin.execute(
            sql.SQL(
                "CREATE DATABASE {} ENCODING 'SQL_ASCII' LC_COLLATE 'C' LC_CTYPE 'C' "
                "TEMPLATE template0"
            ).format(sql.Identifier(name))
        )
    try:
        yield psycopg.conninfo.make_conninfo(postgres_dsn, dbname=name)
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_a_sql_ascii_database_reads_back_str_and_json(sql_ascii_dsn: str) -> None:
    with psycopg.connect(sql_ascii_dsn) as probe:
        assert probe.info.encoding == "ascii"  # psycopg would hand over bytes
    data = {"title": "Zoë's report", "pages": [1, 2.5]}
    with PostgresEventStore(sql_ascii_dsn) as store:
        store.migrate()
        store.append("doc-ü", [NewEvent("doc.created", data, {"by": "Zoë"})])
        store.save_snapshot(Snapshot("doc-ü", 1, "doc", 1, {"title": "Zoë"}))
        (event,) = store.read_stream("doc-ü")
        wait_for_position(store, event.position, timeout=30)
        (logged,) = store.read_all()
        loaded = store.load("doc-ü")
    assert (event.stream_id, event.type) == ("doc-ü", "doc.created")
    assert event.data == data == logged.data
    assert event.metadata == {"by": "Zoë"}
    assert loaded.snapshot is not None
    assert loaded.snapshot.state == {"title": "Zoë"}
