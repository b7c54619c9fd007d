import re

import pytest

from examples.compliance.demo import main


@pytest.mark.postgres
def test_the_compliance_demo_runs_end_to_end_and_reports_what_it_showed(
    postgres_dsn: str,
    postgres_schema: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EVENTSTORE_DSN", postgres_dsn)
    assert main(["--schema", postgres_schema]) == 0
    out, err = capsys.readouterr()

    assert out.startswith("eventstore compliance demo\n")
    assert f"(schema {postgres_schema})" in out
    assert "store: the PostgreSQL server in EVENTSTORE_DSN" in out
    assert "documents: 3 created, 19 events" in out
    snapshot = re.search(
        r"at version (\d+) loaded from the snapshot at version (\d+) plus (\d+) event",
        out,
    )
    assert snapshot is not None
    assert [int(n) for n in snapshot.groups()] == [15, 11, 4]
    assert (
        'metadata kept: {"classification": "confidential", "language": "en", "owner": "security"}'
        in out
    )
    assert "policy repository id kept: policies-main" in out
    assert "findings kept: 12 of 12, feedback kept: 1" in out
    assert (
        "policy_repository_id='policies-legacy', 2 findings given severity medium; equal to a full replay"
        in out
    )
    reviewers = re.search(
        r"concurrent reviewers: 10 submitted, (\d+) recorded, (\d+) conflict", out
    )
    assert reviewers is not None
    assert int(reviewers.group(1)) == 10
    health = re.search(
        r"health: GET http://127\.0\.0\.1:\d+/health/database -> 200\n  (\{.*\})", out
    )
    assert health is not None
    assert '"status": "ok"' in health.group(1)
    assert '"utilization_pct"' in health.group(1)
    # Progress goes to stderr, the report to stdout; no password anywhere.
    assert "[demo] running 10 concurrent reviewers" in err
    assert "[demo]" not in out
