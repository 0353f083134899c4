"""Every route of the app against every kind of caller: no token, a device key, and a viewer,
operator and admin token. A route missing from ROUTES (a new one) fails the suite until it is
added with the access it needs; each declaration is then checked by calling the real API."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any, cast

import httpx
import pytest
from litestar import Litestar

from api.app import create_app
from api.auth import Access, declared_access, route_handlers
from domain.roles import Role, allows
from service.infra.settings import Settings
from tests.conftest import RunningApi

TOKENS: dict[Role, str] = {
    "viewer": "viewer-token-for-the-route-matrix-0123456789",
    "operator": "operator-token-for-the-route-matrix-0123456789",
    "admin": "admin-token-for-the-route-matrix-0123456789",
}
CALLERS = ("no token", "device key", "viewer", "operator", "admin")
# (method, path as the app declares it) -> who may call it. Litestar's own OPTIONS answers
# (the Allow header) are public on every path and are not listed.
ROUTES: dict[tuple[str, str], Access] = {
    ("POST", "/v1/sites/{site_id:int}/measurements"): "device",
    ("GET", "/v1/sites"): "viewer",
    ("POST", "/v1/sites"): "admin",
    ("GET", "/v1/sites/{site_id:int}"): "viewer",
    ("PATCH", "/v1/sites/{site_id:int}"): "admin",
    ("GET", "/v1/sites/{site_id:int}/hourly"): "viewer",
    ("GET", "/v1/sites/{site_id:int}/reports"): "viewer",
    ("GET", "/v1/ops/queue"): "viewer",
    ("GET", "/v1/ops/outbox"): "viewer",
    ("GET", "/v1/ops/queue/history"): "viewer",
    ("GET", "/v1/ops/workers"): "viewer",
    ("GET", "/v1/ops/outbox/{event_id:int}"): "viewer",
    ("POST", "/v1/ops/outbox/replay"): "operator",
    ("POST", "/v1/ops/deliveries/replay"): "operator",
    ("GET", "/v1/ops/audit"): "operator",
    ("GET", "/v1/devices"): "admin",
    ("POST", "/v1/devices"): "admin",
    ("DELETE", "/v1/devices/{key_id:int}"): "admin",
    ("GET", "/v1/alerts"): "viewer",
    ("POST", "/v1/alerts/{alert_id:int}/ack"): "operator",
    ("GET", "/v1/subscriptions"): "viewer",
    ("POST", "/v1/subscriptions"): "admin",
    ("DELETE", "/v1/subscriptions/{subscription_id:int}"): "admin",
    ("GET", "/v1/subscriptions/{subscription_id:int}/deliveries"): "viewer",
    ("POST", "/v1/subscriptions/{subscription_id:int}/pause"): "operator",
    ("POST", "/v1/subscriptions/{subscription_id:int}/resume"): "operator",
    ("GET", "/v1/ops/deliveries"): "viewer",
    ("GET", "/v1/alerts/groups"): "viewer",
    ("POST", "/v1/alerts/ack"): "operator",
    ("GET", "/v1/me"): "viewer",
    ("GET", "/metrics"): "viewer",
    ("GET", "/health"): "public",
    ("GET", "/ready"): "public",
    ("GET", "/problems"): "public",
    ("GET", "/problems/{slug:str}"): "public",
    ("GET", "/"): "public",
    ("GET", "/static/{file_path:path}"): "public",
    ("HEAD", "/static/{file_path:path}"): "public",
    ("GET", "/schema"): "public",
    ("GET", "/schema/docs"): "public",
    ("GET", "/schema/openapi.json"): "public",
    ("GET", "/schema/{path:str}"): "public",
}
# Reads that need a token in development too: there is nobody to name without one.
TOKEN_ALWAYS = {("GET", "/v1/me")}
# Path parameters: ids nothing has, so an allowed write finds nothing to change (404 / 422).
_PARAMS = {"int": "987654", "str": "unauthorized", "path": "style.css"}
_PARAM = re.compile(r"\{(\w+):(\w+)\}")


def app_routes(settings: Settings) -> dict[tuple[str, str], Access]:
    """(method, path) -> declared access of every route of the app but Litestar's OPTIONS."""
    found = {}
    # The app inside the RequestContext: HeadAsGet, which passes Litestar's attributes through.
    app = cast(Litestar, create_app(settings).app)
    for path, handler in route_handlers(app):
        for method in handler.http_methods:  # type: ignore[attr-defined]
            if method == "OPTIONS":
                assert declared_access(handler) == "public", path
            else:
                found[method, path] = declared_access(handler)
    return found


