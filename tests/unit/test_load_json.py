"""`load_json` decodes exactly what `json.loads` decodes, and refuses the same text."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from eventstore._json import load_json

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(st.text(), children, max_size=4)
    ),
    max_leaves=20,
)


@given(_json_values, st.sampled_from([(",", ":"), (", ", ": ")]))
def test_decodes_what_json_loads_decodes(
    value: Any, separators: tuple[str, str]
) -> None:
    text = json.dumps(value, separators=separators, ensure_ascii=False)
    assert load_json(text) == json.loads(text)


@pytest.mark.parametrize("text", [' {"a": 1}', '{"a": 1}\n', "\t[1, 2] "])
def test_surrounding_whitespace_is_accepted_as_json_loads_does(text: str) -> None:
    assert load_json(text) == json.loads(text)


def test_numbers_decode_as_json_loads_decodes_them() -> None:
    value = load_json('{"big": 123456789012345678901234567890, "f": -0.0}')
    assert value["big"] == 123456789012345678901234567890
    assert math.copysign(1.0, value["f"]) == -1.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "Expecting value"),
        ('{"a": 1} x', "Extra data"),
        ('{"a": }', "Expecting value"),
        ("[1, 2", "Expecting ',' delimiter"),
    ],
)
def test_bad_text_raises_json_decode_error_as_json_loads_does(
    text: str, message: str
) -> None:
    with pytest.raises(json.JSONDecodeError, match=message) as caught:
        load_json(text)
    with pytest.raises(json.JSONDecodeError) as expected:
        json.loads(text)
    assert str(caught.value) == str(expected.value)


def test_bytes_decode_as_utf8_as_json_loads_does() -> None:
    # What a connection with client encoding SQL_ASCII returns for text columns.
    text = '{"name": "Zoë", "n": [1, 2.5]}'
    assert load_json(text.encode()) == json.loads(text) == load_json(text)


@pytest.mark.parametrize(
    "text",
    [
        '{"n": -123456789012345678901234567890123}',  # past 64 bits: exact
        '{"n": 18446744073709551616}',
        "[1e400, -1e400]",  # infinities, as json.loads reads them
        '{"s": "\\ud800"}',  # an escaped lone surrogate
    ],
)
def test_numbers_and_strings_at_the_edges_decode_as_json_loads_does(text: str) -> None:
    assert repr(load_json(text)) == repr(json.loads(text))


def test_an_empty_object_is_a_new_dict_each_time() -> None:
    first, second = load_json("{}"), load_json("{}")
    assert first == second == {}
    first["changed"] = True
    assert second == {}


SAMPLES = [
    '{"a": 1, "b": [true, null, 2.5, "Zoë"], "c": {"d": -0.0}}',
    '{"big": 123456789012345678901234567890}',
    "{}",
    " [1] ",
]

WITHOUT_MSGSPEC = """
import json, sys
sys.modules["msgspec"] = None  # as if it were not installed
from eventstore._json import _fast_loads, load_json
assert _fast_loads is None
samples = json.loads(sys.argv[1])
print(json.dumps([load_json(text) == json.loads(text) for text in samples]))
try:
    load_json('{"a": }')
except json.JSONDecodeError as exc:
    print(exc)
"""


def test_without_msgspec_the_stdlib_decodes_the_same_values() -> None:
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    done = subprocess.run(  # noqa: S603  # our own interpreter and script
        [sys.executable, "-c", WITHOUT_MSGSPEC, json.dumps(SAMPLES)],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    verdicts, message = done.stdout.splitlines()
    assert json.loads(verdicts) == [True] * len(SAMPLES)
    assert message.startswith("Expecting value")


def test_a_raw_lone_surrogate_in_text_decodes_as_the_stdlib_does() -> None:
    # msgspec refuses it with a UnicodeEncodeError, not its own error.
    text = '{"a":"\ud800"}'
    assert load_json(text) == json.loads(text) == {"a": "\ud800"}
