"""Roles on operator tokens: from ADMIN_TOKENS (`name:role:token`) and from the CLI
(`tokens create --role`); every write is audited with the token's name and role."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from service.infra.settings import Settings
from tests.conftest import RunningApi
from tests.integration.helpers import make_site, run_cli, table_counts

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


async def test_me_names_the_token_and_its_role_and_never_the_secret(
    roles_api: RunningApi, db_url: str
) -> None:
    env = {"DATABASE_URL": db_url, "LOG_JSON": "true"}
    made = await run_cli("tokens", "create", "--name", "night", "--role", "operator", env=env)
    cli_token = made.stdout.splitlines()[1]
    async with httpx.AsyncClient(base_url=roles_api.url, timeout=30) as http:
        for token, name, role in (
            (WALL, "wall", "viewer"),
            (ONCALL, "oncall", "operator"),
            ("dev-admin-token", "dev", "admin"),
            (cli_token, "night", "operator"),
        ):
            answer = await http.get("/v1/me", headers=bearer(token))
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"name": name, "role": role}
            assert token not in answer.text
        # Reads are open in development, but there is nobody to name without a token.
        assert (await http.get("/v1/me")).status_code == 401
        assert (await http.get("/v1/me", headers=bearer("emo_made-up"))).status_code == 401


async def test_a_role_too_low_is_403_naming_the_role_and_writes_nothing(
    roles_api: RunningApi, conn: asyncpg.Connection, db_url: str
) -> None:
    env = {"DATABASE_URL": db_url, "LOG_JSON": "true"}
    made = await run_cli("tokens", "create", "--name", "kiosk", "--role", "viewer", env=env)
    kiosk = made.stdout.splitlines()[1]
    before = await table_counts(conn)
    async with httpx.AsyncClient(base_url=roles_api.url, timeout=30) as http:
        for token, method, path, body, needed, held in (
            (WALL, "POST", "/v1/ops/outbox/replay", {"all_dead": True}, "operator", "viewer"),
            (kiosk, "POST", "/v1/alerts/1/ack", None, "operator", "viewer"),
            (
                ONCALL,
                "POST",
                "/v1/sites",
                {"name": "x", "emission_limit_kg": 1},
                "admin",
                "operator",
            ),
            (ONCALL, "GET", "/v1/devices", None, "admin", "operator"),
        ):
            answer = await http.request(method, path, json=body, headers=bearer(token))
            assert answer.status_code == 403, (path, answer.text)
            problem = answer.json()
            assert problem["type"] == "/problems/forbidden-role"
            assert problem["required_role"] == needed
            assert problem["role"] == held
            assert f"needs the {needed} role or above" in problem["detail"]
            assert answer.headers["content-type"] == "application/problem+json"
        index = (await http.get("/problems/forbidden-role")).json()
        assert index == {
            "type": "/problems/forbidden-role",
            "title": "Role not allowed",
            "status": 403,
        }
    assert await table_counts(conn) == before


async def test_a_mistyped_role_refuses_to_start_in_any_environment(db_url: str) -> None:
    for environment in ("development", "production"):
        env = {
            "DATABASE_URL": db_url,
            "ENVIRONMENT": environment,
            "ADMIN_TOKENS": f"ops:viewr:{WALL}",
        }
        done = await run_cli("serve", env=env)
        assert done.returncode == 2, done.stdout + done.stderr
        assert "'ops' names the role 'viewr'; roles are viewer, operator, admin" in done.stderr
        assert WALL not in done.stdout + done.stderr
