"""Make the generated OpenAPI tell the truth about errors: every one is problem+json."""

from __future__ import annotations

from typing import Any

from litestar.openapi.spec import OpenAPI, OpenAPIMediaType, OpenAPIResponse

from api.problems import PROBLEM_JSON
from api.schemas import Problem, inline_schema

_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def document_problems(schema: OpenAPI) -> None:
    """Every documented 4xx/5xx answers application/problem+json, and every operation gets a
    `default` response saying so for the statuses it does not list."""
    problem: Any = inline_schema(Problem)
    media = {PROBLEM_JSON: OpenAPIMediaType(schema=problem)}
    for item in (schema.paths or {}).values():
        for method in _METHODS:
            operation = getattr(item, method, None)
            if operation is None:
                continue
            responses = operation.responses or {}
            for code, response in responses.items():
                if code[:1] in "45" and isinstance(response, OpenAPIResponse):
                    response.content = dict(media)
            responses.setdefault(
                "default", OpenAPIResponse(description="An RFC 9457 problem", content=dict(media))
            )
            operation.responses = responses
