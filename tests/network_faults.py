"""
Faults injected by the network: a TCP proxy in front of the test server that can stop passing bytes.

`BlackholeProxy` forwards every connection made to its port to the test
server (over its Unix socket or TCP, as the DSN says) until `drop` is
called; from then on it reads what either side sends and passes nothing
on, as a network that silently loses packets does: no reset, no close, so
a client waits for an answer that never comes. The store runs exactly the
code it runs in production; only the network behaves differently.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import threading
from pathlib import Path
from types import TracebackType
from typing import Any

from psycopg.conninfo import conninfo_to_dict, make_conninfo

_CHUNK = 65536
_TICK = 0.1


class BlackholeProxy:
    """A TCP proxy to the server of *dsn* whose `drop` makes it swallow everything."""

    def __init__(self, dsn: str) -> None:
        self._params: dict[str, Any] = conninfo_to_dict(dsn)
        self._listener = socket.create_server(("127.0.0.1", 0))
        # Every wait is short, so that `close` ends each thread promptly.
        self._listener.settimeout(_TICK)
        self._dropping = threading.Event()
        self._closed = threading.Event()
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        accept = threading.Thread(target=self._accept, daemon=True)
        accept.start()
        self._threads.append(accept)

    @property
    def dsn(self) -> str:
        """The DSN that reaches the server through this proxy."""
        port = self._listener.getsockname()[1]
        return make_conninfo("", **{**self._params, "host": "127.0.0.1", "port": port})

    def drop(self) -> None:
        """From now on, pass nothing on in either direction."""
        self._dropping.set()

    def close(self) -> None:
        """Stop, closing every connection it made."""
        with self._lock:
            self._closed.set()
        self._listener.close()
        for sock in self._sockets:
            # shutdown wakes a pump blocked in recv; close alone would not.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        for thread in self._threads:
            thread.join(5.0)

    def __enter__(self) -> BlackholeProxy:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _upstream(self) -> socket.socket:
        host = str(self._params.get("host") or "/tmp")  # noqa: S108  # libpq's own default
        port = int(self._params.get("port") or 5432)
        if host.startswith("/"):
            unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            unix.connect(str(Path(host) / f".s.PGSQL.{port}"))
            return unix
        return socket.create_connection((host, port))

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:  # `close` may be closing every socket now
                if self._closed.is_set():
                    client.close()
                    return
                server = self._upstream()
                self._sockets += [client, server]
                # One thread per connection, both directions: sockets stay
                # blocking, and only a socket select() found readable is read.
                pump = threading.Thread(
                    target=self._pump, args=(client, server), daemon=True
                )
                pump.start()
                self._threads.append(pump)

    def _pump(self, client: socket.socket, server: socket.socket) -> None:
        with selectors.DefaultSelector() as selector:
            try:
                selector.register(client, selectors.EVENT_READ, server)
                selector.register(server, selectors.EVENT_READ, client)
            except (ValueError, OSError):
                return  # closed by `close` before this thread got going
            while not self._closed.is_set():
                for key, _ in selector.select(_TICK):
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    try:
                        data = source.recv(_CHUNK)
                    except OSError:
                        return
                    if not data:
                        for sock in (client, server):
                            with contextlib.suppress(OSError):
                                sock.shutdown(socket.SHUT_RDWR)
                        return
                    if self._dropping.is_set():
                        continue  # swallowed
                    try:
                        key.data.sendall(data)
                    except OSError:
                        return
