"""
The "open findings per policy" read model, kept by a transactional subscription.

A finding is open until its document is approved. The read model is one
table in the demo's schema, ``open_findings``, with a row per open finding;
the subscription's handler writes it through the connection it is given,
in the transaction that also moves the subscription's checkpoint, so each
event changes the table exactly once, even across crashes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from eventstore import Delivery, RecordedEvent, Subscription
from eventstore.postgres import PostgresEventStore
from examples.compliance.domain import (
    Document,
    DocumentApproved,
    FindingRecorded,
    registry,
)
from examples.compliance.repository import DocumentRepository

TABLE = "open_findings"
SUBSCRIPTION = "open-findings"

OpenFindings = dict[tuple[str, str], Counter[str]]
"""``(policy_id, policy title) -> severity -> open findings``."""

_FINDING_RECORDED = registry.type_name_of(FindingRecorded)
_APPROVED = registry.type_name_of(DocumentApproved)
_STREAM_PREFIX = f"{DocumentRepository.stream_prefix}-"


def _table(store: PostgresEventStore) -> sql.Identifier:
    return sql.Identifier(store.schema, TABLE)


def create_table(store: PostgresEventStore) -> None:
    """Create the read model's table in the store's schema, if it is not there yet."""
    # The primary key leads with the document: an approval deletes by it.
    statement = sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} ("
        " document_id text NOT NULL,"
        " finding_id uuid NOT NULL,"
        " policy_id text NOT NULL,"
        " policy_title text NOT NULL,"
        " severity text NOT NULL,"
        " PRIMARY KEY (document_id, finding_id))"
    ).format(_table(store))
    with store.pool.connection() as conn:
        conn.execute(statement)


def subscription(
    store: PostgresEventStore, *, batch_size: int = 500, poll_interval: float = 0.5
) -> Subscription:
    """Return the subscription that keeps the table, transactional, over the document streams."""
    table = _table(store)
    insert = sql.SQL(
        "INSERT INTO {} (document_id, finding_id, policy_id, policy_title, severity) "
        "VALUES (%s, %s, %s, %s, %s)"
    ).format(table)
    close = sql.SQL("DELETE FROM {} WHERE document_id = %s").format(table)

    def project(events: Sequence[RecordedEvent], conn: psycopg.Connection[Any]) -> None:
        # Plain INSERTs, no ON CONFLICT: delivery is exactly once, so a
        # finding seen twice would be a bug, and it fails the batch loudly.
        with conn.cursor() as cursor:
            for event in events:
                if event.type not in (_FINDING_RECORDED, _APPROVED):
                    continue
                document_id = event.stream_id.removeprefix(_STREAM_PREFIX)
                decoded = registry.decode(event.type, event.schema_version, event.data)
                if isinstance(decoded, FindingRecorded):
                    finding = decoded.finding
                    cursor.execute(
                        insert,
                        (
                            document_id,
                            finding.finding_id,
                            finding.policy.policy_id,
                            finding.policy.title,
                            finding.severity.value,
                        ),
                    )
                else:  # approved: every finding of the document is closed
                    cursor.execute(close, (document_id,))

    return Subscription(
        store,
        SUBSCRIPTION,
        project,
        # Every document event, not only the two the handler uses: the
        # runner's count can then be checked against the streams' versions.
        stream_prefix=_STREAM_PREFIX,
        delivery=Delivery.TRANSACTIONAL,
        batch_size=batch_size,
        poll_interval=poll_interval,
    )


def clear(store: PostgresEventStore) -> Callable[[psycopg.Connection[Any]], None]:
    """Return the ``on_reset`` hook that empties the table, in the reset's transaction."""
    statement = sql.SQL("DELETE FROM {}").format(_table(store))

    def on_reset(conn: psycopg.Connection[Any]) -> None:
        conn.execute(statement)

    return on_reset


def rows(store: PostgresEventStore) -> list[tuple[Any, ...]]:
    """Return every row of the table, in key order."""
    query = sql.SQL(
        "SELECT document_id, finding_id, policy_id, policy_title, severity "
        "FROM {} ORDER BY document_id, finding_id"
    ).format(_table(store))
    with store.pool.connection() as conn:
        found: list[tuple[Any, ...]] = conn.execute(query).fetchall()
    return found


def per_policy(store: PostgresEventStore) -> OpenFindings:
    """Read the open findings per policy and severity from the table."""
    query = sql.SQL(
        "SELECT policy_id, policy_title, severity, count(*) FROM {} "
        "GROUP BY policy_id, policy_title, severity"
    ).format(_table(store))
    with store.pool.connection() as conn:
        found = conn.execute(query).fetchall()
    counts: OpenFindings = {}
    for policy_id, title, severity, count in found:
        counts.setdefault((policy_id, title), Counter())[severity] = count
    return counts


def from_aggregates(documents: Iterable[Document]) -> OpenFindings:
    """Count the open findings per policy and severity from the aggregates themselves."""
    counts: OpenFindings = {}
    for document in documents:
        if document.approved_by is not None:
            continue
        for finding in document.findings:
            key = (finding.policy.policy_id, finding.policy.title)
            counts.setdefault(key, Counter())[finding.severity.value] += 1
    return counts
