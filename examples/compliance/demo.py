"""The compliance demo: what eventstore does for a host app, end to end."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventstore import Snapshot
from eventstore.postgres import PostgresEventStore
from examples.compliance.domain import (
    Document,
    FeedbackItem,
    Finding,
    FindingRecorded,
    Policy,
    Severity,
    registry,
)
from examples.compliance.health import serve_health
from examples.compliance.repository import DocumentRepository

V1_SNAPSHOT = Path(__file__).parent / "data" / "document_snapshot_v1.json"
REVIEWERS = 10

POLICIES = [
    Policy("POL-7", "Data retention"),
    Policy("POL-12", "Access reviews", revision=2),
    Policy("POL-31", "Encryption at rest"),
]


class DemoFailure(RuntimeError):
    """Something the demo shows did not hold."""


def check(condition: bool, message: str) -> None:
    """Stop the demo with *message* unless *condition* holds (asserts vanish under -O)."""
    if not condition:
        raise DemoFailure(message)


def progress(message: str) -> None:
    """Tell the person running the demo what is happening, on stderr."""
    print(f"[demo] {message}", file=sys.stderr, flush=True)


@contextmanager
def open_store(schema: str) -> Iterator[tuple[PostgresEventStore, str]]:
    """Open a store on EVENTSTORE_DSN, or on an embedded PostgreSQL started for the demo."""
    dsn = os.environ.get("EVENTSTORE_DSN")
    if dsn:
        with PostgresEventStore(dsn, schema=schema) as store:
            yield store, "the PostgreSQL server in EVENTSTORE_DSN"
        return
    from eventstore.testing.postgres_server import EmbeddedServer  # noqa: PLC0415 - only without a DSN

    progress("starting an embedded PostgreSQL (set EVENTSTORE_DSN to use your own)")
    with (
        EmbeddedServer.start() as server,
        PostgresEventStore(server.dsn, schema=schema) as store,
    ):
        yield store, "an embedded PostgreSQL started for this run"


@contextmanager
def counting_conflicts() -> Iterator[list[logging.LogRecord]]:
    """Collect the repository's conflict warnings instead of printing them."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    logger = logging.getLogger("eventstore.repository")
    handler = Collect(logging.WARNING)
    logger.addHandler(handler)
    propagate, logger.propagate = logger.propagate, False
    try:
        yield records
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate


def documents_and_snapshots(
    repo: DocumentRepository, store: PostgresEventStore
) -> list[str]:
    """Create documents with findings, let snapshots be taken, and reload them."""
    now = datetime.now(UTC)
    document = Document.create(
        f"policy-{uuid.uuid4().hex[:8]}",
        "Q3 information security policy",
        {"owner": "security", "classification": "confidential", "language": "en"},
    )
    document.attach_policy_repository("policies-main")
    repo.create(document)
    for round_number in range(4):
        for policy in POLICIES:
            document.record_finding(
                policy,
                Severity.MEDIUM,
                f"review {round_number}: {policy.title} unclear",
            )
        repo.save(document)
    document.add_feedback(FeedbackItem("legal", "Retention wording approved", now))
    repo.save(document)

    others = []
    for title in ("Vendor contract template", "Incident response runbook"):
        other = Document.create(f"doc-{uuid.uuid4().hex[:8]}", title, {"owner": "ops"})
        other.record_finding(POLICIES[2], Severity.LOW, "Key rotation not described")
        repo.create(other)
        others.append(other)

    stream_id = repo.stream_id(document.id)
    snapshot = store.load_snapshot(stream_id)
    if snapshot is None:  # check() would not narrow the type for mypy
        raise DemoFailure("a snapshot is taken every 10 events")
    loaded = repo.get(document.id)
    tail = loaded.version - snapshot.version
    check(
        loaded == document, "state after the snapshot round trip equals the live object"
    )
    check(loaded.metadata == document.metadata, "metadata survived the snapshot")
    check(
        loaded.policy_repository_id == "policies-main",
        "the policy repository id survived",
    )
    check(loaded.findings == document.findings, "every finding survived")
    return [
        f"documents: {1 + len(others)} created, {document.version + len(others) * 2} events",
        f"snapshot round trip: '{loaded.title}' at version {loaded.version} loaded from the "
        f"snapshot at version {snapshot.version} plus {tail} event(s)",
        f"  metadata kept: {json.dumps(loaded.metadata, sort_keys=True)}",
        f"  policy repository id kept: {loaded.policy_repository_id}",
        f"  findings kept: {len(loaded.findings)} of {len(document.findings)}, feedback kept: {len(loaded.feedback)}",
    ]


