"""schemathesis against the generated OpenAPI schema of a real API process (bounded examples).

Every operation, generated valid and invalid inputs: no 5xx, responses match their documented
schema and content type, and every error is application/problem+json.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import random
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

from tests.harness.databases import create_database
from tests.harness.services import PostgresServer, RedisServer
from tests.integration.apiproc import api_process

ADMIN = {"Authorization": "Bearer dev-admin-token"}
CASES = {"count": 0}
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "50"))  # per operation


@pytest.fixture(scope="module")
def fuzz_api(
    pg_server: PostgresServer, redis_server: RedisServer, template_db: str, tmp_path_factory: Any
) -> Iterator[dict[str, Any]]:
    """The API as a real process on its own database, with one site and a device key."""
    name = f"fuzz_{os.getpid()}"
    url = asyncio.run(create_database(pg_server, name, template=template_db))
    log = tmp_path_factory.mktemp("fuzz") / "api.log"
    limits = {"DEVICE_RATE_PER_S": "100000", "DEVICE_BURST": "100000"}
    with api_process(url, redis_server.url, log, **limits) as base:
        site = httpx.post(
            f"{base}/v1/sites", json={"name": "fuzz", "emission_limit_kg": 1000}, headers=ADMIN
        ).json()["id"]
        key = httpx.post(
            f"{base}/v1/devices", json={"device_id": "fuzzer", "site_ids": [site]}, headers=ADMIN
        ).json()["key"]
        yield {"base": base, "site": site, "key": key}
    print(f"schemathesis cases run: {CASES['count']}")


def _check(case: Any, api: dict[str, Any]) -> None:
    CASES["count"] += 1
    headers = dict(ADMIN)
    if case.path.endswith("/measurements"):
        headers = {"Authorization": f"Bearer {api['key']}"}
        if random.Random(CASES["count"]).random() < 0.7:  # mostly the site the key may use
            case.path_parameters["site_id"] = api["site"]
        headers["Idempotency-Key"] = f"fuzz-{CASES['count']}"
    response = case.call_and_validate(
        base_url=api["base"],
        headers={**headers, **(case.headers or {})},
        checks=[not_a_server_error, response_schema_conformance, content_type_conformance],
    )
    if response.status_code >= 400:
        content_type = response.headers.get("content-type", [""])
        assert str(content_type[0]).startswith("application/problem+json"), (
            case.method,
            case.formatted_path,
            response.status_code,
            response.text,
        )
        problem = response.json()
        assert {"type", "title", "status", "detail"} <= problem.keys()
        assert problem["status"] == response.status_code


def test_api_never_fails_and_matches_its_schema(fuzz_api: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_api['base']}/schema/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15
    for operation, mode in itertools.product(operations, GenerationMode):

        @settings(
            max_examples=EXAMPLES,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            derandomize=True,
            database=None,
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            _check(case, fuzz_api)

        try:
            run()
        except Unsatisfiable:
            # An operation without inputs (e.g. /health) has no invalid variant to generate.
            assert mode is GenerationMode.NEGATIVE, operation.label
    assert CASES["count"] >= len(operations) * 10
