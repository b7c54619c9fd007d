"""Types the serialization tests share: a v3 Document aggregate and its history."""

from __future__ import annotations

import datetime as dt
import enum
import uuid
from decimal import Decimal
from typing import Any

import attrs

from eventstore.serialization import TRANSIENT, Registry


class Status(enum.Enum):
    DRAFT = "draft"
    IN_REVIEW = "in_review"
    APPROVED = "approved"


class Severity(enum.IntEnum):
    LOW = 1
    HIGH = 2


@attrs.frozen
class Author:
    name: str
    email: str | None = None


@attrs.frozen
class Finding:
    code: str
    severity: Severity
    note: str = ""


@attrs.frozen
class Money:
    amount: Decimal
    currency: str


@attrs.define
class Document:
    """The test aggregate's snapshot state, schema version 3."""

    id: uuid.UUID
    name: str  # v1 and v2 called it "title"
    author: Author  # v1 stored a plain name
    status: Status  # new in v3
    findings: tuple[Finding, ...] = ()
    budget: Money | None = None
    reviewed_at: dt.datetime | None = None
    pending: list[Any] = attrs.field(factory=list, metadata={TRANSIENT: True})


@attrs.frozen
class DocumentCreated:
    document_id: uuid.UUID
    name: str
    created_at: dt.datetime


def build_registry() -> Registry:
    """Build the registry of the v3 code, with upcasters for v1 and v2 payloads."""
    registry = Registry()
    registry.add(Document, "document", version=3)
    registry.add(DocumentCreated, "document.created", version=1)

    @registry.upcaster("document", from_version=1)
    def author_becomes_value_object(data: dict[str, Any]) -> dict[str, Any]:
        data["author"] = {"name": data["author"], "email": None}
        return data

    @registry.upcaster("document", from_version=2)
    def title_renamed_and_status_added(data: dict[str, Any]) -> dict[str, Any]:
        data["name"] = data.pop("title")
        data["status"] = "in_review" if data.get("findings") else "draft"
        return data

    @registry.upcaster("doc.created", from_version=1, rename_to="document.created")
    def old_event_name(data: dict[str, Any]) -> dict[str, Any]:
        data["name"] = data.pop("title")
        return data

    return registry