def upcast_v1_snapshot(
    repo: DocumentRepository, store: PostgresEventStore
) -> list[str]:
    """Load a document through a snapshot written by the v1 schema."""
    stored = json.loads(V1_SNAPSHOT.read_text(encoding="utf-8"))
    state = stored["state"]
    # The events the v1 release had stored for this document.
    legacy = Document.create(state["id"], state["title"], state["metadata"])
    legacy.attach_policy_repository(state["policy_repo"])
    for finding in state["findings"]:
        policy = Policy(**finding["policy"])
        legacy.raise_event(
            FindingRecorded(
                Finding(
                    uuid.UUID(finding["finding_id"]),
                    policy,
                    Severity.MEDIUM,
                    finding["summary"],
                )
            )
        )
    repo.create(legacy)
    store.save_snapshot(
        Snapshot(
            **{
                key: stored[key]
                for key in ("stream_id", "version", "type", "schema_version", "state")
            }
        )
    )

    with counting_conflicts() as warnings:
        loaded = repo.get(legacy.id)
    replayed = DocumentRepository(store, registry, snapshot_every=None).get(legacy.id)
    check(not warnings, "the v1 snapshot was used, not skipped")
    check(loaded == replayed == legacy, "the upcast snapshot gives the replayed state")
    upcast = registry.from_snapshot(store.load_snapshot(repo.stream_id(legacy.id)))  # type: ignore[arg-type]  # saved just above
    return [
        f"v1 snapshot upcast: schema 1 -> {registry.schema_version_of('document')}, "
        f"'policy_repo' -> policy_repository_id={upcast.policy_repository_id!r}, "
        f"{len(upcast.findings)} findings given severity "
        f"{', '.join(sorted({f.severity.value for f in upcast.findings}))}; equal to a full replay",
    ]


def concurrent_reviewers(repo: DocumentRepository) -> list[str]:
    """Let 10 reviewers add feedback to one document at the same moment."""
    document = Document.create(
        f"review-{uuid.uuid4().hex[:8]}", "Travel policy 2027", {"owner": "hr"}
    )
    repo.create(document)
    barrier = threading.Barrier(REVIEWERS)
    failures: list[BaseException] = []

    def review(number: int) -> None:
        barrier.wait()
        item = FeedbackItem(
            f"reviewer-{number}", f"comment {number}", datetime.now(UTC)
        )
        try:
            repo.update(document.id, lambda d: d.add_feedback(item))
        except Exception as exc:  # reported below: the demo must show any lost review
            failures.append(exc)

    with counting_conflicts() as conflicts:
        threads = [threading.Thread(target=review, args=(n,)) for n in range(REVIEWERS)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    final = repo.get(document.id)
    authors = sorted(item.author for item in final.feedback)
    check(not failures, f"reviews failed: {failures}")
    check(
        authors == sorted(f"reviewer-{n}" for n in range(REVIEWERS)),
        "no review was lost",
    )
    return [
        f"concurrent reviewers: {REVIEWERS} submitted, {len(final.feedback)} recorded, "
        f"{len(conflicts)} conflict(s) retried by reloading, none lost",
    ]


def health_endpoint(store: PostgresEventStore) -> list[str]:
    """Serve the store's health over HTTP and fetch it once."""
    with (
        serve_health(store) as url,
        urllib.request.urlopen(url, timeout=10) as response,  # noqa: S310 - our own 127.0.0.1 server
    ):
        status = response.status
        body: dict[str, Any] = json.loads(response.read())
    check(body["status"] in {"ok", "degraded"}, f"the store is healthy: {body}")
    expected_pool = {
        "size",
        "available",
        "in_use",
        "waiting",
        "utilization_pct",
        "timeouts",
    }
    check(set(body["pool"]) >= expected_pool, f"the pool metrics are reported: {body}")
    return [f"health: GET {url} -> {status}", f"  {json.dumps(body, sort_keys=True)}"]


def main(argv: list[str] | None = None) -> int:
    """Run the demo and print its report."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.compliance", description=__doc__
    )
    parser.add_argument(
        "--schema", default="compliance_demo", help="PostgreSQL schema to use"
    )
    args = parser.parse_args(argv)

    with open_store(args.schema) as (store, where):
        progress(f"using {where}, schema {args.schema!r}; migrating")
        store.migrate()
        repo = DocumentRepository(store, registry)
        report = [
            "eventstore compliance demo",
            f"store: {where} (schema {args.schema})",
        ]
        progress("creating documents and findings")
        report += documents_and_snapshots(repo, store)
        progress("loading a snapshot written by schema version 1")
        report += upcast_v1_snapshot(repo, store)
        progress(f"running {REVIEWERS} concurrent reviewers")
        report += concurrent_reviewers(repo)
        progress("serving the health endpoint")
        report += health_endpoint(store)
    print("\n".join(report))
    return 0
