"""
The private cattrs converter and the hooks it uses for each kind of field.

Each attrs class gets one generated unstructure and one structure function
(`_codegen`, with cattrs' `make_dict_structure_fn` behind the structure one
for payloads that leave fields to their defaults); every field gets a strict
hook built here from its `_types` node, inlined there for the common kinds.
Strict means a value of the wrong class is refused at encode rather than
written and found unreadable later. Hooks raise `LeafError`; the registry
catches it and walks the object once more (the slow path) to name the field
in its error message.

Never touches ``cattrs.global_converter``.
"""

from __future__ import annotations

import datetime as _dt
import decimal
import enum
import math
import uuid
from collections.abc import Callable
from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, override

from eventstore.serialization._codegen import (
    generate_structure,
    generate_unstructure,
    sort_items,
)
from eventstore.serialization._types import (
    AttrsNode,
    DictNode,
    EnumNode,
    LeafNode,
    Node,
    SeqNode,
    TupleNode,
)

__all__ = ["Codec", "LeafError"]

Unstructure = Callable[[Any], Any]
Structure = Callable[[Any, Any], Any]


class LeafError(ValueError):
    """A value cannot be (un)structured; the registry adds where it was."""


def _fail(what: str, value: object) -> LeafError:
    text = repr(value)
    if len(text) > 60:
        text = text[:57] + "..."
    return LeafError(f"{what}, got {type(value).__name__} {text}")


# --- unstructure (object -> JSON value) -------------------------------------


def _u_str(value: Any) -> Any:
    if value.__class__ is str:
        return value
    raise _fail("expected str", value)


def _u_int(value: Any) -> Any:
    if value.__class__ is int:
        return value
    raise _fail("expected int", value)


def _u_bool(value: Any) -> Any:
    if value.__class__ is bool:
        return value
    raise _fail("expected bool", value)


def _u_none(value: Any) -> Any:
    if value is None:
        return None
    raise _fail("expected None", value)


def _u_float(value: Any) -> Any:
    if value.__class__ is float:
        if math.isfinite(value):
            return value
        raise LeafError(f"{value!r} cannot be stored: JSON has no NaN or infinity")
    raise _fail("expected float", value)


def _u_decimal(value: Any) -> Any:
    if value.__class__ is decimal.Decimal:
        if value.is_finite():
            return str(value)
        raise LeafError(f"Decimal {value} cannot be stored: only finite decimals")
    raise _fail("expected Decimal", value)


def _u_uuid(value: Any) -> Any:
    if value.__class__ is uuid.UUID:
        return str(value)
    raise _fail("expected UUID", value)


def _u_datetime(value: Any) -> Any:
    if value.__class__ is _dt.datetime:
        offset = value.utcoffset()
        if offset is None:
            raise LeafError(
                f"naive datetime {value.isoformat()} cannot be stored: give it a "
                "timezone (e.g. tzinfo=datetime.timezone.utc)"
            )
        if offset.microseconds:
            # Python 3.11 reads "+00:00:00.000001" back as UTC: the instant
            # would move. No time zone has such an offset.
            raise LeafError(
                f"datetime {value.isoformat()} has a UTC offset with a fraction "
                "of a second, which cannot be stored: use whole seconds"
            )
        return value.isoformat()
    raise _fail("expected an aware datetime", value)


def _u_date(value: Any) -> Any:
    if value.__class__ is _dt.date:
        return value.isoformat()
    raise _fail("expected date", value)


_LEAF_UNSTRUCTURE: dict[str, Unstructure] = {
    "str": _u_str,
    "int": _u_int,
    "float": _u_float,
    "bool": _u_bool,
    "None": _u_none,
    "Decimal": _u_decimal,
    "UUID": _u_uuid,
    "datetime": _u_datetime,
    "date": _u_date,
}

# --- structure (JSON value -> object) ---------------------------------------


def _s_str(value: Any, _: Any = None) -> Any:
    if value.__class__ is str:
        return value
    raise _fail("expected a JSON string", value)


def _s_int(value: Any, _: Any = None) -> Any:
    if value.__class__ is int:
        return value
    raise _fail("expected a JSON integer", value)


def _s_bool(value: Any, _: Any = None) -> Any:
    if value.__class__ is bool:
        return value
    raise _fail("expected true or false", value)


def _s_none(value: Any, _: Any = None) -> Any:
    if value is None:
        return None
    raise _fail("expected null", value)


