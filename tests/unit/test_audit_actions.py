"""The audit page suggests every action the service records, so an operator filtering the log
finds a new action (e.g. subscription.pause) without knowing its name; an action added without
its suggestion (or a suggestion no code records) fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_audit_page_suggests_every_recorded_action() -> None:
    recorded: set[str] = set()
    for path in (ROOT / "service").rglob("*.py"):
        recorded |= set(re.findall(r'"([a-z_]+\.[a-z_]+)"', _audit_calls(path.read_text())))
    page = (ROOT / "api/static/js/views/audit.js").read_text()
    block = re.search(r"const ACTIONS = \[(.*?)\];", page, re.S)
    assert block is not None
    suggested = set(re.findall(r'"([a-z_.]+)"', block.group(1)))
    assert "outbox.replay" in recorded  # the scan finds the actions at all
    assert sorted(recorded - suggested) == [], "recorded actions the audit page does not suggest"
    assert sorted(suggested - recorded) == [], "suggested actions nothing records"


def _audit_calls(source: str) -> str:
    """The text of every `action=...` argument, up to the end of its line."""
    return "\n".join(re.findall(r"action=([^\n]*)", source))
