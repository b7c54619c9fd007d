"""JSON-able descriptions of registered types' shapes, for the schema lock."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from eventstore.serialization._types import (
    AttrsNode,
    EnumNode,
    FieldInfo,
    Node,
    type_string,
    walk_nodes,
)
from eventstore.serialization.upcasting import Upcaster

__all__ = ["describe_registry", "describe_type"]


def _field(field: FieldInfo, names: Mapping[type, str]) -> dict[str, Any]:
    return {
        "name": field.name,
        "type": "transient" if field.transient else type_string(field.node, names),
        "default": field.has_default,
        "transient": field.transient,
    }


def describe_type(version: int, node: AttrsNode) -> dict[str, Any]:
    """Describe one registered type: version, fields, nested attrs classes, enums."""
    nested: dict[type, AttrsNode] = {}
    enums: dict[type, Any] = {}

    def visit(current: Node) -> None:
        if isinstance(current, AttrsNode) and current is not node:
            nested[current.cls] = current
        elif isinstance(current, EnumNode):
            enums[current.cls] = [member.value for member in current.cls]

    walk_nodes(node, visit)
    names = _names([node.cls, *nested, *enums])
    return {
        "schema_version": version,
        "fields": [_field(f, names) for f in node.fields],
        "nested": _by_name(
            {cls: [_field(f, names) for f in n.fields] for cls, n in nested.items()},
            names,
        ),
        "enums": _by_name(enums, names),
    }


def _names(classes: Iterable[type]) -> dict[type, str]:
    """Name each class by its qualified name; by module too where two share one."""
    classes = list(dict.fromkeys(classes))
    qualnames = [cls.__qualname__ for cls in classes]
    return {
        # Named alike, a swap of the two in a field, or a change of one,
        # would leave the lock as it was.
        cls: (
            cls.__qualname__
            if qualnames.count(cls.__qualname__) == 1
            else f"{cls.__module__}.{cls.__qualname__}"
        )
        for cls in classes
    }


def _by_name(
    described: Mapping[type, Any], names: Mapping[type, str]
) -> dict[str, Any]:
    """Key each class's description by its name in the lock, sorted."""
    return dict(
        sorted((names[cls], description) for cls, description in described.items())
    )


def describe_registry(
    types: Mapping[str, tuple[int, AttrsNode]], upcasters: Iterable[Upcaster]
) -> dict[str, Any]:
    """Describe every registered type and the upcasters, sorted for stable files."""
    chains: dict[str, list[int]] = {}
    renames: dict[str, Any] = {}
    for upcaster in upcasters:
        chains.setdefault(upcaster.type_name, []).append(upcaster.from_version)
        if upcaster.renames:
            renames[upcaster.type_name] = {
                "from_version": upcaster.from_version,
                "to": upcaster.to_name,
                "to_version": upcaster.to_version,
            }
    return {
        "types": {
            name: describe_type(version, node)
            for name, (version, node) in sorted(types.items())
        },
        "upcasters": {name: sorted(chain) for name, chain in sorted(chains.items())},
        "renames": dict(sorted(renames.items())),
    }
