"""Liveness, readiness and the problem-type index."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.datastructures import State
from litestar.exceptions import NotFoundException
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import FromPath

from api.auth import requires
from api.problems import ALL_TYPES, problem_page, problem_types
from service.infra import health


class Liveness(msgspec.Struct):
    status: str


class ProblemTypeOut(msgspec.Struct):
    type: str
    title: str
    status: int


_JSON = "application/json"
_HTML = "text/html"


class Readiness(msgspec.Struct):
    status: str
    postgres: str
    redis: str


@get("/health", operation_id="health", tags=["ops"], opt=requires("public"))
async def live() -> Liveness:
    """The process is up (no dependency is checked)."""
    return Liveness(status="ok")


@get("/ready", operation_id="ready", tags=["ops"], opt=requires("public"))
async def ready(state: State) -> Response[Readiness]:
    """503 only when Postgres is unreachable: ingest works without Redis, so Redis is advisory.
    Answered from a cache at most READY_CACHE_S old."""
    probes: health.Readiness = state.readiness
    pg, redis = await probes.check()
    status = 200 if pg else 503
    body = Readiness(
        status="ok" if pg and redis else ("degraded" if pg else "unavailable"),
        postgres="ok" if pg else "unreachable",
        redis="ok" if redis else "degraded",
    )
    return Response(body, status_code=status)


@get("/problems", operation_id="listProblemTypes", tags=["docs"], opt=requires("public"))
async def list_problem_types() -> list[dict[str, Any]]:
    """Every problem `type` the API answers with."""
    return problem_types()


@get(
    "/problems/{slug:str}",
    operation_id="getProblemType",
    tags=["docs"],
    opt=requires("public"),
    responses={
        200: ResponseSpec(
            ProblemTypeOut,
            description="JSON; an HTML page when the client prefers text/html (a browser)",
        )
    },
)
async def get_problem_type(request: Request[Any, Any, Any], slug: FromPath[str]) -> Response[Any]:
    """What one problem `type` means: JSON, or a page for a person (Accept: text/html)."""
    kind = ALL_TYPES.get(slug)
    if kind is None:
        raise NotFoundException(f"no problem type {slug!r}")
    if request.accept.best_match([_JSON, _HTML], default=_JSON) == _HTML:
        return Response(problem_page(kind), media_type=_HTML, headers={"Vary": "Accept"})
    body = ProblemTypeOut(type=kind.uri, title=kind.title, status=kind.status)
    return Response(body, headers={"Vary": "Accept"})
