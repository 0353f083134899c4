"""A response's header block leaves with its body (api/protocol.py): one send, not two."""

from __future__ import annotations

import asyncio

from api.protocol import _HeadersWithBody


class _Transport:
    """Records what reaches the connection, send by send."""

    def __init__(self) -> None:
        self.sends: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.sends.append(bytes(data))

    def writelines(self, parts: tuple[bytes, ...]) -> None:
        self.sends.append(b"".join(parts))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str) -> str:
        return f"extra {name}"


HEAD = b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\n"


async def test_the_header_block_and_the_body_written_in_one_step_leave_in_one_send() -> None:
    transport = _Transport()
    cycle = _HeadersWithBody(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    cycle.write(HEAD)
    assert transport.sends == []
    cycle.write(b"{}")
    assert transport.sends == [HEAD + b"{}"]
    cycle.write(b"more")  # later writes go straight through
    await asyncio.sleep(0)
    assert transport.sends == [HEAD + b"{}", b"more"]


async def test_a_header_block_without_a_body_in_the_same_step_leaves_on_the_next_iteration() -> (
    None
):
    transport = _Transport()
    cycle = _HeadersWithBody(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    cycle.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    await asyncio.sleep(0)
    assert transport.sends == [b"HTTP/1.1 100 Continue\r\n\r\n"]
    cycle.write(HEAD)  # the response proper is not held behind it
    assert transport.sends[-1] == HEAD


async def test_closing_sends_what_is_held_first_and_the_rest_is_the_transport() -> None:
    transport = _Transport()
    cycle = _HeadersWithBody(transport, asyncio.get_running_loop())  # type: ignore[arg-type]
    cycle.write(HEAD)
    cycle.close()
    assert transport.sends == [HEAD]
    assert transport.closed and cycle.is_closing()
    await asyncio.sleep(0)  # the scheduled flush finds nothing left to send
    assert transport.sends == [HEAD]
    assert cycle.get_extra_info("peername") == "extra peername"  # type: ignore[operator]
