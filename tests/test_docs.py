"""
Every ```python block in README.md and docs/ runs, in file order, one namespace per file.

Pages whose code reads ``EVENTSTORE_DSN`` run against the test server, in a
fresh schema named by ``EVENTSTORE_SCHEMA``. The tutorial and the projections
guide also run as the plain scripts they say they are, with no
``EVENTSTORE_DSN``, in a subprocess.
"""

import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = sorted([ROOT / "README.md", *(ROOT / "docs").rglob("*.md")])
BLOCK = re.compile(r"^```python\n(.*?)^```", re.DOTALL | re.MULTILINE)
TUTORIAL = ROOT / "docs" / "tutorial.md"
PROJECTIONS = ROOT / "docs" / "projections.md"
# Seconds a page may run as a script; the tutorial takes about 3 s, the
# projections guide about 9 s, most of it starting their servers.
SCRIPT_TIMEOUT = 120.0


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_the_docs_have_examples() -> None:
    assert python_blocks(ROOT / "README.md"), "README.md must show a usage example"
    assert sum(len(python_blocks(page)) for page in PAGES) >= 20


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_python_blocks_run(
    page: Path, request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = python_blocks(page)
    if any("EVENTSTORE_DSN" in block for block in blocks):
        monkeypatch.setenv("EVENTSTORE_DSN", request.getfixturevalue("postgres_dsn"))
        monkeypatch.setenv(
            "EVENTSTORE_SCHEMA", request.getfixturevalue("postgres_schema")
        )
    namespace: dict[str, object] = {"__name__": f"docs_{page.stem.replace('-', '_')}"}
    for number, block in enumerate(blocks, start=1):
        code = compile(block, f"{page.relative_to(ROOT)} (block {number})", "exec")
        exec(code, namespace)  # noqa: S102 - running our own documentation is the point


def _run_as_plain_script(page: Path, tmp_path: Path) -> tuple[int, str, str, list[str]]:
    """
    Run *page*'s blocks as one script, with no ``EVENTSTORE_*`` variable set.

    Returns:
        The exit code, stdout, stderr, and the embedded servers' directories
        left in the script's TMPDIR.
    """
    script = tmp_path / f"{page.stem}.py"
    script.write_text("\n".join(python_blocks(page)), encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTSTORE_")}
    # The embedded server's files go to TMPDIR, so that we can look for what
    # it left behind. Not under tmp_path: when we are root the server runs as
    # an unprivileged user, who cannot enter pytest's private (0700) base dir.
    scratch = Path(tempfile.mkdtemp(prefix=f"eventstore-{page.stem}-"))
    scratch.chmod(0o755)
    env["TMPDIR"] = str(scratch)
    try:
        process = subprocess.Popen(  # noqa: S603  # this interpreter on our own docs, no outside input
            [sys.executable, str(script)],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            out, err = process.communicate(timeout=SCRIPT_TIMEOUT)
        except subprocess.TimeoutExpired:
            # SIGINT rather than a kill: the script's `with` blocks then run
            # and stop the server instead of leaving it running.
            process.send_signal(signal.SIGINT)
            try:
                out, err = process.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                out, err = process.communicate()
            pytest.fail(f"{page.name} ran past {SCRIPT_TIMEOUT} s:\n{out}{err}")
        left_behind = sorted(path.name for path in scratch.glob("eventstore-pg-*"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return process.returncode, out, err, left_behind


@pytest.mark.postgres
def test_the_tutorial_runs_as_a_plain_script_without_a_dsn_and_stops_its_server(
    tmp_path: Path,
) -> None:
    returncode, out, err, left_behind = _run_as_plain_script(TUTORIAL, tmp_path)

    assert returncode == 0, out + err
    lines = out.splitlines()
    assert "'SICP' is lent to member-17" in lines  # step 3, in memory
    assert "'Clean Code' is lent to member-1" in lines  # step 6, async in memory
    # Steps 5 and 6: the health of the store on PostgreSQL, sync then async.
    assert lines.count("ok") == 2
    assert lines[-1] == "ok"
    assert left_behind == [], "the embedded server's files were not deleted"


@pytest.mark.postgres
def test_the_projections_guide_runs_as_a_plain_script_without_a_dsn_and_stops_its_servers(
    tmp_path: Path,
) -> None:
    returncode, out, err, left_behind = _run_as_plain_script(PROJECTIONS, tmp_path)

    assert returncode == 0, out + err
    # The page's own asserts checked every section; its prints say what it saw.
    assert out.splitlines() == [
        # Section 2: catch_up, then the runner in its thread, woken by an append.
        "{'ada': 0, 'alan': 12}",
        "{'ada': 0, 'alan': 12, 'grace': 7}",
        # Section 8: status().held_by names the forgotten transaction.
        "forgotten-console - idle in transaction",
        # Section 9: the rebuild after reset(on_reset=...) replays all 30 orders.
        "replayed 30 events, remaining 0",
    ]
    assert left_behind == [], "the embedded servers' files were not deleted"


_SEPARATOR_CELL = re.compile(r"\s*:?-{3,}:?\s*")


def _cells(line: str) -> list[str]:
    """Split a table row on the pipes outside code spans and escapes."""
    cells, current, in_code, escaped = [], "", False, False
    for char in line.strip()[1:-1] if line.strip().endswith("|") else line.strip()[1:]:
        if escaped:
            current += char
            escaped = False
        elif char == "\\":
            current += char
            escaped = True
        elif char == "`":
            in_code = not in_code
            current += char
        elif char == "|" and not in_code:
            cells.append(current)
            current = ""
        else:
            current += char
    return [*cells, current]


def _tables(page: Path) -> list[tuple[int, list[str]]]:
    """Each run of lines starting with '|' outside code blocks, with its first line number."""
    tables: list[tuple[int, list[str]]] = []
    in_block = False
    run: list[str] = []
    start = 0
    for number, line in enumerate(page.read_text(encoding="utf-8").split("\n"), 1):
        if line.startswith("```"):
            in_block = not in_block
        is_row = not in_block and line.lstrip().startswith("|")
        if is_row:
            if not run:
                start = number
            run.append(line)
        elif run:
            tables.append((start, run))
            run = []
    if run:
        tables.append((start, run))
    return tables


@pytest.mark.parametrize("page", PAGES, ids=lambda page: str(page.relative_to(ROOT)))
def test_every_table_has_a_header_a_separator_and_rows_of_its_width(page: Path) -> None:
    for start, rows in _tables(page):
        where = f"{page.relative_to(ROOT)}:{start}"
        assert len(rows) >= 2, f"{where}: a table row outside any table"
        width = len(_cells(rows[0]))
        separator = _cells(rows[1])
        assert all(_SEPARATOR_CELL.fullmatch(cell) for cell in separator), (
            f"{where}: the second line is no separator"
        )
        for offset, row in enumerate(rows[1:], start=1):
            assert len(_cells(row)) == width, (
                f"{where}: line {start + offset} has {len(_cells(row))} cells, not {width}"
            )


def test_every_logger_the_library_logs_on_is_named_in_the_docs() -> None:
    names: set[str] = set()
    for path in (ROOT / "eventstore").rglob("*.py"):
        names |= set(re.findall(r'getLogger\("([^"]+)"\)', path.read_text("utf-8")))
    assert names, "no loggers found"
    assert all(name.startswith("eventstore.") for name in names), names
    docs = "".join(page.read_text("utf-8") for page in (ROOT / "docs").glob("*.md"))
    assert sorted(name for name in names if f"`{name}`" not in docs) == []
