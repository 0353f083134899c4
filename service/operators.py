"""Operator tokens: named in settings, or created by the CLI (shown once, stored as a hash)."""

from __future__ import annotations

import hmac

import asyncpg

from domain.credentials import hash_secret, new_secret
from service import audit
from service.infra import queries

OPERATOR_TOKEN_PREFIX = "emo_"  # noqa: S105 - a label, not a secret
Q = "operators"


def operator_from_settings(token: str, tokens: dict[str, str]) -> str | None:
    """The name of a settings-defined token; every candidate is compared in constant time."""
    found = None
    for known, name in tokens.items():
        if hmac.compare_digest(token.encode(), known.encode()):
            found = name
    return found


async def operator_for_token(
    conn: asyncpg.Connection, token: str, settings_tokens: dict[str, str]
) -> str | None:
    """The operator's name for a token from settings or created by the CLI; None if unknown."""
    name = operator_from_settings(token, settings_tokens)
    if name is None and token.startswith(OPERATOR_TOKEN_PREFIX):
        value = await conn.fetchval(queries.load(Q)["find_operator_token"], hash_secret(token))
        name = str(value) if value is not None else None
    return name


async def create_operator_token(conn: asyncpg.Connection, *, name: str, actor: str) -> str:
    """A new named token, audited; returns the secret (shown this once)."""
    secret = new_secret(OPERATOR_TOKEN_PREFIX)
    async with conn.transaction():
        await conn.fetchrow(queries.load(Q)["insert_operator_token"], name, hash_secret(secret))
        await audit.record(conn, actor=actor, action="token.create", params={"name": name})
    return secret


async def revoke_operator_token(conn: asyncpg.Connection, *, name: str, actor: str) -> bool:
    """Revoke the named token, audited; False if no token has that name."""
    async with conn.transaction():
        revoked = await conn.fetchval(queries.load(Q)["revoke_operator_token"], name)
        if revoked is None:
            return False
        await audit.record(conn, actor=actor, action="token.revoke", params={"name": name})
    return True
