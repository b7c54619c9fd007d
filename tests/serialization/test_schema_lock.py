from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import attrs
import pytest

from eventstore.serialization import Registry
from eventstore.testing.serialization import UPDATE_SCHEMA_LOCK_ENV, assert_schema_lock

from .models import build_registry


@attrs.frozen
class InvoiceV1:
    number: str
    total: int


@attrs.frozen
class InvoiceAdded:
    number: str
    total: int
    currency: str = "EUR"


@attrs.frozen
class InvoiceRemoved:
    number: str


@attrs.frozen
class InvoiceRetyped:
    number: str
    total: str


def registry_with(cls: type, version: int = 1, *, upcaster: bool = False) -> Registry:
    registry = Registry()
    registry.add(cls, "invoice", version=version)
    if upcaster:
        for from_version in range(1, version):
            registry.upcaster("invoice", from_version=from_version)(_identity)
    return registry


def _identity(data: dict[str, Any]) -> dict[str, Any]:
    return data


@pytest.fixture
def lock(tmp_path: Path) -> Path:
    path = tmp_path / "schema.lock.json"
    assert_schema_lock(registry_with(InvoiceV1), path)  # written: it was missing
    return path


def test_missing_lock_file_is_written(lock: Path) -> None:
    written = json.loads(lock.read_text())
    assert written["eventstore_schema_lock"] == 1
    assert written["types"]["invoice"]["schema_version"] == 1
    assert [f["name"] for f in written["types"]["invoice"]["fields"]] == [
        "number",
        "total",
    ]


def test_unchanged_registry_passes(lock: Path) -> None:
    assert_schema_lock(registry_with(InvoiceV1), lock)


def test_added_field_without_version_bump_fails(lock: Path) -> None:
    with pytest.raises(AssertionError) as info:
        assert_schema_lock(registry_with(InvoiceAdded), lock)
    message = str(info.value)
    assert "'invoice': shape changed but schema version is still 1" in message
    assert "added field currency: str (has default)" in message
    assert '+      "name": "currency",' in message  # the unified diff


def test_removed_field_without_version_bump_fails(lock: Path) -> None:
    with pytest.raises(
        AssertionError, match="shape changed but schema version is still 1"
    ) as info:
        assert_schema_lock(registry_with(InvoiceRemoved), lock)
    assert "removed field total: int" in str(info.value)


def test_changed_field_type_without_version_bump_fails(lock: Path) -> None:
    with pytest.raises(
        AssertionError, match="shape changed but schema version is still 1"
    ) as info:
        assert_schema_lock(registry_with(InvoiceRetyped), lock)
    assert "changed field total: int -> str" in str(info.value)


def test_version_bump_without_upcaster_fails(lock: Path) -> None:
    with pytest.raises(
        AssertionError,
        match=r"'invoice': schema version bumped from 1 to 2 without an upcaster from version 1",
    ):
        assert_schema_lock(registry_with(InvoiceAdded, version=2), lock)


def test_forbidden_change_is_never_written_even_when_updating(lock: Path) -> None:
    before = lock.read_text()
    with pytest.raises(AssertionError, match="forbids these changes"):
        assert_schema_lock(registry_with(InvoiceAdded), lock, update=True)
    assert lock.read_text() == before


def test_versioned_change_fails_until_the_lock_is_updated(lock: Path) -> None:
    registry = registry_with(InvoiceAdded, version=2, upcaster=True)
    with pytest.raises(
        AssertionError, match=rf"(?s)out of date.*rerun with {UPDATE_SCHEMA_LOCK_ENV}=1"
    ) as info:
        assert_schema_lock(registry, lock)
    assert "'invoice': v1 -> v2, with upcasters" in str(info.value)
    assert_schema_lock(registry, lock, update=True)
    assert json.loads(lock.read_text())["types"]["invoice"]["schema_version"] == 2
    assert_schema_lock(registry, lock)


