"""Log values never carry a raw control character or Unicode line separator."""

from __future__ import annotations

import json
import logging

from service.infra.logs import escape, escape_controls, stdlib_formatter


def test_line_breaking_and_control_characters_are_escaped() -> None:
    assert escape("/a\u2028b\u2029c\r\nd\x1be\x85f\x7f") == (
        "/a\\u2028b\\u2029c\\r\\nd\\x1be\\x85f\\x7f"
    )


def test_printable_text_is_left_alone() -> None:
    text = "/v1/sites/7?x=é€😀 \\n"
    assert escape(text) == text


def test_every_string_value_of_an_event_is_escaped() -> None:
    event = {"event": "request", "path": "/x\u2028", "status": 404, "ids": ["a"]}
    assert escape_controls(None, "info", event) == {
        "event": "request",
        "path": "/x\\u2028",
        "status": 404,
        "ids": ["a"],
    }


def test_stdlib_records_render_as_one_escaped_json_line() -> None:
    record = logging.LogRecord(
        "uvicorn.error", logging.INFO, __file__, 1, "GET %s", ("/x\u2029y\nz",), None
    )
    line = stdlib_formatter(json=True).format(record)
    assert "\n" not in line and "\u2029" not in line
    parsed = json.loads(line)
    assert parsed["event"] == "GET /x\\u2029y\\nz"
    assert (parsed["level"], parsed["logger"]) == ("info", "uvicorn.error")
    assert "timestamp" in parsed
