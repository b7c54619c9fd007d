"""The serializer benchmark's own checks: every side's last result is compared, never a timing."""

from __future__ import annotations

from typing import Any

import pytest

from benchmarks import serializer


def test_every_side_runs_and_gives_back_the_event() -> None:
    figures = serializer.run(quick=True)
    assert figures["check_error"] is None
    assert len(figures["samples"]) == len(figures["ceiling_samples"]) == 5
    assert all(rate > 0 for rate in figures["samples"] + figures["ceiling_samples"])
    assert figures["share_of_ceiling"] == pytest.approx(
        figures["median"] / figures["ceiling_median"]
    )


def test_a_side_that_gives_back_something_else_fails_the_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def wrong(data: dict[str, Any]) -> object:
        return data

    monkeypatch.setattr(serializer, "_hand_decode", wrong)
    assert serializer.run(quick=True)["check_error"] == "wrong result: hand codec"
