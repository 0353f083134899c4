"""A fault-injecting TCP proxy: each connection passes, is delayed, loses its response after
the server answered, or is reset in the middle of the request body."""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import Counter

FAULTS = ("pass", "delay", "drop_response", "reset_mid_body")


def _reset(writer: asyncio.StreamWriter) -> None:
    """Close with RST (SO_LINGER 0), as a dying middlebox would."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


class ChaosProxy:
    def __init__(self, upstream_port: int, *, fault_rate: float, seed: int = 1) -> None:
        self.upstream_port = upstream_port
        self.fault_rate = fault_rate
        self.rng = random.Random(seed)
        self.seen: Counter[str] = Counter()
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    def _pick(self) -> str:
        if self.rng.random() >= self.fault_rate:
            return "pass"
        return self.rng.choice(FAULTS[1:])

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        fault = self._pick()
        self.seen[fault] += 1
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            _reset(writer)
            return
        try:
            if fault == "reset_mid_body":
                await self._cut_mid_body(reader, up_writer)
                _reset(writer)
                _reset(up_writer)
                return
            if fault == "delay":
                await asyncio.sleep(self.rng.uniform(0.05, 0.3))
            to_server = asyncio.create_task(self._pipe(reader, up_writer))
            if fault == "drop_response":
                # The server gets the whole request and answers; the client never hears it.
                await up_reader.read(1)
                _reset(writer)
                to_server.cancel()
                await asyncio.sleep(0.05)
                _reset(up_writer)
                return
            await asyncio.gather(to_server, self._pipe(up_reader, writer))
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            _reset(writer)
            _reset(up_writer)
        finally:
            for w in (writer, up_writer):
                with contextlib.suppress(Exception):
                    w.close()

    async def _cut_mid_body(
        self, reader: asyncio.StreamReader, up_writer: asyncio.StreamWriter
    ) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        body_part = await reader.read(self.rng.randint(1, 200))
        up_writer.write(head + body_part[: max(1, len(body_part) // 2)])
        await up_writer.drain()
        await asyncio.sleep(0.02)

    @staticmethod
    async def _pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        while data := await src.read(65536):
            dst.write(data)
            await dst.drain()
        with contextlib.suppress(OSError):
            dst.write_eof()
