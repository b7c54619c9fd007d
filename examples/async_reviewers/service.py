"""The review service: one coroutine per review, through an `AsyncRepository`."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime

import attrs

from eventstore import AsyncRepository, ConcurrencyError, RetryPolicy
from examples.compliance.domain import Document, FeedbackItem


class AsyncDocumentRepository(AsyncRepository[Document]):
    aggregate_type = Document
    stream_prefix = "document"
    snapshot_every = 10
    # Every reviewer works on every document, so saves collide often; each
    # retry reloads the document and runs the review again. 10 retries,
    # 10 ms doubling up to 200 ms, with jitter so the losers spread out.
    retry_policy = RetryPolicy(max_retries=10, base_delay=0.01, max_delay=0.2)


@attrs.define
class ReviewService:
    """What a request handler would call; no web framework needed to show it."""

    repo: AsyncDocumentRepository
    max_lookup: float = 0.005
    """Most seconds the policy lookup inside a review takes."""

    async def open_document(self, document_id: str, title: str) -> None:
        """Put a new document up for review."""
        await self.repo.create(Document.create(document_id, title, {"owner": "hr"}))

    async def submit_review(self, document_id: str, reviewer: str) -> Document:
        """
        Add *reviewer*'s feedback to the document, numbered in the order saved.

        The number is decided from the state the review runs on; a conflict
        makes `AsyncRepository.update` reload and run the review again, so
        the numbers come out 1, 2, 3 … whatever the interleaving.

        Raises:
            ConcurrencyError: Still conflicting after the retry policy's attempts.
        """

        async def review(document: Document) -> None:
            number = len(document.feedback) + 1
            # The service awaits another system (a policy lookup) between
            # loading and saving: other reviewers' saves land meanwhile.
            await asyncio.sleep(random.uniform(0, self.max_lookup))
            document.add_feedback(
                FeedbackItem(reviewer, f"comment #{number}", datetime.now(UTC))
            )

        return await self.repo.update(document_id, review)


@attrs.define
class Tally:
    """What the reviewer tasks did."""

    done: list[tuple[str, str]] = attrs.field(factory=list)
    gave_up: list[tuple[str, str]] = attrs.field(factory=list)


async def reviewer(
    service: ReviewService, name: str, document_ids: list[str], tally: Tally
) -> None:
    """Review every document once, in an order of this reviewer's own."""
    for document_id in random.sample(document_ids, len(document_ids)):
        try:
            await service.submit_review(document_id, name)
        except ConcurrencyError:
            tally.gave_up.append((name, document_id))
        else:
            tally.done.append((name, document_id))
