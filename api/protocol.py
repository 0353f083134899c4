"""uvicorn's httptools protocol with a deadline for request headers: a connection that opens
and sends nothing, or drips its headers, is answered 408 and closed after HEADER_TIMEOUT_S.
(uvicorn times out idle keep-alive connections, but not a request whose headers never end.)

And a response's header block leaves with its body: uvicorn writes each ASGI message as it
comes, two sends (two syscalls, two TCP segments, two wake-ups of the client) for every
response of this app, whose body always follows its start in the same step."""

from __future__ import annotations

import asyncio

import msgspec
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from api.problems import HEADER_TIMEOUT
from service.infra.settings import Settings

_TIMEOUT_S: list[float] = []  # read from settings at the first connection, not at import


def _timeout_s() -> float:
    if not _TIMEOUT_S:
        _TIMEOUT_S.append(Settings.from_env().header_timeout_s)
    return _TIMEOUT_S[0]


_BODY = msgspec.json.encode(
    {
        "type": HEADER_TIMEOUT.uri,
        "title": HEADER_TIMEOUT.title,
        "status": HEADER_TIMEOUT.status,
        "detail": "The request headers did not arrive in time; nothing was done.",
    }
)
_TIMED_OUT = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/problem+json\r\n"
    b"connection: close\r\ncontent-length: " + str(len(_BODY)).encode() + b"\r\n\r\n" + _BODY
)


class GuardedHttpTools(HttpToolsProtocol):
    _deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._arm()

    def on_headers_complete(self) -> None:
        self._disarm()
        before = self.cycle
        super().on_headers_complete()
        if self.cycle is not None and self.cycle is not before:  # a request to answer
            self.cycle.transport = _HeadersWithBody(self.transport, self.loop)  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(_timeout_s(), self._headers_too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        if not self.transport.is_closing():
            self.transport.write(_TIMED_OUT)
            self.transport.close()


_FIRST, _HOLDING, _THROUGH = range(3)


class _HeadersWithBody:
    """The transport as one request's cycle sees it: its first write (the response's header
    block, or 100 Continue) is held until its next write, and both go in one send; held at
    most until the loop's next iteration (a body that comes later, or none). Every other
    write, and everything else, goes straight to the connection's transport."""

    __slots__ = ("_held", "_loop", "_state", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held = b""
        self._state = _FIRST

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._state == _THROUGH:
            self._transport.write(data)
        elif self._state == _FIRST:
            self._held = bytes(data)
            self._state = _HOLDING
            self._loop.call_soon(self._flush)
        else:
            held, self._held, self._state = self._held, b"", _THROUGH
            self._transport.writelines((held, data))

    def _flush(self) -> None:
        if self._state == _HOLDING:
            held, self._held, self._state = self._held, b"", _THROUGH
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> object:
        return getattr(self._transport, name)