def allowed(access: Access, caller: str, *, production: bool, token_always: bool) -> bool:
    if access == "public":
        return True
    if access == "device":
        return caller == "device key"
    if access == "viewer" and not production and not token_always:
        return True  # reads stay open in development
    return caller in TOKENS and allows(caller, access)


def roles_settings(settings: Settings, environment: str) -> Settings:
    tokens = ",".join(f"{role}-user:{role}:{token}" for role, token in TOKENS.items())
    return Settings.from_env(
        {},
        database_url=settings.database_url,
        redis_url=settings.redis_url,
        environment=environment,
        admin_tokens=tokens,
        auth_failure_burst=100_000,  # the device key counts as a made-up token on every route
    )


def test_every_route_declares_the_access_the_table_expects(settings: Settings) -> None:
    declared = app_routes(roles_settings(settings, "production"))
    missing = sorted(set(declared) - set(ROUTES))
    assert not missing, f"routes without an expected access: add them to ROUTES: {missing}"
    assert sorted(set(ROUTES) - set(declared)) == []
    assert {route: declared[route] for route in ROUTES} == ROUTES


@pytest.fixture(params=["production", "development"])
async def matrix_api(
    request: pytest.FixtureRequest, settings: Settings
) -> AsyncIterator[tuple[RunningApi, Settings, dict[str, dict[str, str]]]]:
    """The API with a token of each role, and the headers of each kind of caller."""
    configured = roles_settings(settings, request.param)
    async with RunningApi(configured) as api:
        admin = {"Authorization": f"Bearer {TOKENS['admin']}"}
        async with httpx.AsyncClient(base_url=api.url, headers=admin) as http:
            site = await http.post("/v1/sites", json={"name": "m", "emission_limit_kg": 1})
            made = await http.post(
                "/v1/devices", json={"device_id": "d", "site_ids": [site.json()["id"]]}
            )
        headers: dict[str, dict[str, str]] = {
            "no token": {},
            "device key": {"Authorization": f"Bearer {made.json()['key']}"},
            **{role: {"Authorization": f"Bearer {token}"} for role, token in TOKENS.items()},
        }
        yield api, configured, headers


async def test_every_route_answers_every_caller_as_its_role_says(
    matrix_api: tuple[RunningApi, Settings, dict[str, dict[str, str]]],
) -> None:
    api, settings, headers = matrix_api
    production = settings.environment == "production"
    wrong = []
    async with httpx.AsyncClient(base_url=api.url, timeout=30) as http:
        for (method, path), access in app_routes(settings).items():
            url = _PARAM.sub(lambda m: _PARAMS[m.group(2)], path)
            body: Any = {} if method in ("POST", "PATCH") else None
            for caller in CALLERS:
                answer = await http.request(method, url, json=body, headers=headers[caller])
                may = allowed(
                    access,
                    caller,
                    production=production,
                    token_always=(method, path) in TOKEN_ALWAYS,
                )
                if may and (answer.status_code in (401, 403, 429) or answer.status_code >= 500):
                    wrong.append(f"{caller} {method} {url}: {answer.status_code}, expected access")
                if not may and not _refused(answer, caller, access):
                    wrong.append(f"{caller} {method} {url}: {answer.status_code}, expected refusal")
    assert not wrong, "\n".join(wrong)


def _refused(answer: httpx.Response, caller: str, access: Access) -> bool:
    """401 for no token, a device key, or a token on the device route; 403 naming the role
    for a token whose role is too low."""
    if caller not in TOKENS or access == "device":
        return answer.status_code == 401
    problem = answer.json()
    return (
        answer.status_code == 403
        and problem["type"] == "/problems/forbidden-role"
        and problem["required_role"] == access
        and problem["role"] == caller
    )


async def test_the_openapi_document_states_the_role_of_every_operation(
    api: RunningApi,
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as http:
        document = (await http.get("/schema/openapi.json")).json()
        page = (await http.get("/schema")).text
    stated = {
        (method.upper(), path): op["x-required-role"]
        for path, item in document["paths"].items()
        for method, op in item.items()
    }
    expected = {
        (method, re.sub(r"\{(\w+):\w+\}", r"{\1}", path)): access
        for (method, path), access in ROUTES.items()
        if not path.startswith(("/schema", "/static")) and path not in ("/", "/metrics")
    }
    assert stated == expected
    replay = document["paths"]["/v1/ops/outbox/replay"]["post"]
    assert "Access: a token with the role operator or admin." in replay["description"]
    assert replay["security"] == [{"operatorToken": []}]
    assert document["paths"]["/health"]["get"]["security"] == []
    assert "forbidden-role" in replay["responses"]["403"]["description"]
    sites = document["paths"]["/v1/sites"]["get"]["description"]
    assert sites.endswith("(production); open without a token in development.")
    assert "Access: a token with the role operator or admin." in page
