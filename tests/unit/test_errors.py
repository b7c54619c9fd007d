import pickle
import uuid

import pytest

import eventstore
from eventstore import (
    AggregateNotFound,
    ConcurrencyError,
    DuplicateEventError,
    EventStoreError,
    ExpectedVersion,
    FutureSchemaVersionError,
    StreamNotFound,
    UnknownTypeError,
)

EXAMPLES = [
    ConcurrencyError("doc-1", 3, 5),
    ConcurrencyError("doc-1", ExpectedVersion.EXISTS, 0, attempts=4),
    DuplicateEventError("doc-1", [uuid.UUID(int=7)]),
    StreamNotFound("doc-1"),
    AggregateNotFound("document-9", 9),
    UnknownTypeError("document.deleted"),
    FutureSchemaVersionError("document", 4, 3),
]


@pytest.mark.parametrize("error", EXAMPLES, ids=repr)
def test_errors_survive_pickling_with_their_data(error: Exception) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert vars(copy) == vars(error)


def test_every_public_exception_is_an_event_store_error() -> None:
    exported = [getattr(eventstore, name) for name in eventstore.__all__]
    errors = [
        obj for obj in exported if isinstance(obj, type) and issubclass(obj, Exception)
    ]
    assert len(errors) >= 10
    assert all(issubclass(error, EventStoreError) for error in errors)


def test_messages_carry_the_data() -> None:
    assert (
        str(ConcurrencyError("doc-1", 3, 5))
        == "stream 'doc-1' is at version 5, expected 3"
    )
    assert "gave up after 4 attempts" in str(ConcurrencyError("s", 1, 2, attempts=4))
    assert "ExpectedVersion.EXISTS" in str(
        ConcurrencyError("s", ExpectedVersion.EXISTS, 0)
    )
    assert "00000000-0000-0000-0000-000000000007" in str(
        DuplicateEventError("s", [uuid.UUID(int=7)])
    )
    assert str(FutureSchemaVersionError("document", 4, 3)).startswith(
        "'document' payload has schema version 4"
    )


def test_the_public_api_is_complete_without_repeats() -> None:
    assert len(set(eventstore.__all__)) == len(eventstore.__all__)
    for name in eventstore.__all__:
        assert hasattr(eventstore, name), name
