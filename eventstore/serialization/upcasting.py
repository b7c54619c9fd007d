"""
Upcasters: functions that turn an old payload into the next version's shape.

An upcaster is registered for a type name and the version it reads
(*from_version*); it returns the payload of *from_version* + 1 of the same
type, or, with *rename_to*, the payload of another type name (at
*to_version*, by default the same version number). `build_plans` checks every
chain once, when the registry is validated, and precomputes for each known
(type name, version) the list of upcasters that leads to a registered class.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import attrs

from eventstore.errors import RegistrationError

__all__ = [
    "Plan",
    "Upcaster",
    "UpcasterFn",
    "build_plans",
    "describe_versions",
    "missing_versions",
]

UpcasterFn = Callable[[dict[str, Any]], dict[str, Any]]


@attrs.frozen
class Upcaster:
    """One registered upcaster: (type_name, from_version) -> (to_name, to_version)."""

    type_name: str
    from_version: int
    to_name: str
    to_version: int
    fn: UpcasterFn

    @property
    def renames(self) -> bool:
        """Tell whether this upcaster moves the payload to another type name."""
        return self.to_name != self.type_name

    def describe(self) -> str:
        """Render as ``'a' v1 -> 'b' v1 (fn)`` for error messages."""
        name = getattr(self.fn, "__qualname__", repr(self.fn))
        return (
            f"{self.type_name!r} v{self.from_version} -> {self.to_name!r} "
            f"v{self.to_version} ({name})"
        )


@attrs.frozen
class Plan:
    """How a payload of one (type name, version) reaches a registered class."""

    steps: tuple[Upcaster, ...]
    target: str


def build_plans(  # noqa: PLR0912 - each branch is one rule of a valid chain
    current: Mapping[str, int],
    upcasters: Mapping[tuple[str, int], Upcaster],
) -> dict[tuple[str, int], Plan]:
    """
    Validate every upcaster chain and precompute the plan of each known payload.

    Args:
        current: Registered type names and their current schema versions.
        upcasters: Registered upcasters by (type name, from version).

    Returns:
        A plan for every (type name, version) that can be decoded, including
        the current versions (with no steps).

    Raises:
        RegistrationError: A chain has a gap, an upcaster reads a version at
            or past a registered type's current version, a rename leads to an
            unknown name or version, or renames form a cycle.

    """
    last: dict[str, int] = dict(current)  # newest version each name may hold
    for (name, version), upcaster in upcasters.items():
        if name in current:
            if version >= current[name]:
                raise RegistrationError(
                    f"upcaster {upcaster.describe()} reads version {version}, but "
                    f"{name!r} is registered at version {current[name]}: an "
                    "upcaster reads an older version than the current one"
                )
            if upcaster.renames:
                raise RegistrationError(
                    f"upcaster {upcaster.describe()} renames {name!r}, which is "
                    "still registered: a name is either current or renamed"
                )
        elif upcaster.renames:
            if name in last and last[name] != version:
                raise RegistrationError(
                    f"{name!r} has two renaming upcasters; only its last version "
                    "may rename it"
                )
            last[name] = version
    for (name, version), upcaster in upcasters.items():
        if name not in last:
            raise RegistrationError(
                f"upcaster {upcaster.describe()} belongs to {name!r}, which is "
                "neither registered nor renamed by an upcaster of its last version"
            )
        if version > last[name] or (not upcaster.renames and version == last[name]):
            raise RegistrationError(
                f"upcaster {upcaster.describe()} reads a version past {name!r}'s "
                f"last version {last[name]} (its renaming upcaster reads that one)"
            )
    read_by_name: dict[str, list[int]] = {}
    for name, version in upcasters:
        read_by_name.setdefault(name, []).append(version)
    for name, newest in last.items():
        missing = missing_versions(read_by_name.get(name, ()), 1, newest)
        if missing:
            raise RegistrationError(
                f"{name!r} is at version {newest} but has no upcaster from version "
                f"{describe_versions(missing)}: every version from 1 up needs "
                "one, or stored payloads of it could not be read"
            )
    plans: dict[tuple[str, int], Plan] = {}
    for name, newest in last.items():
        for version in range(1, newest + 1):
            plans[(name, version)] = _plan(name, version, current, upcasters)
    return plans


def missing_versions(
    present: Iterable[int], low: int, high: int
) -> list[tuple[int, int]]:
    """
    Return the versions from *low* up to, not including, *high* that *present* lacks.

    In time and memory proportional to the number of *present* versions,
    not to the size of the range: a schema version may be 2**31 - 1.

    Returns:
        Inclusive ``(first, last)`` ranges, ascending.

    """
    gaps: list[tuple[int, int]] = []
    expected = low
    for version in sorted({v for v in present if low <= v < high}):
        if version > expected:
            gaps.append((expected, version - 1))
        expected = version + 1
    if expected < high:
        gaps.append((expected, high - 1))
    return gaps


def describe_versions(ranges: Sequence[tuple[int, int]], *, shown: int = 5) -> str:
    """Render version ranges as ``1, 3-7, 9``, at most *shown* of them, for a message."""
    parts = [str(a) if a == b else f"{a}-{b}" for a, b in ranges[:shown]]
    if len(ranges) > shown:
        parts.append(f"and {len(ranges) - shown} more ranges")
    return ", ".join(parts)


def _plan(
    name: str,
    version: int,
    current: Mapping[str, int],
    upcasters: Mapping[tuple[str, int], Upcaster],
) -> Plan:
    steps: list[Upcaster] = []
    visited = {(name, version)}
    while current.get(name) != version:
        upcaster = upcasters[(name, version)]
        steps.append(upcaster)
        name, version = upcaster.to_name, upcaster.to_version
        if name not in current and not any(key[0] == name for key in upcasters):
            raise RegistrationError(
                f"upcaster {upcaster.describe()} renames to {name!r}, which is "
                "not registered"
            )
        if name in current and version > current[name]:
            raise RegistrationError(
                f"upcaster {upcaster.describe()} leads to version {version}, past "
                f"{name!r}'s current version {current[name]}"
            )
        if (name, version) in visited:
            raise RegistrationError(
                f"upcasters form a cycle through {name!r} v{version}"
            )
        visited.add((name, version))
        if name not in current and (name, version) not in upcasters:
            raise RegistrationError(
                f"upcaster {upcaster.describe()} leads to {name!r} v{version}, "
                "which no upcaster reads"
            )
    return Plan(tuple(steps), name)
