"""`serves`: the readiness poll the demo waits on, against a real HTTP server and a closed port."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from homelab.health.http import serves
from tests.fixtures.net import LOOPBACK, free_port


class _Ready(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200 if self.path == "/ready" else 503)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def server_url() -> Iterator[str]:
    server = ThreadingHTTPServer((LOOPBACK, 0), _Ready)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://{LOOPBACK}:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_a_200_serves_and_anything_else_does_not(server_url: str) -> None:
    assert serves(f"{server_url}/ready")
    assert not serves(f"{server_url}/loading")  # 503: up, not ready
    assert not serves(f"http://{LOOPBACK}:{free_port()}/ready")  # refused: not yet
