"""A loopback webhook receiver: what the demo's alert block posts to, kept and shown (tests use it too).

It stands where the owner's phone would be (ntfy, Slack, a webhook of their own). Each POST's
JSON body (or text) is kept as a `Message`, handed to `on_message` (the demo prints it), and
listed on `GET /` as a small HTML page. It binds 127.0.0.1 only and reads at most
`MAX_BODY_BYTES` of a body (413 to more). Given a token, it takes only POSTs that carry it as
`Authorization: Bearer TOKEN` (401 otherwise), as ntfy does with an access token: the token is
the secret the alert block holds, and it is never kept, logged or shown here.
"""

from __future__ import annotations

import hmac
import html
import json
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from pydantic import BaseModel

__all__ = ["MAX_BODY_BYTES", "Message", "Receiver", "running_receiver"]

MAX_BODY_BYTES = 64 * 1024  # a notification is a few hundred bytes
_LOOPBACK = "127.0.0.1"


class Message(BaseModel):
    """One request the receiver got."""

    at: datetime
    path: str
    body: dict[str, Any] | str

    def text(self) -> str:
        """Subject and body when the block posted JSON with those keys, else the raw body."""
        if isinstance(self.body, dict):
            parts = [str(self.body[k]) for k in ("subject", "body") if k in self.body]
            return "\n".join(parts) if parts else json.dumps(self.body)
        return self.body


class Receiver:
    """The running receiver: its URL and the messages so far (thread-safe)."""

    def __init__(self, server: ThreadingHTTPServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._messages: list[Message] = []

    @property
    def url(self) -> str:
        return f"http://{_LOOPBACK}:{self._server.server_address[1]}"

    def add(self, message: Message) -> None:
        with self._lock:
            self._messages.append(message)

    def messages(self) -> list[Message]:
        with self._lock:
            return list(self._messages)

    def page(self) -> str:
        items = "".join(
            f"<li><time>{m.at:%H:%M:%S}</time> <code>{html.escape(m.path)}</code>"
            f"<pre>{html.escape(m.text())}</pre></li>"
            for m in self.messages()
        )
        return (
            "<!doctype html><meta charset=utf-8><title>homelab alerts received</title>"
            "<style>body{font:15px system-ui;margin:2em}pre{background:#f4f4f4;padding:.6em;white-space:pre-wrap}"
            "li{list-style:none;margin-bottom:1em}time{color:#666}</style>"
            f"<h1>Alerts received ({len(self.messages())})</h1><ul>{items}</ul>"
        )


def _handler(
    receiver: Receiver, on_message: Callable[[Message], None], token: str | None
) -> type[BaseHTTPRequestHandler]:
    expected = None if token is None else f"Bearer {token}".encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass  # the request line may carry a token in its query: never logged

        def _answer(self, status: int, body: bytes = b"", kind: str = "text/plain") -> None:
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._answer(200, receiver.page().encode(), "text/html; charset=utf-8")

        def do_POST(self) -> None:
            given = self.headers.get("Authorization", "").encode()
            if expected is not None and not hmac.compare_digest(given, expected):
                self.close_connection = True
                return self._answer(401)
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                length = -1
            if not 0 <= length <= MAX_BODY_BYTES:
                self.close_connection = True
                return self._answer(413)
            raw = self.rfile.read(length).decode("utf-8", "replace")
            try:
                body: dict[str, Any] | str = json.loads(raw) if raw.lstrip().startswith("{") else raw
            except json.JSONDecodeError:
                body = raw
            message = Message(at=datetime.now(UTC), path=self.path.split("?", 1)[0], body=body)
            receiver.add(message)
            on_message(message)
            self._answer(204)

    return Handler


@contextmanager
def running_receiver(
    on_message: Callable[[Message], None] = lambda _: None, port: int = 0, token: str | None = None
) -> Iterator[Receiver]:
    """Serve on 127.0.0.1:`port` (0: a free one) in a thread until the block ends; `token`: required bearer token."""
    server = ThreadingHTTPServer((_LOOPBACK, port), BaseHTTPRequestHandler)
    receiver = Receiver(server)
    server.RequestHandlerClass = _handler(receiver, on_message, token)
    thread = threading.Thread(target=server.serve_forever, name="alert-receiver", daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
