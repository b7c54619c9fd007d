import re
from collections import Counter
from typing import Any

import psycopg
import pytest
from psycopg import sql

from examples.compliance.demo import main
from examples.compliance.read_model import TABLE

OPEN_FINDINGS = {
    # The main document's four review rounds (one finding per policy each),
    # the legacy document's two, and the runbook's one; the vendor
    # contract's is closed by its approval.
    "POL-7": {"medium": 5},
    "POL-12": {"medium": 5},
    "POL-31": {"low": 1, "medium": 4},
}
DOCUMENT_EVENTS = 15 + 2 + 2 + 4 + 11 + 1  # the documents' streams, approval included


def run_demo(
    dsn: str,
    schema: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> tuple[str, str]:
    monkeypatch.setenv("EVENTSTORE_DSN", dsn)
    assert main(["--schema", schema]) == 0
    return capsys.readouterr()


def open_findings_in_table(dsn: str, schema: str) -> dict[str, dict[str, int]]:
    """The read model's table, read apart from the demo."""
    counts: dict[str, dict[str, int]] = {}
    with psycopg.connect(dsn) as conn:
        found: list[tuple[Any, ...]] = conn.execute(
            sql.SQL(
                "SELECT policy_id, severity, count(*) FROM {} GROUP BY 1, 2"
            ).format(sql.Identifier(schema, TABLE))
        ).fetchall()
    for policy_id, severity, count in found:
        counts.setdefault(policy_id, {})[severity] = count
    return counts


def per_policy(lines: list[str]) -> dict[str, dict[str, int]]:
    """Parse the report's per-policy lines: policy id -> severity -> open findings."""
    counts: dict[str, dict[str, int]] = {}
    for line in lines:
        match = re.fullmatch(r"  (POL-\d+) +\S.*?  (\d+) open \((.+)\)", line)
        assert match is not None, line
        policy_id, total, severities = match.groups()
        by_severity = Counter[str]()
        for part in severities.split(", "):
            count, severity = part.split(" ")
            by_severity[severity] = int(count)
        assert by_severity.total() == int(total), line
        counts[policy_id] = dict(by_severity)
    return counts


@pytest.mark.postgres
def test_the_compliance_demo_runs_end_to_end_and_reports_what_it_showed(
    postgres_dsn: str,
    postgres_schema: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, err = run_demo(postgres_dsn, postgres_schema, monkeypatch, capsys)

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


@pytest.mark.postgres
def test_the_demos_read_model_agrees_with_the_aggregates_and_a_replay_rebuilds_it_equal(
    postgres_dsn: str,
    postgres_schema: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out, err = run_demo(postgres_dsn, postgres_schema, monkeypatch, capsys)
    lines = out.splitlines()

    start = lines.index(
        f"read model 'open findings per policy': table {postgres_schema}.{TABLE}, "
        "kept by the transactional subscription 'open-findings'"
    )
    assert lines[start + 1].startswith(
        "  approved 'Vendor contract template' (1 finding(s) closed), then the reviewers"
    )
    handled = re.fullmatch(
        r"  run\(stop\) handled (\d+) event\(s\), the earlier ones included; "
        r"after stop, catch_up\(\) handled (\d+) more",
        lines[start + 2],
    )
    assert handled is not None, lines[start + 2]
    live, rest = map(int, handled.groups())
    assert live + rest == DOCUMENT_EVENTS  # nothing handled twice, nothing missed
    first_build = per_policy(lines[start + 3 : start + 6])
    assert first_build == OPEN_FINDINGS
    assert lines[start + 6] == (
        "  agrees with the aggregates: 15 open finding(s) on 3 document(s); "
        f"{DOCUMENT_EVENTS} events in 5 document streams, all handled"
    )

    replay = lines.index(
        "replay: reset(on_reset=...) emptied the table in the checkpoint's "
        f"transaction (0 rows left, {DOCUMENT_EVENTS} events behind); "
        "catch_up(progress=...) rebuilt it:"
    )
    reports = []
    for line in lines[replay + 1 :]:
        report = re.fullmatch(
            r"  progress: (\d+) handled, (\d+) remaining, [\d,]+ events/s", line
        )
        if report is None:
            break
        reports.append(tuple(map(int, report.groups())))
    assert reports, out
    assert all(done + left == DOCUMENT_EVENTS for done, left in reports)
    assert [done for done, _ in reports] == sorted({done for done, _ in reports})
    assert reports[-1] == (DOCUMENT_EVENTS, 0)
    assert lines[replay + 1 + len(reports)] == (
        f"  rebuilt from {DOCUMENT_EVENTS} events: 15 rows, equal to the first "
        "build row for row"
    )
    # The table itself, read apart from the demo, holds what the report shows.
    assert open_findings_in_table(postgres_dsn, postgres_schema) == first_build
    assert '"name": "open-findings"' in out.splitlines()[-1]
    assert "[demo] replaying the read model from the start of the log" in err


@pytest.mark.postgres
def test_a_second_run_on_your_server_writes_a_schema_of_its_own(
    postgres_dsn: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("EVENTSTORE_DSN", postgres_dsn)
    schemas = []
    try:
        for _ in range(2):
            assert main([]) == 0
            out, _err = capsys.readouterr()
            found = re.search(r"\(schema (compliance_demo_[0-9a-f]{8})\)", out)
            assert found is not None, out
            schemas.append(found.group(1))
        assert schemas[0] != schemas[1]
        # Named again, a schema that holds a run's events is refused up front.
        with pytest.raises(SystemExit) as refused:
            main(["--schema", schemas[0]])
        assert refused.value.code == 2
        assert "already holds events" in capsys.readouterr().err
    finally:
        with psycopg.connect(postgres_dsn, autocommit=True) as conn:
            for schema in schemas:
                conn.execute(
                    sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema))
                )
