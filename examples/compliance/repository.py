"""The document repository of the compliance service."""

from eventstore import Repository, RetryPolicy
from examples.compliance.domain import Document


class DocumentRepository(Repository[Document]):
    aggregate_type = Document
    stream_prefix = "document"
    snapshot_every = 10
    retry_policy = RetryPolicy()  # the default: 3 retries, 50/100/200 ms with jitter
