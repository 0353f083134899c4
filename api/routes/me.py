"""GET /v1/me: who the caller's token names (name and role; never the secret)."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from api.auth import caller, requires
from api.schemas import Me


@get(
    "/v1/me",
    operation_id="getMe",
    tags=["auth"],
    # A token always, also in development: there is nobody to name without one.
    opt=requires("viewer", token_in_development=True),
)
async def me(request: Request[Any, Any, Any]) -> Me:
    """The name and role of the token sent: what the dashboard may offer its user."""
    actor = caller(request)
    return Me(name=actor.name, role=actor.role)
