"""Decoding request bodies with msgspec, turning its errors into JSON-pointer field errors."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import msgspec
from litestar import Request
from litestar.exceptions import InternalServerException
from litestar.openapi.spec import (
    Example,
    OpenAPIMediaType,
    Operation,
    Parameter,
    Reference,
    RequestBody,
)

from api.errors import (
    BodyTimeout,
    ClientDisconnected,
    InvalidBody,
    MalformedJson,
    UnsupportedMediaType,
)
from api.schemas import inline_schema
from domain.errors import FieldError
from service.infra.settings import Settings

T = TypeVar("T")
# msgspec ends a validation message with " - at `$.measurements[3].ts`".
_AT = re.compile(r"^(?P<msg>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_STEP = re.compile(r"\.([^.\[]+)|\[(\d+)\]")


def _pointer(path: str) -> str:
    steps = []
    for name, index in _STEP.findall(path):
        token = name or index
        steps.append(token.replace("~", "~0").replace("/", "~1"))
    return "/" + "/".join(steps) if steps else ""


def field_error(exc: msgspec.ValidationError) -> FieldError:
    match = _AT.match(str(exc))
    assert match is not None  # the pattern matches any string
    return FieldError(_pointer(match.group("path") or ""), match.group("msg"))


async def decode_json(request: Request[Any, Any, Any], decoder: msgspec.json.Decoder[T]) -> T:
    """The request body as T; 415 unless JSON, 400 if malformed, 422 with a pointer if invalid."""
    media_type = request.content_type[0]
    if media_type != "application/json" and not media_type.endswith("+json"):
        raise UnsupportedMediaType()
    settings: Settings = request.app.state.settings
    try:
        # A client that sends its headers and then stalls (or drips) is cut off here.
        async with asyncio.timeout(settings.body_read_timeout_s):
            body = await request.body()
    except TimeoutError as exc:
        raise BodyTimeout() from exc
    except InternalServerException as exc:  # Litestar's word for a disconnect mid-body
        raise ClientDisconnected() from exc
    if b"\\u0000" in body:  # valid JSON, but no Postgres text or jsonb can hold it
        raise InvalidBody([FieldError("", "strings must not contain the NUL character")])
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise InvalidBody([field_error(exc)]) from exc
    except msgspec.DecodeError as exc:
        raise MalformedJson(f"The body is not valid JSON: {exc}") from exc
    except RecursionError as exc:  # valid JSON, nested deeper than any of our bodies allows
        raise InvalidBody([FieldError("", "the body is nested too deeply")]) from exc


def body_operation(
    tp: Any,
    description: str,
    *,
    headers: Sequence[Parameter] = (),
    one_of: Sequence[dict[str, Any]] = (),
    examples: dict[str, Any] | None = None,
) -> type[Operation]:
    """An Operation class documenting a JSON body of type tp (for hand-decoded bodies),
    and any headers the handler reads itself; one_of states modes that exclude each other
    (which a msgspec struct cannot), examples are named bodies, each valid."""
    schema: Any = inline_schema(tp)
    if one_of:
        # Wrapped in allOf, which means the same: openapi-python-client cannot parse a oneOf
        # beside properties (it makes a union of the modes and drops the endpoint), and skips
        # an allOf of it while keeping the one model; validators and generators apply it.
        schema["allOf"] = [{"oneOf": list(one_of)}]
    named: dict[str, Example | Reference] | None = {
        k: Example(value=v) for k, v in (examples or {}).items()
    } or None

    @dataclass
    class _BodyOperation(Operation):
        def __post_init__(self) -> None:
            self.request_body = RequestBody(
                required=True,
                description=description,
                content={"application/json": OpenAPIMediaType(schema=schema, examples=named)},
            )
            if headers:
                self.parameters = [*(self.parameters or ()), *headers]

    return _BodyOperation
