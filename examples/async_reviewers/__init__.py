"""
Reviewers on asyncio: concurrent updates through an `AsyncRepository`, none lost.

Run it with ``python -m examples.async_reviewers``: it starts an embedded
PostgreSQL (or uses ``EVENTSTORE_DSN``; ``--memory`` runs it on
`AsyncInMemoryEventStore`), lets several reviewer tasks add feedback to the
same documents at once, and reports the updates, the conflicts retried, and
the final state. The domain is the compliance example's `Document`.
"""
