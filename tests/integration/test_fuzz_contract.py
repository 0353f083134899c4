"""schemathesis with every check (`--checks all`) against the live OpenAPI document of a real
API process: every operation, valid and invalid inputs, admin operations with the admin token
and ingest with a device key bound to the site it posts to. Zero failures.

Bounded (FUZZ_EXAMPLES per operation and generation mode) so it stays well under 90 s.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.core.parameters import ParameterLocation
from schemathesis.core.result import Ok

from tests.harness.databases import create_database
from tests.harness.services import PostgresServer, RedisServer
from tests.integration.apiproc import api_process

pytestmark = pytest.mark.slow
ADMIN = {"Authorization": "Bearer dev-admin-token"}
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))  # per operation and generation mode


@pytest.fixture(scope="module")
def fuzz_api(
    pg_server: PostgresServer, redis_server: RedisServer, template_db: str, tmp_path_factory: Any
) -> Iterator[dict[str, Any]]:
    """The API as a real process on its own database, with one site and a device key for it."""
    name = f"fuzz_{os.getpid()}"
    url = asyncio.run(create_database(pg_server, name, template=template_db))
    log = tmp_path_factory.mktemp("fuzz") / "api.log"
    limits = {
        "DEVICE_RATE_PER_S": "100000",
        "DEVICE_BURST": "100000",
        # Invalid credentials are sent on purpose (ignored_auth): they must get 401, not 429.
        "AUTH_FAILURES_PER_S": "100000",
        "AUTH_FAILURE_BURST": "100000",
    }
    with api_process(url, redis_server.url, log, **limits) as base:
        site = httpx.post(
            f"{base}/v1/sites", json={"name": "fuzz", "emission_limit_kg": 1000}, headers=ADMIN
        ).json()["id"]
        key = httpx.post(
            f"{base}/v1/devices", json={"device_id": "fuzzer", "site_ids": [site]}, headers=ADMIN
        ).json()["key"]
        yield {"base": base, "site": site, "key": key}


def _all_checks() -> list[Any]:
    load_all_checks()
    return [check for check in CHECKS.get_all() if callable(check)]


def _headers(case: Any, api: dict[str, Any], mode: GenerationMode) -> dict[str, str]:
    """The credentials an operation documents: a device key bound to the site for ingest (its
    site_id pinned to that site), the admin token for everything else."""
    if case.meta is not None and case.meta.is_negative_at(ParameterLocation.HEADER):
        return {}  # the generated headers are the point (a missing Authorization among them)
    if case.operation.definition.raw.get("operationId") != "ingestMeasurements":
        return dict(ADMIN)
    case.path_parameters = {**(case.path_parameters or {}), "site_id": api["site"]}
    if mode is GenerationMode.POSITIVE and case.headers is not None:
        # A generated key may repeat with another body (a documented 422): keep keys unique.
        case.headers["Idempotency-Key"] = uuid.uuid4().hex
    return {"Authorization": f"Bearer {api['key']}"}


def test_every_operation_passes_every_check(fuzz_api: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzz_api['base']}/schema/openapi.json")
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # an Err: an operation the schema cannot describe
        operations.append(result.ok())
    assert len(operations) >= 20
    checks = _all_checks()
    failures: dict[tuple[str, str], str] = {}
    cases = 0
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
            nonlocal cases
            cases += 1
            headers = _headers(case, fuzz_api, case.meta.generation.mode)
            try:
                case.call_and_validate(
                    base_url=fuzz_api["base"],
                    headers={**headers, **(case.headers or {})},
                    checks=checks,
                )
            except (AssertionError, BaseExceptionGroup) as exc:
                # Collected, not raised: hypothesis would spend long shrinking each one. The
                # request comes first, as curl: the check's message alone does not show it.
                for failure in getattr(exc, "exceptions", [exc]):
                    key = (case.operation.label, type(failure).__name__)
                    failures.setdefault(key, f"{case.as_curl_command()}\n{failure}"[:1500])

        try:
            run()
        except Unsatisfiable:
            # An operation without inputs (e.g. /health) has no invalid variant to generate.
            assert mode is GenerationMode.NEGATIVE, operation.label
    print(f"schemathesis: {cases} cases, {len(failures)} distinct failures")
    for (label, kind), text in sorted(failures.items()):
        print(f"--- {label} {kind}\n{text}")
    assert cases >= len(operations) * 10
    assert not failures, sorted(failures)