def _s_float(value: Any, _: Any = None) -> Any:
    if value.__class__ is float:
        if math.isfinite(value):
            return value
        raise _fail("expected a finite number", value)
    if value.__class__ is int:  # another writer may drop a float's ".0"
        try:
            return float(value)
        except OverflowError:
            raise _fail("expected a number a float can hold", value) from None
    raise _fail("expected a JSON number", value)


def _s_decimal(value: Any, _: Any = None) -> Any:
    if value.__class__ is str:
        try:
            result = decimal.Decimal(value)
        except decimal.InvalidOperation:
            pass
        else:
            if result.is_finite():
                return result
    raise _fail("expected a decimal number as a JSON string", value)


_new_object = object.__new__
_UUID = uuid.UUID
# The slots' own descriptors: object.__setattr__ (UUID refuses plain
# assignment) looks the name up on every call.
_set_uuid_int = vars(_UUID)["int"].__set__
_set_uuid_is_safe = vars(_UUID)["is_safe"].__set__
_SAFE_UNKNOWN = uuid.SafeUUID.unknown
_from_hex = bytes.fromhex
_from_bytes = int.from_bytes


def _s_uuid(value: Any, _: Any = None) -> Any:
    # uuid.UUID(text) is pure Python and costs ~0.75 us; this canonical-form
    # fast path builds the same object in ~0.45. bytes.fromhex refuses
    # anything but hex digits, save whitespace between pairs, which would
    # leave fewer than 16 bytes.
    if (
        value.__class__ is str
        and len(value) == 36
        and value[8] == value[13] == value[18] == value[23] == "-"
    ):
        try:
            raw = _from_hex(value.replace("-", ""))
        except ValueError:
            pass
        else:
            if len(raw) == 16:
                result = _new_object(_UUID)
                _set_uuid_int(result, _from_bytes(raw))
                _set_uuid_is_safe(result, _SAFE_UNKNOWN)
                return result
    raise _fail("expected a UUID as a JSON string (8-4-4-4-12 hex digits)", value)


def _s_datetime(value: Any, _: Any = None) -> Any:
    if value.__class__ is str:
        try:
            result = _dt.datetime.fromisoformat(value)
        except ValueError:
            pass
        else:
            if result.utcoffset() is not None:
                return result
    raise _fail("expected an ISO 8601 datetime with a UTC offset", value)


def _s_date(value: Any, _: Any = None) -> Any:
    if value.__class__ is str:
        try:
            return _dt.date.fromisoformat(value)
        except ValueError:
            pass
    raise _fail("expected an ISO 8601 date", value)


_LEAF_STRUCTURE: dict[str, Structure] = {
    "str": _s_str,
    "int": _s_int,
    "float": _s_float,
    "bool": _s_bool,
    "None": _s_none,
    "Decimal": _s_decimal,
    "UUID": _s_uuid,
    "datetime": _s_datetime,
    "date": _s_date,
}

# JSON value classes -> the union member kind that reads them.
_JSON_KIND_OF_CLASS: dict[type, str] = {
    str: "string",
    int: "integer",
    float: "float",
    bool: "boolean",
    type(None): "null",
    list: "array",
    dict: "object",
}


