"""Operator tokens: named in settings, or created by the CLI (shown once, stored as a hash);
each stands for a name and a role."""

from __future__ import annotations

import hmac

import asyncpg

from domain.credentials import hash_secret, new_secret
from domain.roles import Actor, Role
from service import audit
from service.infra import db, queries
from service.infra.errors import RateLimited, UnknownOperator
from service.infra.ratelimit import UnknownTokens
from service.infra.settings import Settings

OPERATOR_TOKEN_PREFIX = "emo_"  # noqa: S105 - a label, not a secret
Q = "operators"


def operator_from_settings(token: str, tokens: dict[str, Actor]) -> Actor | None:
    """Who a settings-defined token names; every candidate is compared in constant time."""
    found = None
    for known, actor in tokens.items():
        if hmac.compare_digest(token.encode(), known.encode()):
            found = actor
    return found


class OperatorGate:
    """Who an operator token names (name and role), per API process: settings tokens compared
    in constant time; CLI-created ones looked up (so a revocation applies to the next request);
    unknown tokens remembered and each client address's guesses budgeted (UnknownTokens), so a
    flood of made-up tokens costs no database round trip per request."""

    def __init__(
        self, pool: asyncpg.Pool, settings: Settings, unknown: UnknownTokens | None = None
    ) -> None:
        self.pool = pool
        self.tokens = settings.operator_tokens
        self.unknown = unknown or UnknownTokens(
            settings.auth_failures_per_s, settings.auth_failure_burst
        )

    async def identify(self, token: str | None, client: str) -> Actor:
        """Who the token names; UnknownOperator, or RateLimited for an address out of guesses."""
        if token is None:
            raise UnknownOperator()
        actor = operator_from_settings(token, self.tokens)
        if actor is not None:
            return actor
        wait = self.unknown.wait_s(client)
        if wait:
            raise RateLimited(wait)
        digest = hash_secret(token)
        if not self.unknown.known(digest) and token.startswith(OPERATOR_TOKEN_PREFIX):
            async with db.connection(self.pool) as conn:
                row = await conn.fetchrow(queries.load(Q)["find_operator_token"], digest)
            if row is not None:
                return Actor(row["name"], row["role"])
        self.unknown.failed(client, digest)
        raise UnknownOperator()


async def create_operator_token(
    conn: asyncpg.Connection, *, name: str, role: Role, actor: Actor
) -> str:
    """A new named token with its role, audited; returns the secret (shown this once)."""
    secret = new_secret(OPERATOR_TOKEN_PREFIX)
    async with conn.transaction():
        await conn.fetchrow(
            queries.load(Q)["insert_operator_token"], name, hash_secret(secret), role
        )
        params = {"name": name, "role": role}
        await audit.record(conn, actor=actor, action="token.create", params=params)
    return secret


async def revoke_operator_token(conn: asyncpg.Connection, *, name: str, actor: Actor) -> bool:
    """Revoke the named token, audited; False if no token has that name."""
    async with conn.transaction():
        revoked = await conn.fetchval(queries.load(Q)["revoke_operator_token"], name)
        if revoked is None:
            return False
        await audit.record(conn, actor=actor, action="token.revoke", params={"name": name})
    return True
