"""The compliance demo: what eventstore does for a host app, end to end."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventstore import CatchUpProgress, Snapshot, Subscription
from eventstore.postgres import PostgresEventStore
from examples.compliance import read_model
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
    repo: DocumentRepository, store: PostgresEventStore, documents: list[str]
) -> list[str]:
    """Create documents with findings, let snapshots be taken, and reload them; add their ids to *documents*."""
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
    documents += [document.id, *(other.id for other in others)]

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
    repo: DocumentRepository, store: PostgresEventStore, documents: list[str]
) -> list[str]:
    """Load a document through a snapshot written by the v1 schema; add its id to *documents*."""
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
    documents.append(legacy.id)
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


def concurrent_reviewers(repo: DocumentRepository, documents: list[str]) -> list[str]:
    """Let 10 reviewers add feedback to one document at the same moment; add its id to *documents*."""
    document = Document.create(
        f"review-{uuid.uuid4().hex[:8]}", "Travel policy 2027", {"owner": "hr"}
    )
    repo.create(document)
    documents.append(document.id)
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


@contextmanager
def following(subscription: Subscription) -> Iterator[None]:
    """Run *subscription* with ``run(stop)`` in a thread until the block ends; re-raise its failure."""
    stop = threading.Event()
    failures: list[Exception] = []

    def run() -> None:
        try:
            subscription.run(stop)
        except Exception as exc:  # re-raised below, in the demo's thread
            failures.append(exc)

    runner = threading.Thread(target=run, name=f"subscription {subscription.name}")
    runner.start()
    try:
        yield
    finally:
        stop.set()
        runner.join()
    if failures:
        raise DemoFailure(f"the subscription failed: {failures[0]!r}") from failures[0]


def approve_contract(repo: DocumentRepository, documents: list[str]) -> Document:
    """Approve the vendor contract: its findings are no longer open."""
    contract = next(
        document
        for document in map(repo.get, documents)
        if document.title == "Vendor contract template"
    )
    return repo.update(contract.id, lambda d: d.approve("legal", datetime.now(UTC)))


def per_policy_lines(counts: read_model.OpenFindings) -> list[str]:
    """Format the open findings per policy, a line each, in the policies' order."""
    ordered = sorted(counts.items(), key=lambda item: (len(item[0][0]), item[0][0]))
    id_width = max((len(policy_id) for (policy_id, _), _ in ordered), default=0)
    title_width = max((len(title) for (_, title), _ in ordered), default=0)
    lines = []
    for (policy_id, title), by_severity in ordered:
        severities = ", ".join(
            f"{by_severity[s.value]} {s.value}"
            for s in Severity
            if by_severity[s.value]
        )
        lines.append(
            f"  {policy_id:<{id_width}}  {title:<{title_width}}  "
            f"{by_severity.total()} open ({severities})"
        )
    return lines


def open_findings(
    repo: DocumentRepository,
    store: PostgresEventStore,
    findings: Subscription,
    documents: list[str],
    approved: Document,
) -> list[str]:
    """Catch the stopped subscription up, and check its read model against the aggregates."""
    live = findings.status().handled
    aggregates = [repo.get(document_id) for document_id in documents]
    events = sum(document.version for document in aggregates)
    rest = findings.catch_up()
    # The log shows an event once every older transaction has ended: one
    # still open elsewhere on the server holds the newest events back.
    deadline = time.monotonic() + 10.0
    while live + rest < events:
        if time.monotonic() > deadline:
            raise DemoFailure(
                f"the subscription saw {live + rest} of {events} events; "
                f"the log is held back by {findings.status().held_by}"
            )
        time.sleep(0.05)
        rest += findings.catch_up()
    counts = read_model.per_policy(store)
    expected = read_model.from_aggregates(aggregates)
    check(
        counts == expected,
        f"the read model {counts} agrees with the aggregates {expected}",
    )
    status = findings.status()
    check(status.events_behind == 0, f"the subscription is caught up: {status}")
    open_documents = sum(1 for d in aggregates if d.findings and d.approved_by is None)
    return [
        f"read model 'open findings per policy': table {store.schema}.{read_model.TABLE}, "
        f"kept by the transactional subscription {findings.name!r}",
        f"  approved '{approved.title}' ({len(approved.findings)} finding(s) closed), "
        "then the reviewers worked, while run(stop) followed the log in a thread",
        f"  run(stop) handled {live} event(s), the earlier ones included; after stop, "
        f"catch_up() handled {rest} more",
        *per_policy_lines(counts),
        f"  agrees with the aggregates: {sum(c.total() for c in counts.values())} open "
        f"finding(s) on {open_documents} document(s); {events} events in "
        f"{len(aggregates)} document streams, all handled",
    ]


