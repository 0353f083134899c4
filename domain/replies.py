"""What is kept of a webhook receiver's reply or failure: a short, printable, secret-free line."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

SUMMARY_CHARS = 300
REDACTED = "[redacted]"
# Unicode categories shown as a space: controls, format characters (bidi overrides, zero
# widths), separators other than the plain space, unassigned and private-use code points.
_UNPRINTABLE = {"Cc", "Cf", "Co", "Cn", "Cs", "Zl", "Zp", "Zs"}


def summary(text: str, *, secrets: Iterable[str] = (), limit: int = SUMMARY_CHARS) -> str:
    """`text` on one line: unprintable characters become spaces, runs of spaces one, each of
    `secrets` (at least 4 characters) [redacted], at most `limit` characters (… marks a cut)."""
    for secret in secrets:
        if len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    text = "".join(" " if unicodedata.category(c) in _UNPRINTABLE else c for c in text)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"
