"""uvicorn's httptools protocol with a deadline for request headers: a connection that opens
and sends nothing, or drips its headers, is answered 408 and closed after HEADER_TIMEOUT_S.
(uvicorn times out idle keep-alive connections, but not a request whose headers never end.)"""

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
        super().on_headers_complete()

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
