"""The registry refuses at registration what the store would refuse later, cheaply."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time

import attrs
import pytest

from eventstore import (
    InMemoryEventStore,
    InvalidArgumentError,
    NewEvent,
    RegistrationError,
)
from eventstore.serialization import Registry
from eventstore.serialization.upcasting import describe_versions, missing_versions


@attrs.frozen
class Ping:
    n: int = 0


STORE_REFUSES = {
    "over 255 characters": "t" * 256,
    "a NUL character": "ping\x00",
    "empty": "",
    "a lone surrogate": "ping\ud800",
}


@pytest.mark.parametrize("why", sorted(STORE_REFUSES))
def test_a_type_name_the_store_refuses_is_refused_by_add_register_and_upcaster(
    why: str,
) -> None:
    name = STORE_REFUSES[why]
    # The store's own verdict on the same name, for the record.
    with pytest.raises(InvalidArgumentError):
        InMemoryEventStore().append("s", [NewEvent(name, {})])
    registry = Registry()
    with pytest.raises(RegistrationError, match="the store would refuse it"):
        registry.add(Ping, name)
    with pytest.raises(RegistrationError, match="the store would refuse it"):
        registry.register(name)(Ping)
    with pytest.raises(RegistrationError, match="the store would refuse it"):
        registry.upcaster(name, from_version=1)
    registry.add(Ping, "ping")
    with pytest.raises(RegistrationError, match="the store would refuse it"):
        registry.upcaster("old.ping", from_version=1, rename_to=name)
    assert registry.types() == {"ping": Ping}


def test_a_type_name_of_255_characters_is_accepted_as_the_store_accepts_it() -> None:
    registry = Registry()
    registry.add(Ping, "p" * 255)
    store = InMemoryEventStore()
    store.append("s", [registry.to_new_event(Ping())])
    assert next(iter(store.read_stream("s"))).type == "p" * 255


@pytest.mark.parametrize("version", [2**31, 2**63])
def test_schema_versions_past_the_stores_bound_are_refused(version: int) -> None:
    registry = Registry()
    with pytest.raises(RegistrationError, match=r"must be at most 2147483647"):
        registry.add(Ping, "ping", version=version)
    with pytest.raises(RegistrationError, match=r"must be at most"):
        registry.upcaster("ping", from_version=version)
    # The last version an upcaster may read leads to the largest one.
    with pytest.raises(RegistrationError, match=r"must be at most 2147483646"):
        registry.upcaster("ping", from_version=2**31 - 1)


def test_missing_versions_are_found_in_ranges_without_walking_the_range() -> None:
    assert missing_versions([], 1, 2**31 - 1) == [(1, 2**31 - 2)]
    assert missing_versions([1, 2, 5, 9], 1, 10) == [(3, 4), (6, 8)]
    assert missing_versions([1, 2, 3], 1, 4) == []
    assert describe_versions([(1, 1), (3, 7)]) == "1, 3-7"
    many = [(n, n) for n in range(1, 20, 2)]
    assert describe_versions(many, shown=2) == "1, 3, and 8 more ranges"


GAP_CHECK = textwrap.dedent(
    """
    import resource, sys, time
    import attrs
    from eventstore.errors import RegistrationError
    from eventstore.serialization import Registry

    limit = 400 * 1024 * 1024  # far below what a list of 2**31 ints needs
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    @attrs.frozen
    class Ping:
        n: int = 0

    version = int(sys.argv[1])
    registry = Registry()
    registry.add(Ping, "ping", version=version)
    registry.upcaster("ping", from_version=2)(lambda data: data)
    started = time.perf_counter()
    try:
        registry.validate()
    except RegistrationError as exc:
        message = str(exc)
    else:
        sys.exit("no gap found")
    print(f"{time.perf_counter() - started:.3f} {len(message)}")
    print(message)
    """
)


@pytest.mark.parametrize("version", [3_000_000, 2**31 - 1])
def test_a_gap_in_a_chain_to_a_huge_version_is_found_at_once_in_little_memory(
    version: int,
) -> None:
    done = subprocess.run(  # noqa: S603  # our own interpreter and script
        [sys.executable, "-c", GAP_CHECK, str(version)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    timing, message = done.stdout.split("\n", 1)
    seconds, length = timing.split()
    assert float(seconds) < 0.5
    assert int(length) < 500
    assert f"'ping' is at version {version}" in message
    assert f"no upcaster from version 1, 3-{version - 1}" in message


def test_validating_a_complete_chain_is_quick() -> None:
    registry = Registry()
    registry.add(Ping, "ping", version=500)
    for version in range(1, 500):
        registry.upcaster("ping", from_version=version)(lambda data: data)
    started = time.monotonic()
    registry.validate()
    assert time.monotonic() - started < 2.0
    assert registry.decode("ping", 1, {"n": 3}) == Ping(3)


def test_events_encoded_by_the_registry_get_uuid7_ids_unless_given_one() -> None:
    import uuid  # noqa: PLC0415

    registry = Registry()
    registry.add(Ping, "ping")
    assert registry.to_new_event(Ping()).event_id.version == 7
    given = uuid.uuid4()
    assert registry.to_new_event(Ping(), event_id=given).event_id == given
