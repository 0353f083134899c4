"""The static dashboard: `/` is its one page (hash routing), `/static/` its assets."""

from __future__ import annotations

from pathlib import Path

from litestar import Router, get
from litestar.datastructures import CacheControlHeader
from litestar.response import File
from litestar.static_files import create_static_files_router

from api.auth import requires

STATIC = Path(__file__).resolve().parent.parent / "static"
# Revalidate every time (ETag / Last-Modified): a deploy is visible on the next reload.
_REVALIDATE = CacheControlHeader(no_cache=True)


@get("/", include_in_schema=False, cache_control=_REVALIDATE, opt=requires("public"))
async def index() -> File:
    return File(
        STATIC / "index.html",
        filename="index.html",
        media_type="text/html",  # Litestar adds the charset
        content_disposition_type="inline",
    )


# Only `/` and `/static/…`: no catch-all route, so unknown API paths stay problem+json 404s.
router = Router(
    path="/",
    route_handlers=[
        index,
        create_static_files_router(
            path="/static",
            directories=[STATIC],
            cache_control=_REVALIDATE,
            name="dashboard",
            opt=requires("public"),
        ),
    ],
    include_in_schema=False,
)
