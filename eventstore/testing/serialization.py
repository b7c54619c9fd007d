"""
Assertions that prove a host app's types survive storage.

- `assert_roundtrip`: one object encodes to JSON and decodes back exactly.
- `check_registry`: property-tests every registered type's round trip and
  decodes sample payloads of every old schema version through its upcasters.
- `assert_schema_lock`: compares the registry's shapes with a committed JSON
  lock file, so a changed shape without a version bump and an upcaster
  fails a test instead of a production load.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import difflib
import json
import math
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

import attrs
from hypothesis import HealthCheck, given, settings

from eventstore.serialization import TRANSIENT, Registry
from eventstore.serialization.upcasting import describe_versions, missing_versions
from eventstore.testing.strategies import Overrides, registry_strategies

_T = TypeVar("_T")

__all__ = [
    "UPDATE_SCHEMA_LOCK_ENV",
    "assert_roundtrip",
    "assert_schema_lock",
    "check_registry",
    "load_examples",
]

UPDATE_SCHEMA_LOCK_ENV = "EVENTSTORE_UPDATE_SCHEMA_LOCK"
"""Set to ``1`` to let `assert_schema_lock` rewrite lock files."""

_LOCK_FORMAT = 1
_COMPARED = ("types", "upcasters", "renames")

Examples = Mapping[tuple[str, int], Iterable[Mapping[str, Any]]]


def assert_roundtrip(registry: Registry, obj: _T) -> _T:
    """
    Assert that *obj* encodes to JSON and decodes back exactly.

    Exactly means: same classes all the way down, equal values, floats
    with the same sign (``-0.0``), decimals with the same digits and
    exponent, datetimes with the same UTC offset. Transient fields are not
    compared (they take their defaults). The payload also goes through
    ``json.dumps``/``json.loads`` so it is proven JSON-able.

    Returns:
        The decoded object.

    Raises:
        AssertionError: The round trip lost or changed something.

    """
    payload = registry.encode(obj)
    text = json.dumps(payload.data, allow_nan=False)
    data = json.loads(text)
    decoded = registry.decode(payload.type, payload.schema_version, data)
    difference = _difference(obj, decoded, type(obj).__qualname__)
    if difference is not None:
        raise AssertionError(
            f"{payload.type!r} v{payload.schema_version} does not round-trip: "
            f"{difference}\n  payload: {text}"
        )
    again = registry.encode(decoded).data
    if again != data:
        raise AssertionError(
            f"{payload.type!r} re-encodes differently:\n  first:  {text}\n"
            f"  second: {json.dumps(again)}"
        )
    # Of obj's own class all the way down: _difference compared them.
    return cast(_T, decoded)


def _difference(expected: Any, actual: Any, path: str) -> str | None:  # noqa: PLR0911, PLR0912 - one branch per kind
    if type(expected) is not type(actual):
        return (
            f"{path}: {type(expected).__qualname__} {expected!r} came back as "
            f"{type(actual).__qualname__} {actual!r}"
        )
    if attrs.has(type(expected)):
        for field in attrs.fields(type(expected)):
            if field.metadata.get(TRANSIENT):
                continue
            difference = _difference(
                getattr(expected, field.name),
                getattr(actual, field.name),
                f"{path}.{field.name}",
            )
            if difference:
                return difference
        return None
    if isinstance(expected, list | tuple):
        if len(expected) != len(actual):
            return f"{path}: {len(expected)} items came back as {len(actual)}"
        for index, (left, right) in enumerate(zip(expected, actual, strict=True)):
            difference = _difference(left, right, f"{path}[{index}]")
            if difference:
                return difference
        return None
    if isinstance(expected, dict):
        if list(expected) != list(actual):
            return f"{path}: keys {list(expected)} came back as {list(actual)}"
        for key in expected:
            difference = _difference(expected[key], actual[key], f"{path}[{key!r}]")
            if difference:
                return difference
        return None
    same = expected == actual
    if isinstance(expected, float):
        same = same and math.copysign(1.0, expected) == math.copysign(1.0, actual)
    elif isinstance(expected, decimal.Decimal):
        same = expected.as_tuple() == actual.as_tuple()
    elif isinstance(expected, _dt.datetime):
        same = same and expected.utcoffset() == actual.utcoffset()
    if not same:
        return f"{path}: {expected!r} came back as {actual!r}"
    return None


def load_examples(
    directory: str | os.PathLike[str],
) -> dict[tuple[str, int], list[dict[str, Any]]]:
    """
    Load sample payloads from the ``*.json`` files in *directory*.

    Each file holds one stored payload: ``{"type": ..., "schema_version":
    ..., "data": {...}}`` (copy one from your database, or write it by hand
    when you bump a version).

    Returns:
        The payloads' data by (type name, schema version), for
        `check_registry`'s *examples*.

    """
    examples: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for path in sorted(Path(directory).glob("*.json")):
        record = json.loads(path.read_text(encoding="utf-8"))
        key = (record["type"], record["schema_version"])
        examples.setdefault(key, []).append(record["data"])
    return examples


def check_registry(
    registry: Registry,
    *,
    examples: Examples | str | os.PathLike[str] | None = None,
    overrides: Overrides | None = None,
    max_examples: int | None = None,
    require_examples: bool = True,
) -> None:
    """
    Property-test every registered type's round trip and every upcaster chain.

    For each registered type, hypothesis generates instances (from the attrs
    fields; see `strategy_for` for *overrides*) and `assert_roundtrip`
    checks each. For each old schema version any upcaster reads, every
    sample payload in *examples* is decoded through the chain into a current
    object, which must then round-trip too.

    Args:
        registry: The host app's registry.
        examples: Sample payloads of old versions (and, if you like, of
            current ones), by (type name, version), or a directory for
            `load_examples`; a key no type or upcaster has fails the check.
        overrides: Strategies replacing the derived ones, by type or by
            ``(cls, "field_name")``.
        max_examples: Examples per type; default: the active hypothesis
            profile's.
        require_examples: Fail when an old version has no sample payload
            (its upcasters would go untested).

    Raises:
        AssertionError: A round trip or an upcaster chain failed, a sample
            is keyed by a version nothing reads, or (with
            *require_examples*) a version has no sample payload.
        RegistrationError: The registry itself is broken.

    """
    registry.validate()
    if examples is not None and not isinstance(examples, Mapping):
        examples = load_examples(examples)
    samples: Examples = examples or {}
    strategies = registry_strategies(registry, overrides=overrides)
    options: dict[str, Any] = {
        "deadline": None,
        "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    }
    if max_examples is not None:
        options["max_examples"] = max_examples
    for type_name, strategy in strategies.items():

        @settings(**options)
        @given(strategy)
        def round_trip(obj: object) -> None:
            assert_roundtrip(registry, obj)

        try:
            round_trip()
        except AssertionError as exc:
            raise AssertionError(f"type {type_name!r}: {exc}") from exc

    old = set(registry.old_versions())
    current = {(name, registry.schema_version_of(name)) for name in registry.types()}
    # A sample keyed by a version nothing reads (a typo) would test nothing
    # and pass: it is named instead. Current versions' samples are decoded too.
    stray = sorted(key for key in samples if key not in old | current)
    if stray:
        raise AssertionError(
            "sample payloads for "
            + ", ".join(f"{name!r} v{version}" for name, version in stray)
            + " test nothing: no registered type is at that version and no "
            "upcaster reads it"
        )
    missing = []
    for type_name, version in sorted(old | current):
        payloads = list(samples.get((type_name, version), ()))
        if not payloads and (type_name, version) in old:
            missing.append(f"{type_name!r} v{version}")
        for data in payloads:
            decoded = registry.decode(type_name, version, data)
            assert_roundtrip(registry, decoded)
    if require_examples and missing:
        raise AssertionError(
            "no sample payload for old schema versions "
            f"{', '.join(missing)}: their upcasters are untested. Pass "
            "examples={(type_name, version): [data, ...]} or a directory of "
            "payload files (see load_examples)."
        )


def assert_schema_lock(
    registry: Registry,
    path: str | os.PathLike[str],
    *,
    update: bool | None = None,
) -> None:
    """
    Compare the registry's type shapes with the schema lock file at *path*.

    Fails when a type's shape (fields, their types, defaults, nested
    classes, enum values) changed but its schema version did not, when a
    version went up without upcasters from the locked version, when a
    version went down, or when a locked type disappeared without a renaming
    upcaster. Changes that are fine (new types, properly versioned shapes)
    still fail until the lock is updated, so the committed lock always
    matches the code.

    Args:
        registry: The host app's registry.
        path: The lock file; written when missing.
        update: Rewrite the lock when its only differences are allowed
            changes. Default: true when the environment variable
            ``EVENTSTORE_UPDATE_SCHEMA_LOCK`` is ``1``. A forbidden change is
            never written.

    Raises:
        AssertionError: With a readable diff.

    """
    lock_path = Path(path)
    if update is None:
        update = os.environ.get(UPDATE_SCHEMA_LOCK_ENV) == "1"
    current = {"eventstore_schema_lock": _LOCK_FORMAT, **registry.describe()}
    if not lock_path.exists():
        _write_lock(lock_path, current)
        return
    locked = json.loads(lock_path.read_text(encoding="utf-8"))
    if all(locked.get(key) == current[key] for key in _COMPARED):
        return
    forbidden, allowed = _compare(locked, current)
    if forbidden:
        raise AssertionError(
            f"schema lock {lock_path} forbids these changes:\n"
            + "\n".join(forbidden)
            + (
                "\n\nallowed changes, written once the above are fixed:\n"
                + "\n".join(allowed)
                if allowed
                else ""
            )
        )
    if update:
        _write_lock(lock_path, current)
        return
    raise AssertionError(
        f"schema lock {lock_path} is out of date; these changes are allowed:\n"
        + "\n".join(allowed)
        + f"\n\nrerun with {UPDATE_SCHEMA_LOCK_ENV}=1 to rewrite it, and commit it."
    )


def _write_lock(path: Path, current: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(current, indent=2) + "\n", encoding="utf-8")


def _rename_reads(locked_version: int, rename_from: int, chain: list[int]) -> bool:
    """Tell whether a type stored at *locked_version* still reaches its rename at *rename_from*."""
    return rename_from >= locked_version and not missing_versions(
        chain, locked_version, rename_from + 1
    )


def _compare(
    locked: Mapping[str, Any], current: Mapping[str, Any]
) -> tuple[list[str], list[str]]:
    forbidden: list[str] = []
    allowed: list[str] = []
    locked_types: Mapping[str, Any] = locked.get("types", {})
    current_types: Mapping[str, Any] = current["types"]
    upcasters: Mapping[str, list[int]] = current["upcasters"]
    for name, old in locked_types.items():
        new = current_types.get(name)
        if new is None:
            if name in current["renames"]:
                rename = current["renames"][name]
                reads_locked = _rename_reads(
                    old["schema_version"],
                    rename["from_version"],
                    upcasters.get(name, []),
                )
                (allowed if reads_locked else forbidden).append(
                    f"- {name!r} renamed to {rename['to']!r} (upcaster from "
                    f"v{rename['from_version']})"
                    + (
                        ""
                        if reads_locked
                        else f", but its locked v{old['schema_version']} payloads "
                        "can no longer be read: the upcasters of the old name "
                        f"must lead from v{old['schema_version']} to the rename"
                    )
                )
            else:
                forbidden.append(
                    f"- {name!r} was removed: its stored payloads could no longer "
                    "be read. Keep it registered, or register an upcaster that "
                    "renames it."
                )
            continue
        old_version, new_version = old["schema_version"], new["schema_version"]
        shape_changed = _shape(old) != _shape(new)
        changes = _shape_changes(old, new)
        diff = _diff(name, old, new)
        if new_version < old_version:
            forbidden.append(
                f"- {name!r}: schema version went down from {old_version} to "
                f"{new_version}\n{diff}"
            )
        elif new_version == old_version:
            if shape_changed:
                forbidden.append(
                    f"- {name!r}: shape changed but schema version is still "
                    f"{new_version}; bump it and register an upcaster from "
                    f"version {new_version}:\n{changes}\n{diff}"
                )
            elif old != new:
                allowed.append(
                    f"- {name!r}: fields or enum members declared in another "
                    "order (no stored payload changes)"
                )
        else:
            without = missing_versions(
                upcasters.get(name, []), old_version, new_version
            )
            if without:
                forbidden.append(
                    f"- {name!r}: schema version bumped from {old_version} to "
                    f"{new_version} without an upcaster from version "
                    f"{describe_versions(without)}; stored v{old_version} "
                    f"payloads could not be read:\n{changes}\n{diff}"
                )
            else:
                allowed.append(
                    f"- {name!r}: v{old_version} -> v{new_version}, with upcasters"
                    f"\n{changes}"
                )
    forbidden.extend(_removed_upcasters(locked, current))
    allowed.extend(
        f"- {name!r}: new type" for name in current_types if name not in locked_types
    )
    allowed.extend(
        f"- {key} changed"
        for key in ("upcasters", "renames")
        if locked.get(key) != current[key]
    )
    return forbidden, allowed


def _removed_upcasters(
    locked: Mapping[str, Any], current: Mapping[str, Any]
) -> list[str]:
    """Report the locked upcasters that are gone: payloads they read could no longer be read."""
    removed: list[str] = []
    current_chains: Mapping[str, list[int]] = current["upcasters"]
    for name, chain in locked.get("upcasters", {}).items():
        # Payloads at a type's current version need no upcaster.
        readable = current["types"].get(name, {}).get("schema_version")
        gone = sorted(set(chain) - set(current_chains.get(name, [])) - {readable})
        if gone:
            versions = ", ".join(str(version) for version in gone)
            removed.append(
                f"- {name!r}: the upcaster from version {versions} "
                "was removed; stored payloads of that version could no longer be "
                "read. Keep it (if none are stored any more, delete its entry "
                "from the lock file by hand)."
            )
    return removed


def _shape(entry: Mapping[str, Any]) -> tuple[Any, ...]:
    # Payloads are JSON objects read by field name, and enum members are
    # stored by value: declaring either in another order changes no payload.
    def by_name(fields: list[Any] | None) -> list[Any]:
        return sorted(fields or [], key=lambda field: str(field["name"]))

    nested = entry.get("nested") or {}
    enums = entry.get("enums") or {}
    return (
        by_name(entry.get("fields")),
        {cls: by_name(fields) for cls, fields in nested.items()},
        {cls: sorted(values, key=json.dumps) for cls, values in enums.items()},
    )


def _shape_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    lines: list[str] = []

    def fields(owner: str, before: list[Any], after: list[Any]) -> None:
        by_name_before = {f["name"]: f for f in before}
        by_name_after = {f["name"]: f for f in after}
        for name, field in by_name_after.items():
            if name not in by_name_before:
                lines.append(f"    added field {owner}.{name}: {_field_text(field)}")
        for name, field in by_name_before.items():
            if name not in by_name_after:
                lines.append(f"    removed field {owner}.{name}: {_field_text(field)}")
            elif field != by_name_after[name]:
                lines.append(
                    f"    changed field {owner}.{name}: {_field_text(field)} -> "
                    f"{_field_text(by_name_after[name])}"
                )

    fields("", old.get("fields", []), new.get("fields", []))
    old_nested, new_nested = old.get("nested", {}), new.get("nested", {})
    for cls in sorted(set(old_nested) | set(new_nested)):
        fields(cls, old_nested.get(cls, []), new_nested.get(cls, []))
    old_enums, new_enums = old.get("enums", {}), new.get("enums", {})
    lines.extend(
        f"    enum {cls} values {old_enums.get(cls)} -> {new_enums.get(cls)}"
        for cls in sorted(set(old_enums) | set(new_enums))
        if old_enums.get(cls) != new_enums.get(cls)
    )
    return "\n".join(line.replace("field .", "field ") for line in lines)


def _field_text(field: Mapping[str, Any]) -> str:
    text = str(field["type"])
    if field.get("default"):
        text += " (has default)"
    return text


def _diff(name: str, old: Mapping[str, Any], new: Mapping[str, Any]) -> str:
    return "".join(
        difflib.unified_diff(
            json.dumps(old, indent=2).splitlines(keepends=True),
            json.dumps(new, indent=2).splitlines(keepends=True),
            fromfile=f"{name} (lock)",
            tofile=f"{name} (code)",
        )
    )
