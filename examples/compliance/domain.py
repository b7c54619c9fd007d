"""The compliance domain: value objects, events and the `Document` aggregate."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime
from typing import Any

import attrs

from eventstore import Aggregate, Registry, applies

registry = Registry()
"""Every event and snapshot type of the compliance service."""


class Severity(enum.Enum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


@attrs.frozen
class Policy:
    """A policy a document is checked against."""

    policy_id: str
    title: str
    revision: int = 1


@attrs.frozen
class FeedbackItem:
    """A reviewer's comment on a document."""

    author: str
    comment: str
    submitted_at: datetime


@attrs.frozen
class Finding:
    """A compliance finding: which policy, how bad, and what was found."""

    finding_id: uuid.UUID
    policy: Policy
    severity: Severity
    summary: str


@registry.register("document.created", version=1)
@attrs.frozen
class DocumentCreated:
    title: str
    metadata: dict[str, str]


@registry.register("document.policy_repository_attached", version=1)
@attrs.frozen
class PolicyRepositoryAttached:
    policy_repository_id: str


@registry.register("document.finding_recorded", version=1)
@attrs.frozen
class FindingRecorded:
    finding: Finding


@registry.register("document.feedback_recorded", version=1)
@attrs.frozen
class FeedbackRecorded:
    item: FeedbackItem


@registry.register("document.approved", version=1)
@attrs.frozen
class DocumentApproved:
    approved_by: str
    approved_at: datetime


@registry.register("document", version=2)
@attrs.define
class Document(Aggregate):
    """A document under compliance review; its snapshot schema is at version 2."""

    title: str = ""
    metadata: dict[str, str] = attrs.field(factory=dict)
    policy_repository_id: str | None = None
    findings: list[Finding] = attrs.field(factory=list)
    feedback: list[FeedbackItem] = attrs.field(factory=list)
    approved_by: str | None = None

    @classmethod
    def create(cls, document_id: str, title: str, metadata: dict[str, str]) -> Document:
        document = cls(id=document_id)
        document.raise_event(DocumentCreated(title, dict(metadata)))
        return document

    def attach_policy_repository(self, policy_repository_id: str) -> None:
        self.raise_event(PolicyRepositoryAttached(policy_repository_id))

    def record_finding(self, policy: Policy, severity: Severity, summary: str) -> None:
        if self.approved_by is not None:
            raise ValueError("an approved document takes no new findings")
        self.raise_event(
            FindingRecorded(Finding(uuid.uuid4(), policy, severity, summary))
        )

    def add_feedback(self, item: FeedbackItem) -> None:
        self.raise_event(FeedbackRecorded(item))

    def approve(self, approved_by: str, at: datetime) -> None:
        if any(f.severity is Severity.HIGH for f in self.findings):
            raise ValueError(
                "a document with high-severity findings cannot be approved"
            )
        self.raise_event(DocumentApproved(approved_by, at))

    @applies(DocumentCreated)
    def _created(self, event: DocumentCreated) -> None:
        self.title = event.title
        self.metadata = dict(event.metadata)

    @applies(PolicyRepositoryAttached)
    def _attached(self, event: PolicyRepositoryAttached) -> None:
        self.policy_repository_id = event.policy_repository_id

    @applies(FindingRecorded)
    def _finding(self, event: FindingRecorded) -> None:
        self.findings.append(event.finding)

    @applies(FeedbackRecorded)
    def _feedback(self, event: FeedbackRecorded) -> None:
        self.feedback.append(event.item)

    @applies(DocumentApproved)
    def _approved(self, event: DocumentApproved) -> None:
        self.approved_by = event.approved_by


@registry.upcaster("document", from_version=1)
def _document_v1_to_v2(state: dict[str, Any]) -> dict[str, Any]:
    """
    Upcast a v1 document snapshot.

    Version 1 called the policy repository ``policy_repo`` and stored findings
    without a severity (every finding then was treated as medium); it had no
    feedback yet.
    """
    upgraded = dict(state)
    upgraded["policy_repository_id"] = upgraded.pop("policy_repo")
    upgraded["findings"] = [
        {**finding, "severity": finding.get("severity", "medium")}
        for finding in upgraded["findings"]
    ]
    upgraded.setdefault("feedback", [])
    return upgraded