class Codec:
    """
    Build and cache the unstructure/structure functions of attrs classes.

    One per `Registry`; owns the private `cattrs.Converter` the generated
    functions are made with.
    """

    def __init__(self) -> None:
        self.converter = cattrs.Converter(
            detailed_validation=False, forbid_extra_keys=True
        )
        self._unstructure: dict[type, Unstructure] = {}
        self._structure: dict[type, Structure] = {}

    def unstructure_fn(self, node: AttrsNode) -> Unstructure:
        """Return the generated unstructure function of *node*'s class."""
        fn = self._unstructure.get(node.cls)
        if fn is None:
            fn = self._make_unstructure(node)
        return fn

    def structure_fn(self, node: AttrsNode) -> Structure:
        """Return the generated structure function of *node*'s class."""
        fn = self._structure.get(node.cls)
        if fn is None:
            fn = self._make_structure(node)
        return fn

    # -- unstructure ----------------------------------------------------------

    def _make_unstructure(self, node: AttrsNode) -> Unstructure:
        cls = node.cls

        # Recursive classes: install a forwarder first, replaced below.
        def forward(value: Any) -> Any:
            return self._unstructure[cls](value)

        self._unstructure[cls] = forward

        def wrong_class(value: Any) -> Any:
            raise _fail(f"expected {cls.__qualname__}", value)

        checked = generate_unstructure(node, self._unstructure_hook, wrong_class)
        self._unstructure[cls] = checked
        return checked

    def _unstructure_hook(self, node: Node) -> Unstructure:  # noqa: PLR0911 - one branch per kind
        if isinstance(node, LeafNode):
            return _LEAF_UNSTRUCTURE[node.kind]
        if isinstance(node, AttrsNode):
            return self.unstructure_fn(node)
        if isinstance(node, EnumNode):
            enum_cls = node.cls

            def u_enum(value: Any) -> Any:
                if value.__class__ is enum_cls:
                    return value._value_  # .value is a slow descriptor
                raise _fail(f"expected {enum_cls.__qualname__}", value)

            return u_enum
        if isinstance(node, SeqNode):
            container = node.container
            item = self._unstructure_hook(node.item)

            def u_seq(value: Any) -> Any:
                if value.__class__ is container:
                    return [item(element) for element in value]
                raise _fail(f"expected {container.__name__}", value)

            if container is frozenset:

                def u_set(value: Any) -> Any:
                    # Sorted, so equal sets always give equal payloads.
                    if value.__class__ is frozenset:
                        return sort_items([item(element) for element in value])
                    raise _fail("expected frozenset", value)

                return u_set
            return u_seq
        if isinstance(node, TupleNode):
            items = tuple(self._unstructure_hook(item) for item in node.items)
            size = len(items)

            def u_tuple(value: Any) -> Any:
                if value.__class__ is tuple and len(value) == size:
                    return [
                        hook(element)
                        for hook, element in zip(items, value, strict=True)
                    ]
                raise _fail(f"expected a tuple of {size}", value)

            return u_tuple
        if isinstance(node, DictNode):
            item = self._unstructure_hook(node.value)

            def u_dict(value: Any) -> Any:
                if value.__class__ is dict:
                    return {
                        _u_str(key): item(element) for key, element in value.items()
                    }
                raise _fail("expected dict", value)

            return u_dict
        if len(node.members) == 2 and LeafNode("None") in node.members:
            # Optional[X], the common case: no dict lookup.
            (other,) = (m for m in node.members if m != LeafNode("None"))
            inner = self._unstructure_hook(other)
            inner_class = other.py_class

            def u_optional(value: Any) -> Any:
                if value is None:
                    return None
                if value.__class__ is inner_class:
                    return inner(value)
                raise _fail(f"expected {inner_class.__qualname__} or None", value)

            return u_optional
        by_class = {
            member.py_class: self._unstructure_hook(member) for member in node.members
        }

        def u_union(value: Any) -> Any:
            hook = by_class.get(value.__class__)
            if hook is None:
                raise _fail(
                    "expected one of "
                    + ", ".join(cls.__qualname__ for cls in by_class),
                    value,
                )
            return hook(value)

        return u_union

    # -- structure ------------------------------------------------------------

    def _make_structure(self, node: AttrsNode) -> Structure:
        cls = node.cls

        def forward(value: Any, _: Any = None) -> Any:
            return self._structure[cls](value, cls)

        self._structure[cls] = forward
        overrides = {}
        late: list[tuple[str, Structure]] = []  # init=False fields, set after __init__
        for field in node.fields:
            if field.transient:
                overrides[field.name] = override(omit=True)
            elif not field.init:
                overrides[field.name] = override(omit=True)
                late.append((field.name, self._structure_hook(field.node)))
            else:
                overrides[field.name] = override(
                    struct_hook=self._structure_hook(field.node)
                )
        generated: Callable[[Any, Any], Any] = make_dict_structure_fn(
            cls,
            self.converter,
            # init=False fields are set below, so their keys must pass here.
            _cattrs_forbid_extra_keys=not late,
            # Without detailed validation cattrs writes each keyword-only
            # argument where its field stands, and a class whose base has
            # one before positional fields gets code that does not compile;
            # its detailed mode orders them right (and wraps the errors,
            # which the registry's slow path explains all the same).
            _cattrs_detailed_validation=_keyword_before_positional(node),
            **overrides,  # type: ignore[arg-type] # cattrs types **kwargs as its option flags' union
        )
        structure: Structure
        if late:
            allowed = frozenset(f.name for f in node.fields if not f.transient)
            setter = object.__setattr__  # also for frozen (slotted) classes

            def structure_late(value: Any, _: Any = None) -> Any:
                if not value.keys() <= allowed:
                    raise LeafError(
                        f"unexpected fields {sorted(value.keys() - allowed)}"
                    )
                instance = generated(value, cls)
                for name, hook in late:
                    if name in value:
                        setter(instance, name, hook(value[name], None))
                return instance

            structure = structure_late

        else:
            # A non-dict fails inside the cattrs function, and the registry's
            # slow path names the field.
            structure = generate_structure(
                node, self._structure_hook, self._enum_members, generated
            )

        self._structure[cls] = structure
        self.converter.register_structure_hook(cls, structure)
        return structure

    @staticmethod
    def _enum_members(node: EnumNode) -> dict[Any, Any]:
        return {member._value_: member for member in node.cls}

    def _structure_hook(self, node: Node) -> Structure:  # noqa: PLR0911 - one branch per kind
        if isinstance(node, LeafNode):
            return _LEAF_STRUCTURE[node.kind]
        if isinstance(node, AttrsNode):
            return self.structure_fn(node)
        if isinstance(node, EnumNode):
            enum_cls = node.cls
            value_class = str if node.json_kind == "string" else int

            # A dict lookup: EnumType.__call__ costs ~1 us. The class check
            # first, since True == 1 would find the member of value 1.
            members = self._enum_members(node)

            is_flag = issubclass(enum_cls, enum.Flag)

            def s_enum(value: Any, _: Any = None) -> Any:
                if value.__class__ is value_class:
                    member = members.get(value)
                    if member is not None:
                        return member
                    if is_flag:  # a combination of members (or none), not one
                        try:
                            return enum_cls(value)
                        except ValueError:
                            pass  # bits no member has: refused below
                raise _fail(f"expected a value of {enum_cls.__qualname__}", value)

            return s_enum
        if isinstance(node, SeqNode):
            container = node.container
            item = self._structure_hook(node.item)

            def s_seq(value: Any, _: Any = None) -> Any:
                if value.__class__ is list:
                    return container([item(element, None) for element in value])
                raise _fail("expected a JSON array", value)

            if container is list:

                def s_list(value: Any, _: Any = None) -> Any:
                    if value.__class__ is list:
                        return [item(element, None) for element in value]
                    raise _fail("expected a JSON array", value)

                return s_list
            return s_seq
        if isinstance(node, TupleNode):
            items = tuple(self._structure_hook(item) for item in node.items)
            size = len(items)

            def s_tuple(value: Any, _: Any = None) -> Any:
                if value.__class__ is list and len(value) == size:
                    return tuple(
                        hook(element, None)
                        for hook, element in zip(items, value, strict=True)
                    )
                raise _fail(f"expected a JSON array of {size}", value)

            return s_tuple
        if isinstance(node, DictNode):
            item = self._structure_hook(node.value)

            def s_dict(value: Any, _: Any = None) -> Any:
                if value.__class__ is dict:
                    return {key: item(element, None) for key, element in value.items()}
                raise _fail("expected a JSON object", value)

            return s_dict
        if (
            len(node.members) == 2
            and LeafNode("None") in node.members
            and LeafNode("float") not in node.members
        ):
            (other,) = (m for m in node.members if m != LeafNode("None"))
            inner_s = self._structure_hook(other)

            def s_optional(value: Any, _: Any = None) -> Any:
                if value is None:
                    return None
                return inner_s(value, None)

            return s_optional
        by_kind = {
            member.json_kind: self._structure_hook(member) for member in node.members
        }
        if "float" in by_kind and "integer" not in by_kind:
            by_kind["integer"] = by_kind["float"]
        expected = " or ".join(sorted(member.json_kind for member in node.members))

        def s_union(value: Any, _: Any = None) -> Any:
            hook = by_kind.get(_JSON_KIND_OF_CLASS.get(value.__class__, ""))
            if hook is None:
                raise _fail(f"expected JSON {expected}", value)
            return hook(value, None)

        return s_union


def is_attrs_instance(value: object) -> bool:
    """Tell whether *value* is an instance of an attrs class."""
    return attrs.has(type(value))


def _keyword_before_positional(node: AttrsNode) -> bool:
    """Tell whether a keyword-only field of *node*'s ``__init__`` comes before a positional one."""
    keyword_seen = False
    for field in node.fields:
        if not field.init:
            continue
        if field.attribute.kw_only:
            keyword_seen = True
        elif keyword_seen:
            return True
    return False
