"""Loads the named SQL blocks of sql/queries/*.sql: `-- name: x` then a purpose line, then SQL."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parents[2] / "sql"
_NAME = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def load(module: str) -> dict[str, str]:
    """Every named query of sql/queries/<module>.sql, keyed by name."""
    text = (SQL_DIR / "queries" / f"{module}.sql").read_text()
    parts = _NAME.split(text)[1:]
    queries = {}
    for name, body in zip(parts[::2], parts[1::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice in {module}.sql")
        queries[name] = body.strip()
    return queries
