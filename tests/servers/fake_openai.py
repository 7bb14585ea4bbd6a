"""A small OpenAI-compatible server with scripted faults, for the backend's fault tests.

It runs in a thread of the test process on a free loopback port. Each entry of
``FakeServer.script`` is the reply to one ``POST /chat/completions``. When the script
runs out, the server repeats its last entry. ``GET /models`` lists ``FakeServer.models``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["FakeServer", "Reply", "serve"]


@dataclass(frozen=True)
class Reply:
    """One scripted reply to a chat completion request.

    ``kind`` is ``"stream"`` (server-sent events of ``text``, one word a chunk),
    ``"json"`` (a whole completion), ``"raw"`` (``body`` as is, with ``status``), or
    ``"drop"`` (close the connection after ``chunks`` stream chunks).
    """

    kind: str = "stream"
    text: str = "def loss_fn(a, b):\n    return (a - b).abs().mean()\n"
    status: int = 200
    body: str = ""
    content_type: str = "application/json"
    delay: float = 0.0
    """Seconds to wait before sending anything."""
    chunks: int = 0
    headers: dict[str, str] = field(default_factory=dict)


class FakeServer:
    """The state shared by the request handlers: the script and what was received."""

    def __init__(self, script: list[Reply], models: list[str]) -> None:
        self.script = list(script)
        self.models = models
        self.requests: list[dict[str, Any]] = []
        self.authorization: list[str | None] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.lock = threading.Lock()
        self.url = ""

    def next_reply(self, body: dict[str, Any]) -> Reply:
        with self.lock:
            self.requests.append(body)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            return self.script.pop(0) if len(self.script) > 1 else self.script[0]

    def finished(self) -> None:
        with self.lock:
            self.in_flight -= 1


def _event(data: str) -> bytes:
    """Frame one server-sent event as an HTTP chunk, as uvicorn streams responses."""
    event = f"data: {data}\n\n".encode()
    return f"{len(event):x}\r\n".encode() + event + b"\r\n"


def _stream_chunks(text: str) -> Iterator[dict[str, Any]]:
    yield {"choices": [{"index": 0, "delta": {"role": "assistant"}}]}
    for word in text.split(" "):
        yield {"choices": [{"index": 0, "delta": {"content": word + " "}}]}
    yield {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    yield {"choices": [], "usage": {"prompt_tokens": 7, "completion_tokens": 11}}


class _Handler(BaseHTTPRequestHandler):
    server_state: FakeServer
    protocol_version = "HTTP/1.1"
    _counted = False

    def log_message(self, format: str, *args: Any) -> None:
        return None

    def _send(self, status: int, body: bytes, content_type: str, headers: dict[str, str]) -> None:
        self._finish()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path.rstrip("/").endswith("/models"):
            listing = {"object": "list", "data": [{"id": m} for m in self.server_state.models]}
            self._send(200, json.dumps(listing).encode(), "application/json", {})
        else:
            self._send(404, b'{"detail": "Not Found"}', "application/json", {})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length", "0"))
        body = json.loads(self.rfile.read(length) or b"{}")
        state = self.server_state
        state.authorization.append(self.headers.get("Authorization"))
        reply = state.next_reply(body)
        self._counted = True
        try:
            time.sleep(reply.delay)
            self._answer(reply, body)
        except (BrokenPipeError, ConnectionResetError):
            pass
        finally:
            self._finish()

    def _finish(self) -> None:
        # The request stops counting as in flight before its last bytes go out: once the
        # client has them it may send the next request before this thread runs again.
        if self._counted:
            self._counted = False
            self.server_state.finished()

    def _answer(self, reply: Reply, body: dict[str, Any]) -> None:
        if reply.kind == "raw":
            self._send(reply.status, reply.body.encode(), reply.content_type, reply.headers)
            return
        if reply.kind == "json":
            completion = {
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": reply.text},
                     "finish_reason": "stop"}
                ],
                "usage": {"prompt_tokens": 5, "completion_tokens": 9},
            }
            self._send(200, json.dumps(completion).encode(), "application/json", {})
            return

        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self.close_connection = True
        for index, chunk in enumerate(_stream_chunks(reply.text)):
            if reply.kind == "drop" and index == reply.chunks:
                # Closing without the final empty chunk is what a killed server does.
                self.wfile.flush()
                return
            self.wfile.write(_event(json.dumps(chunk)))
            self.wfile.flush()
        self._finish()
        self.wfile.write(_event("[DONE]") + b"0\r\n\r\n")
        self.wfile.flush()


class _Server(ThreadingHTTPServer):
    daemon_threads = True


def serve(script: list[Reply], models: list[str] | None = None) -> tuple[FakeServer, _Server]:
    """Start a fake server on a free loopback port in a daemon thread; return its state."""
    state = FakeServer(script, models if models is not None else ["fake-model"])
    handler = type("Handler", (_Handler,), {"server_state": state})
    server = _Server(("127.0.0.1", 0), handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return state, server
