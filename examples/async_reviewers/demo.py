"""The async reviewers example: several tasks update shared aggregates, and nothing is lost."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

from eventstore import AsyncEventStore, AsyncInMemoryEventStore
from examples.async_reviewers.service import (
    AsyncDocumentRepository,
    ReviewService,
    Tally,
    reviewer,
)
from examples.compliance.domain import Document, FeedbackRecorded, registry

TITLES = [
    "Travel policy 2027",
    "Vendor contract template",
    "Incident response runbook",
    "Remote work guidelines",
    "Data retention schedule",
]


class DemoFailure(RuntimeError):
    """Something the example shows did not hold."""


def check(condition: bool, message: str) -> None:
    """Stop the example with *message* unless *condition* holds (asserts vanish under -O)."""
    if not condition:
        raise DemoFailure(message)


def progress(message: str) -> None:
    """Tell the person running the example what is happening, on stderr."""
    print(f"[async-reviewers] {message}", file=sys.stderr, flush=True)


@contextmanager
def counting_conflicts() -> Iterator[list[logging.LogRecord]]:
    """Collect the conflicts `AsyncRepository.update` logs, instead of printing them."""
    records: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            # A conflict's record carries its attempt; a failed snapshot's does not.
            if hasattr(record, "attempt"):
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


async def feedback_events(store: AsyncEventStore, stream_id: str) -> int:
    """Count the feedback events of one stream, read straight from the store."""
    feedback_type = registry.type_name_of(FeedbackRecorded)
    count = 0
    async for event in store.read_stream(stream_id):
        if event.type == feedback_type:
            count += 1
    return count


async def review_round(
    store: AsyncEventStore, where: str, *, reviewers: int, documents: int
) -> list[str]:
    """Open *documents*, let *reviewers* tasks review each of them at once, and report."""
    repo = AsyncDocumentRepository(store, registry)
    service = ReviewService(repo)
    run = uuid.uuid4().hex[:8]  # a rerun on the same schema gets documents of its own
    titles = {f"review-{run}-{n}": TITLES[n % len(TITLES)] for n in range(documents)}
    for document_id, title in titles.items():
        await service.open_document(document_id, title)
    ids = list(titles)

    progress(f"{reviewers} reviewer tasks on {documents} documents")
    tally = Tally()
    with counting_conflicts() as conflicts:
        async with asyncio.TaskGroup() as group:
            for number in range(reviewers):
                group.create_task(reviewer(service, f"reviewer-{number}", ids, tally))

    finals: list[Document] = [await repo.get(document_id) for document_id in ids]
    recorded = sum(len(document.feedback) for document in finals)
    in_streams = [
        await feedback_events(store, repo.stream_id(document_id)) for document_id in ids
    ]
    submitted = reviewers * documents
    # The last conflict of an update that gave up is logged too, and not retried.
    retried = len(conflicts) - len(tally.gave_up)

    check(len(tally.done) + len(tally.gave_up) == submitted, "every review ended")
    check(recorded == len(tally.done), "every review done is in the aggregates")
    check(sum(in_streams) == recorded, "the streams hold what the aggregates show")
    report = [
        "eventstore async reviewers",
        f"store: {type(store).__name__}, {where}",
        f"reviews: {reviewers} reviewer(s) x {documents} document(s) = {submitted} "
        "submitted concurrently",
        f"updates: {len(tally.done)} done, {len(tally.gave_up)} gave up; "
        f"{retried} conflict(s) retried by reloading and reviewing again",
        "final state:",
    ]
    for document in finals:
        items = len(document.feedback)
        numbers = [item.comment for item in document.feedback]
        check(
            numbers == [f"comment #{n}" for n in range(1, items + 1)],
            f"{document.id}: each review was numbered on fresh state: {numbers}",
        )
        done_here = sorted(name for name, doc in tally.done if doc == document.id)
        check(
            sorted(item.author for item in document.feedback) == done_here,
            f"{document.id}: exactly the reviews done are recorded",
        )
        report.append(
            f"  {document.id} {document.title!r}: version {document.version}, "
            f"{items} feedback item(s), numbered 1-{items}"
        )
    report.append(
        f"nothing lost: {len(tally.done)} reviews done, {recorded} recorded in the "
        f"aggregates, {sum(in_streams)} feedback events in the streams"
    )
    health = await store.health()
    report.append(f"health: {health.status.value}")
    return report


async def on_postgres(
    dsn: str, where: str, schema: str, *, reviewers: int, documents: int
) -> list[str]:
    """Run the review round on an `AsyncPostgresEventStore` in *schema*."""
    from eventstore.postgres import AsyncPostgresEventStore  # noqa: PLC0415 - not for --memory

    # The store's pool opens at its first call, migrate(), on this loop.
    async with AsyncPostgresEventStore(dsn, schema=schema) as store:
        await store.migrate()
        report = await review_round(
            store,
            f"{where} (schema {schema})",
            reviewers=reviewers,
            documents=documents,
        )
    return report


async def in_memory(*, reviewers: int, documents: int) -> list[str]:
    """Run the review round on an `AsyncInMemoryEventStore`."""
    async with AsyncInMemoryEventStore() as store:
        return await review_round(
            store, "in this process", reviewers=reviewers, documents=documents
        )


def positive(text: str) -> int:
    """Parse a count of at least 1, for argparse."""
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Run the example and print its report."""
    parser = argparse.ArgumentParser(
        prog="python -m examples.async_reviewers", description=__doc__
    )
    parser.add_argument(
        "--memory",
        action="store_true",
        help="use AsyncInMemoryEventStore instead of PostgreSQL",
    )
    parser.add_argument(
        "--schema", default="async_reviewers", help="PostgreSQL schema to use"
    )
    parser.add_argument("--reviewers", type=positive, default=8, help="reviewer tasks")
    parser.add_argument(
        "--documents", type=positive, default=3, help="documents they all review"
    )
    args = parser.parse_args(argv)
    sizes = {"reviewers": args.reviewers, "documents": args.documents}

    if args.memory:
        report = asyncio.run(in_memory(**sizes))
    elif dsn := os.environ.get("EVENTSTORE_DSN"):
        where = "the PostgreSQL server in EVENTSTORE_DSN"
        report = asyncio.run(on_postgres(dsn, where, args.schema, **sizes))
    else:
        from eventstore.testing.postgres_server import EmbeddedServer  # noqa: PLC0415 - only without a DSN

        progress("starting an embedded PostgreSQL (set EVENTSTORE_DSN to use your own)")
        # Started before the event loop: starting it blocks for a second or two.
        with EmbeddedServer.start() as server:
            where = "an embedded PostgreSQL started for this run"
            report = asyncio.run(on_postgres(server.dsn, where, args.schema, **sizes))
    print("\n".join(report))
    return 0
