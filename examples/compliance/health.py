"""A health endpoint for the store, served with the standard library."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from eventstore import EventStore, HealthStatus

HEALTH_PATH = "/health/database"


def _handler_for(store: EventStore) -> type[BaseHTTPRequestHandler]:
    class HealthHandler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path != HEALTH_PATH:
                self.send_error(HTTPStatus.NOT_FOUND)
                return
            report = store.health()
            # Load balancers read the status code; people and dashboards the body.
            status = (
                HTTPStatus.SERVICE_UNAVAILABLE
                if report.status is HealthStatus.UNAVAILABLE
                else HTTPStatus.OK
            )
            body = json.dumps(report.to_dict()).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            pass  # the demo's report says what happened; no access log on stderr

    return HealthHandler


@contextmanager
def serve_health(store: EventStore) -> Iterator[str]:
    """Serve GET /health/database on 127.0.0.1 at a free port; yield its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(store))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        host, port = server.server_address[:2]
        yield f"http://{host!s}:{port}{HEALTH_PATH}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