def replay(store: PostgresEventStore, findings: Subscription) -> list[str]:
    """Reset the subscription and its table together, rebuild the table, and compare."""
    first = read_model.rows(store)
    findings.reset(on_reset=read_model.clear(store))
    emptied = len(read_model.rows(store))
    behind = findings.status().events_behind
    check(emptied == 0, "the reset emptied the table")
    reports: list[CatchUpProgress] = []
    rebuilt = findings.catch_up(progress=reports.append, progress_every=0.001)
    again = read_model.rows(store)
    check(
        rebuilt == behind, f"the replay handled the {behind} events behind: {rebuilt}"
    )
    check(again == first, "the rebuilt read model equals the first build")
    check(
        bool(reports) and (reports[-1].handled, reports[-1].remaining) == (rebuilt, 0),
        f"the last progress report is the replay's end: {reports}",
    )
    # The empty page that ends a catch-up reports too: the last report can
    # repeat the one before it.
    shown = [
        p
        for n, p in enumerate(reports)
        if n == 0 or p.handled != reports[n - 1].handled
    ]
    return [
        f"replay: reset(on_reset=...) emptied the table in the checkpoint's "
        f"transaction ({emptied} rows left, {behind} events behind); "
        f"catch_up(progress=...) rebuilt it:",
        *(
            f"  progress: {p.handled} handled, {p.remaining} remaining, "
            f"{p.events_per_second:,.0f} events/s"
            for p in shown
        ),
        f"  rebuilt from {rebuilt} events: {len(again)} rows, equal to the first "
        "build row for row",
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
        "--schema",
        help="PostgreSQL schema to use, new or empty (default: compliance_demo on "
        "the embedded server, a new compliance_demo_<8 hex digits> per run on "
        "EVENTSTORE_DSN's)",
    )
    args = parser.parse_args(argv)
    if args.schema is None:
        # The report checks this run's documents against the whole log and
        # read model: on a server of yours, each run writes a schema of its own.
        own_server = bool(os.environ.get("EVENTSTORE_DSN"))
        args.schema = (
            f"compliance_demo_{uuid.uuid4().hex[:8]}"
            if own_server
            else "compliance_demo"
        )

    with open_store(args.schema) as (store, where):
        progress(f"using {where}, schema {args.schema!r}; migrating")
        store.migrate()
        if store.read_all(limit=1):
            parser.error(
                f"schema {args.schema!r} already holds events (an earlier run's?): "
                "give --schema a new name, or drop that schema"
            )
        repo = DocumentRepository(store, registry)
        documents: list[str] = []  # every document this run creates
        report = [
            "eventstore compliance demo",
            f"store: {where} (schema {args.schema})",
        ]
        progress("creating documents and findings")
        report += documents_and_snapshots(repo, store, documents)
        progress("loading a snapshot written by schema version 1")
        report += upcast_v1_snapshot(repo, store, documents)
        progress("following the log with a transactional subscription, in a thread")
        read_model.create_table(store)
        # Small batches, so that the replay below reports its progress a few
        # times; a real read model keeps the default of 500.
        findings = read_model.subscription(store, batch_size=10)
        with following(findings):
            progress("approving a document")
            approved = approve_contract(repo, documents)
            progress(f"running {REVIEWERS} concurrent reviewers")
            report += concurrent_reviewers(repo, documents)
        progress("catching the read model up and checking it against the aggregates")
        report += open_findings(repo, store, findings, documents, approved)
        progress("replaying the read model from the start of the log")
        report += replay(store, findings)
        progress("serving the health endpoint")
        report += health_endpoint(store)
    print("\n".join(report))
    return 0
