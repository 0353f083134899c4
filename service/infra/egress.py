"""Webhook connections held to the destination policy when they are made: an httpx transport
whose httpcore pool connects through a network backend that resolves the host itself, refuses
it if any address it resolves to is refused, and connects to an address it checked."""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import ssl
from collections.abc import AsyncIterator, Iterable, Iterator
from ipaddress import ip_address
from typing import Any

import httpcore
import httpx

from domain.egress import IPAddress, Networks, refused_as

SETTING = "WEBHOOK_ALLOW_NETWORKS"


class DestinationRefused(Exception):
    """The egress policy refuses this destination."""


def refusal(reason: str) -> str:
    return f"refused: {reason} ({SETTING})"


class _Stream(httpcore.AsyncNetworkStream):
    """An asyncio connection as httpcore sees it (anyio's costs more CPU per request: its
    socket lookups run on every request, for every pooled connection)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer
        self._socket = writer.get_extra_info("socket")

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.ReadError(str(exc) or type(exc).__name__) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:  # noqa: ASYNC109
        try:
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(str(exc)) from exc
        except OSError as exc:
            raise httpcore.WriteError(str(exc) or type(exc).__name__) from exc

    async def aclose(self) -> None:
        # Abort, not close: close() would keep the socket until a peer that reads nothing
        # took the buffered bytes, and TLS would wait for its close_notify.
        self._writer.transport.abort()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> httpcore.AsyncNetworkStream:
        try:
            await self._writer.start_tls(
                ssl_context, server_hostname=server_hostname, ssl_handshake_timeout=timeout
            )
        except TimeoutError as exc:
            await self.aclose()
            raise httpcore.ConnectTimeout(str(exc)) from exc
        except (OSError, ssl.SSLError) as exc:
            await self.aclose()
            raise httpcore.ConnectError(str(exc) or type(exc).__name__) from exc
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":  # asked of every idle connection on every request
            if self._socket is None or self._socket.fileno() < 0:
                return True
            poll = select.poll()
            poll.register(self._socket.fileno(), select.POLLIN)
            return bool(poll.poll(0))
        names = {"socket": "socket", "ssl_object": "ssl_object"}
        names |= {"client_addr": "sockname", "server_addr": "peername"}
        return self._writer.get_extra_info(names[info]) if info in names else None


def _literal(host: str) -> IPAddress | None:
    """The address a host is when it is an IP literal (httpcore gives IPv6 without brackets)."""
    try:
        return ip_address(host)
    except ValueError:
        return None


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Connects only to addresses the policy allows. The check is on the resolved addresses at
    connect time, so a name that resolves (or rebinds) to a refused address is refused; TLS
    still verifies the URL's host name (httpcore passes it to start_tls, not the address)."""

    def __init__(self, allowed: Networks) -> None:
        self._allowed = allowed

    async def resolve(self, host: str, port: int) -> list[IPAddress]:
        literal = _literal(host)
        if literal is not None:
            return [literal]
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(
                host, port, type=socket.SOCK_STREAM
            )
        except socket.gaierror as exc:
            raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror}") from exc
        found: dict[IPAddress, None] = {}
        for *_, sockaddr in infos:
            found[ip_address(sockaddr[0])] = None
        return list(found)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self.resolve(host, port)
        for address in addresses:  # every one: a name with one bad address is refused whole
            phrase = refused_as(address, self._allowed)
            if phrase is None:
                continue
            if addresses == [_literal(host)]:
                raise DestinationRefused(refusal(f"{address} is {phrase}"))
            raise DestinationRefused(refusal(f"{host} resolves to {address}, {phrase}"))
        error: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in addresses:
            try:
                async with asyncio.timeout(timeout):
                    reader, writer = await asyncio.open_connection(
                        str(address),
                        port,
                        local_addr=(local_address, 0) if local_address else None,
                    )
            except TimeoutError as exc:
                error = httpcore.ConnectTimeout(f"connecting to {address} timed out")
                error.__cause__ = exc
            except OSError as exc:
                error = httpcore.ConnectError(str(exc) or type(exc).__name__)
                error.__cause__ = exc
            else:
                sock = writer.get_extra_info("socket")
                for option in socket_options or ():
                    sock.setsockopt(*option)
                return _Stream(reader, writer)
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 (httpcore's interface)
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise DestinationRefused("refused: a unix socket is not a webhook destination")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


# httpcore's exceptions as httpx's, as httpx's own transport maps them (most specific first).
_ERRORS: list[tuple[type[Exception], type[httpx.TransportError]]] = [
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
]


@contextlib.contextmanager
def _as_httpx_errors() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for core, mapped in _ERRORS:
            if isinstance(exc, core):
                raise mapped(str(exc)) from exc
        raise


class _Body(httpx.AsyncByteStream):
    def __init__(self, stream: Any) -> None:
        self._stream = stream

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with _as_httpx_errors():
            async for part in self._stream:
                yield part

    async def aclose(self) -> None:
        await self._stream.aclose()  # unread body: httpcore closes the connection


class GuardedTransport(httpx.AsyncBaseTransport):
    """httpx requests over httpcore connection pools that connect through GuardedBackend, one
    pool per origin (httpcore's pool does work quadratic in its connections on every request;
    per origin they stay few). Never through a proxy: a proxy would connect for us, unchecked."""

    MAX_IDLE_POOLS = 64  # pools without a connection are dropped beyond this many

    def __init__(
        self, allowed: Networks, *, max_connections: int, ssl_context: ssl.SSLContext | None = None
    ) -> None:
        self._backend = GuardedBackend(allowed)
        self._max_connections = max_connections
        self._ssl_context = ssl_context or httpx.create_ssl_context()
        self._pools: dict[tuple[bytes, bytes, int | None], httpcore.AsyncConnectionPool] = {}

    async def _pool(self, url: httpx.URL) -> httpcore.AsyncConnectionPool:
        origin = (url.raw_scheme, url.raw_host, url.port)
        pool = self._pools.get(origin)
        if pool is None:
            if len(self._pools) >= self.MAX_IDLE_POOLS:
                for key, idle in list(self._pools.items()):
                    if not idle.connections:
                        del self._pools[key]
                        await idle.aclose()
            pool = self._pools[origin] = httpcore.AsyncConnectionPool(
                ssl_context=self._ssl_context,
                max_connections=self._max_connections,
                keepalive_expiry=5.0,
                network_backend=self._backend,
            )
        return pool

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        assert isinstance(request.stream, httpx.AsyncByteStream)
        core = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        pool = await self._pool(request.url)
        with _as_httpx_errors():
            response = await pool.handle_async_request(core)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_Body(response.stream),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        pools, self._pools = list(self._pools.values()), {}
        for pool in pools:
            await pool.aclose()
