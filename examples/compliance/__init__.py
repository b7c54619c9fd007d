"""
A document-compliance service in miniature, on eventstore.

Run it with ``python -m examples.compliance``: it starts an embedded
PostgreSQL (or uses ``EVENTSTORE_DSN``), and walks through documents,
findings, snapshots, a v1 snapshot upcast to the current schema, concurrent
reviewers, an "open findings per policy" read model kept by a transactional
subscription (checked against the aggregates, then replayed), and a health
endpoint.
"""