def test_environment_variable_requests_the_update(
    lock: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(UPDATE_SCHEMA_LOCK_ENV, "1")
    assert_schema_lock(registry_with(InvoiceAdded, version=2, upcaster=True), lock)
    assert json.loads(lock.read_text())["types"]["invoice"]["schema_version"] == 2


def test_new_type_is_an_allowed_change(lock: Path) -> None:
    registry = registry_with(InvoiceV1)
    registry.add(InvoiceRemoved, "invoice.removed")
    with pytest.raises(AssertionError, match=r"'invoice\.removed': new type"):
        assert_schema_lock(registry, lock)


def test_removed_type_fails_unless_renamed(lock: Path) -> None:
    registry = Registry()
    registry.add(InvoiceV1, "bill")
    with pytest.raises(
        AssertionError,
        match="'invoice' was removed: its stored payloads could no longer be read",
    ):
        assert_schema_lock(registry, lock)
    registry.upcaster("invoice", from_version=1, rename_to="bill")(_identity)
    with pytest.raises(AssertionError, match="'invoice' renamed to 'bill'"):
        assert_schema_lock(registry, lock)
    assert_schema_lock(registry, lock, update=True)
    assert_schema_lock(registry, lock)


def test_a_rename_that_skips_the_locked_version_fails(tmp_path: Path) -> None:
    # 'invoice' is stored at v2; a rename read from v1 only leaves every v2
    # payload unreadable, though the registry itself validates.
    path = tmp_path / "lock.json"
    assert_schema_lock(registry_with(InvoiceV1, version=2, upcaster=True), path)
    stranded = Registry()
    stranded.add(InvoiceV1, "bill", version=2)
    stranded.upcaster("invoice", from_version=1, rename_to="bill")(_identity)
    stranded.upcaster("bill", from_version=1)(_identity)
    stranded.validate()
    with pytest.raises(
        AssertionError, match="locked v2 payloads can no longer be read"
    ):
        assert_schema_lock(stranded, path, update=True)
    assert "invoice" in json.loads(path.read_text())["types"]  # not rewritten
    # Renamed from v2, or reached from v2 by the old name's own upcasters: fine.
    for rename_from in (2, 3):
        renamed = Registry()
        renamed.add(InvoiceV1, "bill", version=rename_from)
        for version in range(1, rename_from):
            renamed.upcaster("invoice", from_version=version)(_identity)
            renamed.upcaster("bill", from_version=version)(_identity)
        renamed.upcaster("invoice", from_version=rename_from, rename_to="bill")(
            _identity
        )
        renamed.validate()
        assert renamed.decode("invoice", 2, {"number": "n", "total": 1}) == InvoiceV1(
            "n", 1
        )
        assert_schema_lock(renamed, tmp_path / f"ok-{rename_from}.json")
        (tmp_path / f"ok-{rename_from}.json").write_text(path.read_text())
        with pytest.raises(AssertionError, match="'invoice' renamed to 'bill'"):
            assert_schema_lock(renamed, tmp_path / f"ok-{rename_from}.json")


def test_version_going_down_fails(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    assert_schema_lock(registry_with(InvoiceV1, version=2, upcaster=True), path)
    with pytest.raises(AssertionError, match="schema version went down from 2 to 1"):
        assert_schema_lock(registry_with(InvoiceV1), path)


def test_nested_type_and_enum_changes_are_shape_changes(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    registry = build_registry()
    assert_schema_lock(registry, path)
    locked = json.loads(path.read_text())
    locked["types"]["document"]["nested"]["Author"].pop()
    locked["types"]["document"]["enums"]["Status"].append("archived")
    path.write_text(json.dumps(locked))
    with pytest.raises(AssertionError) as info:
        assert_schema_lock(registry, path)
    message = str(info.value)
    assert "'document': shape changed but schema version is still 3" in message
    assert "added field Author.email: str | None (has default)" in message
    assert (
        "enum Status values ['draft', 'in_review', 'approved', 'archived'] -> ['draft', 'in_review', 'approved']"
        in message
    )


def test_fields_and_enum_members_declared_in_another_order_are_no_shape_change(
    tmp_path: Path,
) -> None:
    # Payloads are read by field name and enums by value: the order is free.
    path = tmp_path / "lock.json"
    registry = build_registry()
    assert_schema_lock(registry, path)
    locked = json.loads(path.read_text())
    document = locked["types"]["document"]
    document["fields"].reverse()
    document["nested"]["Author"].reverse()
    document["enums"]["Status"].reverse()
    path.write_text(json.dumps(locked))
    # Allowed: the lock only wants rewriting, as for a new type.
    with pytest.raises(AssertionError, match="declared in another order"):
        assert_schema_lock(registry, path)
    assert_schema_lock(registry, path, update=True)
    assert_schema_lock(registry, path)


@attrs.frozen
class InvoiceReordered:
    total: int
    number: str


def test_a_class_with_its_fields_reordered_reads_every_payload_and_passes_the_lock(
    lock: Path,
) -> None:
    stored = registry_with(InvoiceV1).encode(InvoiceV1("A-1", 40))
    reordered = registry_with(InvoiceReordered)
    assert reordered.decode(
        stored.type, stored.schema_version, stored.data
    ) == InvoiceReordered(40, "A-1")
    with pytest.raises(AssertionError, match="declared in another order"):
        assert_schema_lock(reordered, lock)
    assert_schema_lock(reordered, lock, update=True)


def test_removing_a_rename_upcaster_from_the_lock_fails(lock: Path) -> None:
    renamed = Registry()
    renamed.add(InvoiceV1, "bill")
    renamed.upcaster("invoice", from_version=1, rename_to="bill")(_identity)
    assert_schema_lock(renamed, lock, update=True)
    forgotten = Registry()
    forgotten.add(InvoiceV1, "bill")  # the renaming upcaster deleted
    with pytest.raises(
        AssertionError,
        match="'invoice': the upcaster from version 1 was removed",
    ):
        assert_schema_lock(forgotten, lock, update=True)
    assert "invoice" in json.loads(lock.read_text())["upcasters"]  # not rewritten


def test_removing_an_upcaster_of_a_type_fails(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    assert_schema_lock(registry_with(InvoiceV1, version=3, upcaster=True), path)
    registry = Registry()
    registry.add(InvoiceV1, "invoice", version=3)
    registry.upcaster("invoice", from_version=2)(_identity)  # the one from 1 gone
    with pytest.raises(AssertionError, match="upcaster from version 1 was removed"):
        assert_schema_lock(registry, path)


def _item(module: str, title: type) -> type:
    """Return an attrs class ``Item`` of *module*: two such classes share a qualname."""
    cls = attrs.make_class(
        "Item", {"sku": attrs.field(type=str), "title": attrs.field(type=title)}
    )
    cls.__module__ = module
    return cls


def _order_registry(catalog_item: type, billed_item: type) -> Registry:
    order = attrs.make_class(
        "Order",
        {
            "catalog_item": attrs.field(type=catalog_item),
            "billed_item": attrs.field(type=billed_item),
        },
        frozen=True,
    )
    registry = Registry()
    registry.add(order, "order")
    return registry


def test_nested_classes_sharing_a_qualname_are_both_locked(tmp_path: Path) -> None:
    path = tmp_path / "lock.json"
    billed = _item("billing", str)
    assert_schema_lock(_order_registry(_item("catalog", str), billed), path)
    nested = json.loads(path.read_text())["types"]["order"]["nested"]
    assert sorted(nested) == ["billing.Item", "catalog.Item"]
    # catalog's Item changes shape, the version stays 1: a breaking change.
    with pytest.raises(AssertionError, match="shape changed"):
        assert_schema_lock(_order_registry(_item("catalog", int), billed), path)


def test_two_classes_sharing_a_qualname_swapped_between_fields_is_a_shape_change(
    tmp_path: Path,
) -> None:
    # Stored orders hold a catalog Item (a str title) in catalog_item; after
    # the swap that field holds a billing Item (an int title): the old
    # payloads no longer decode, so the lock must fail.
    path = tmp_path / "lock.json"
    catalog, billing = _item("catalog", str), _item("billing", int)
    assert_schema_lock(_order_registry(catalog, billing), path)
    fields = json.loads(path.read_text())["types"]["order"]["fields"]
    assert [field["type"] for field in fields] == ["catalog.Item", "billing.Item"]
    with pytest.raises(AssertionError, match="shape changed"):
        assert_schema_lock(_order_registry(billing, catalog), path)


def test_a_class_whose_qualname_no_other_shares_keeps_its_bare_name(
    tmp_path: Path,
) -> None:
    path = tmp_path / "lock.json"
    item = _item("catalog", str)  # one class in both fields
    assert_schema_lock(_order_registry(item, item), path)
    fields = json.loads(path.read_text())["types"]["order"]["fields"]
    assert [field["type"] for field in fields] == ["Item", "Item"]
