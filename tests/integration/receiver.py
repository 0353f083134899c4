"""A real local HTTP webhook receiver for tests: records what it gets; can fail, hang or go
down (its port closed) and come back on the same port."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import msgspec


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes

    @property
    def message(self) -> dict[str, Any]:
        decoded: dict[str, Any] = msgspec.json.decode(self.body)
        return decoded


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    request_queue_size = 256  # the default 5 drops connects under a burst of parallel sends


@dataclass
class Receiver:
    """mode: "ok" (204), "fail" (500), "hang" (answers after hang_s). stop()/start() close and
    reopen the port."""

    port: int = 0
    mode: str = "ok"
    hang_s: float = 30.0
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with receiver._lock:
                    receiver.attempts += 1
                    mode = receiver.mode
                if mode == "hang":
                    time.sleep(receiver.hang_s)
                if mode == "fail":
                    self.send_response(500)
                    self.end_headers()
                    self.wfile.write(b"receiver says no")
                    return
                with receiver._lock:
                    receiver.received.append(
                        Received({k.lower(): v for k, v in self.headers.items()}, body)
                    )
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def event_ids(self) -> list[str]:
        with self._lock:
            return [r.headers["webhook-id"] for r in self.received]

    def messages(self) -> list[dict[str, Any]]:
        with self._lock:
            return [r.message for r in self.received]
