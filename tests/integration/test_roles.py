"""Roles on operator tokens: from ADMIN_TOKENS (`name:role:token`) and from the CLI
(`tokens create --role`); every write is audited with the token's name and role."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from service.infra.settings import Settings
from tests.conftest import RunningApi
from tests.integration.helpers import make_site, run_cli

ONCALL = "oncall-operator-token-0123456789abcdef"
WALL = "wall-viewer-token-0123456789abcdef"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
async def roles_api(settings: Settings) -> AsyncIterator[RunningApi]:
    """The API with one token of each role in ADMIN_TOKENS, old and new forms mixed."""
    tokens = f"dev:dev-admin-token,oncall:operator:{ONCALL},wall:viewer:{WALL}"
    with_roles = Settings.from_env(
        {}, database_url=settings.database_url, redis_url=settings.redis_url, admin_tokens=tokens
    )
    async with RunningApi(with_roles) as api:
        yield api


async def test_every_write_is_audited_with_the_token_name_and_role(
    roles_api: RunningApi, conn: asyncpg.Connection, db_url: str
) -> None:
    admin = bearer("dev-admin-token")
    async with httpx.AsyncClient(base_url=roles_api.url, headers=admin, timeout=30) as http:
        site = await make_site(http)
        replay = await http.post(
            "/v1/ops/outbox/replay",
            json={"site_id": site, "dry_run": True},
            headers=bearer(ONCALL),
        )
        assert replay.status_code == 200, replay.text
        assert replay.json()["audit"]["actor"] == "oncall"
        assert replay.json()["audit"]["role"] == "operator"
    env = {"DATABASE_URL": db_url, "LOG_JSON": "true"}
    assert (await run_cli("aggregates", "rebuild", "--site", str(site), env=env)).returncode == 0
    rows = await conn.fetch("SELECT actor, role, action FROM ops_audit ORDER BY id")
    assert [tuple(r) for r in rows] == [
        ("dev", "admin", "site.create"),
        ("oncall", "operator", "outbox.replay"),
        ("cli", "admin", "aggregates.rebuild"),
    ]


async def test_cli_tokens_carry_their_role_and_default_to_admin(
    conn: asyncpg.Connection, db_url: str
) -> None:
    env = {"DATABASE_URL": db_url, "LOG_JSON": "true"}
    wall = await run_cli("tokens", "create", "--name", "wall", "--role", "viewer", env=env)
    assert wall.returncode == 0, wall.stderr
    assert wall.stdout.startswith("viewer token 'wall':")
    plain = await run_cli("tokens", "create", "--name", "ops", env=env)
    assert plain.stdout.startswith("admin token 'ops':")
    bad = await run_cli("tokens", "create", "--name", "x", "--role", "root", env=env)
    assert bad.returncode == 2
    assert "invalid choice: 'root'" in bad.stderr
    rows = await conn.fetch("SELECT name, role FROM operator_tokens ORDER BY id")
    assert [tuple(r) for r in rows] == [("wall", "viewer"), ("ops", "admin")]
    audit = await conn.fetch("SELECT actor, role, params FROM ops_audit ORDER BY id")
    assert [(r["actor"], r["role"], r["params"]) for r in audit] == [
        ("cli", "admin", {"name": "wall", "role": "viewer"}),
        ("cli", "admin", {"name": "ops", "role": "admin"}),
    ]
