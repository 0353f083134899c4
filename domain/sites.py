"""Rules for a site's fields that a type cannot say: a readable name, bounded metadata."""

from __future__ import annotations

import re
from typing import Any

import msgspec

from domain.errors import FieldError

MAX_METADATA_BYTES = 16 * 1024
MAX_METADATA_DEPTH = 32
# C0 and C1 controls (incl. DEL), and the invisible marks and overrides that reorder text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BIDI = re.compile(r"[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def name_errors(name: str) -> list[FieldError]:
    """What makes a site name unreadable or misleading on a dashboard or in a report."""
    if _CONTROL.search(name):
        return [FieldError("/name", "must not contain control characters")]
    if _BIDI.search(name):
        return [FieldError("/name", "must not contain bidirectional control characters")]
    if not name.strip():
        return [FieldError("/name", "must not be blank")]
    return []


def metadata_errors(metadata: dict[str, Any]) -> list[FieldError]:
    """Metadata is free-form, within bounds: nested at most 32 deep, at most 16 KiB as JSON."""
    if _depth(metadata) > MAX_METADATA_DEPTH:
        return [FieldError("/metadata", f"nested more than {MAX_METADATA_DEPTH} levels deep")]
    size = len(msgspec.json.encode(metadata))
    if size > MAX_METADATA_BYTES:
        return [
            FieldError("/metadata", f"{size} bytes as JSON; at most {MAX_METADATA_BYTES} allowed")
        ]
    return []


def _depth(value: Any) -> int:
    """How deep objects and arrays nest (a scalar is 0), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        if isinstance(node, dict | list):
            deepest = max(deepest, depth)
            if depth <= MAX_METADATA_DEPTH:  # past the limit the answer is known
                stack.extend((child, depth + 1) for child in children)
    return deepest
