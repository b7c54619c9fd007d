import re
import subprocess
import sys
from pathlib import Path

import pytest

from examples.async_reviewers.demo import main

ROOT = Path(__file__).resolve().parents[2]


def figures(out: str) -> dict[str, int]:
    """The report's counts, checked against each other; returns the headline ones."""
    reviews = re.search(
        r"^reviews: (\d+) reviewer\(s\) x (\d+) document\(s\) = (\d+) submitted",
        out,
        re.M,
    )
    updates = re.search(
        r"^updates: (\d+) done, (\d+) gave up; (\d+) conflict\(s\) retried", out, re.M
    )
    lost = re.search(
        r"^nothing lost: (\d+) reviews done, (\d+) recorded in the aggregates, "
        r"(\d+) feedback events in the streams$",
        out,
        re.M,
    )
    assert reviews is not None, out
    assert updates is not None, out
    assert lost is not None, out
    reviewers, documents, submitted = map(int, reviews.groups())
    done, gave_up, retried = map(int, updates.groups())
    finals = re.findall(
        r"^  review-\w+-\d+ '[^']+': version (\d+), (\d+) feedback item\(s\), "
        r"numbered 1-(\d+)$",
        out,
        re.M,
    )
    assert len(finals) == documents
    assert submitted == reviewers * documents
    assert done + gave_up == submitted
    for version, items, last in finals:
        assert int(version) == 1 + int(items)  # created, then one event per review
        assert int(last) == int(items)
    assert sum(int(items) for _, items, _ in finals) == done
    assert list(map(int, lost.groups())) == [done, done, done]
    assert out.rstrip().endswith("health: ok")
    return {"done": done, "gave_up": gave_up, "retried": retried}


def test_in_memory_no_review_is_lost_and_conflicts_are_retried() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "examples.async_reviewers", "--memory"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("eventstore async reviewers\n")
    assert "store: AsyncInMemoryEventStore, in this process" in result.stdout
    counts = figures(result.stdout)
    # In memory, nothing awaits before a review's lookup: every task loads its
    # first document before any saves, and 8 tasks on 3 documents collide.
    assert counts["retried"] >= 1
    assert "[async-reviewers] 8 reviewer tasks on 3 documents" in result.stderr


@pytest.mark.postgres
def test_on_postgresql_every_review_done_is_recorded_once(
    postgres_dsn: str,
    postgres_schema: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EVENTSTORE_DSN", postgres_dsn)
    assert main(["--schema", postgres_schema, "--reviewers", "6"]) == 0
    out, err = capsys.readouterr()
    assert (
        "store: AsyncPostgresEventStore, the PostgreSQL server in EVENTSTORE_DSN "
        f"(schema {postgres_schema})"
    ) in out
    assert "reviews: 6 reviewer(s) x 3 document(s) = 18 submitted" in out
    figures(out)
    assert "[async-reviewers]" not in out
    assert "[async-reviewers] 6 reviewer tasks on 3 documents" in err
