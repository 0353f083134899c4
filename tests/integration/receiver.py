"""A real local HTTP webhook receiver for tests: records what it gets; can fail, hang, drip its
reply a byte at a time, answer with a huge body, or go down (its port closed) and come back on
the same port."""

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
    at: float = field(default_factory=time.monotonic)

    @property
    def message(self) -> dict[str, Any]:
        decoded: dict[str, Any] = msgspec.json.decode(self.body)
        return decoded


class _Server(ThreadingHTTPServer):
    allow_reuse_address = True
    request_queue_size = 256  # the default 5 drops connects under a burst of parallel sends


DRIP_REPLY = b"HTTP/1.1 204 No Content\r\nX-Drip: " + b"z" * 1_000_000  # never ends in time


@dataclass
class Receiver:
    """mode: "ok" (204), "fail" (500), "hang" (answers after hang_s), "drip" (writes its reply
    one byte every drip_s, a reply too long ever to end), "huge" (a 500 whose body is
    huge_bytes long, starting with huge_prefix; sent_bytes counts what it got out).
    stop()/start() close and reopen the port. in_flight_max: the most requests with one
    webhook-id it was handling at once."""

    port: int = 0
    mode: str = "ok"
    hang_s: float = 30.0
    drip_s: float = 2.0
    huge_bytes: int = 300 * 1024 * 1024
    huge_prefix: bytes = b""
    host: str = "127.0.0.1"
    received: list[Received] = field(default_factory=list)
    attempts: int = 0
    sent_bytes: int = 0
    in_flight_max: int = 0
    _in_flight: dict[str, int] = field(default_factory=dict)
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                msg_id = self.headers.get("webhook-id", "")
                with receiver._lock:
                    receiver.attempts += 1
                    mode = receiver.mode
                    n = receiver._in_flight[msg_id] = receiver._in_flight.get(msg_id, 0) + 1
                    receiver.in_flight_max = max(receiver.in_flight_max, n)
                try:
                    self._answer(mode, body)
                except OSError:  # the sender hung up on a drip or a huge body
                    pass
                finally:
                    with receiver._lock:
                        receiver._in_flight[msg_id] -= 1

            def _answer(self, mode: str, body: bytes) -> None:
                if mode == "drip":
                    for i in range(len(DRIP_REPLY)):
                        self.wfile.write(DRIP_REPLY[i : i + 1])
                        self.wfile.flush()
                        time.sleep(receiver.drip_s)
                if mode == "huge":
                    head = f"HTTP/1.1 500 Oops\r\nContent-Length: {receiver.huge_bytes}\r\n\r\n"
                    self.wfile.write(head.encode())
                    left, chunk = receiver.huge_bytes, receiver.huge_prefix
                    while left > 0:
                        self.wfile.write(chunk[:left])
                        with receiver._lock:
                            receiver.sent_bytes += len(chunk[:left])
                        left -= len(chunk)
                        chunk = bytes(64 * 1024)
                    return
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

        self._server = _Server((self.host, self.port), Handler)
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
