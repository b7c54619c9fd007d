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
