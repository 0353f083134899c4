"""Sites: create, list (keyset pages), read, change."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Controller, Request, Response, get, patch, post
from litestar.di import NamedDependency
from litestar.openapi.spec import OpenAPIFormat, OpenAPIType
from litestar.params import FromPath, QueryParameter

from api.auth import caller, requires
from api.decode import body_operation, decode_json
from api.etag import NOT_MODIFIED, conditional, tag
from api.ranges import hourly_range
from api.schemas import HourlySeries, HourOut, SiteCreate, SiteOut, SitePage, SitePatch
from api.staleness import RequestReads
from domain.co2e import t_co2e
from service import sites
from service.infra import db
from service.infra.settings import Settings

_decode_create = msgspec.json.Decoder(SiteCreate)
_decode_patch = msgspec.json.Decoder(SitePatch)


class SitesController(Controller):
    path = "/v1/sites"
    tags = ["sites"]  # noqa: RUF012 (Controller declares it as a plain attribute)

    @post(
        operation_id="createSite",
        opt=requires("admin"),
        status_code=201,
        operation_class=body_operation(SiteCreate, "The new site"),
    )
    async def create_site(
        self,
        request: Request[Any, Any, Any],
        pool: NamedDependency[asyncpg.Pool],
        settings: NamedDependency[Settings],
    ) -> Response[SiteOut]:
        data = await decode_json(request, _decode_create)
        async with db.connection(pool) as conn:
            site = await sites.create_site(
                conn,
                name=data.name,
                emission_limit_kg=data.emission_limit_kg,
                metadata=data.metadata,
                reporting_interval_s=data.reporting_interval_s,
                actor=caller(request),
                factor=settings.gwp,
            )
        return Response(site, status_code=201, headers={"Location": f"/v1/sites/{site.id}"})

    @get(operation_id="listSites", opt=requires("viewer"), responses=NOT_MODIFIED)
    async def list_sites(
        self,
        request: Request[Any, Any, Any],
        reads: NamedDependency[RequestReads],
        settings: NamedDependency[Settings],
        after: Annotated[
            int, QueryParameter(ge=0, le=db.MAX_ID, description="Cursor: last id seen")
        ] = 0,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
    ) -> Response[SitePage]:
        """Polled by the dashboard: send the ETag back as If-None-Match for a 304 while
        nothing but the clock moved (freshness_s grows by the time since the 200)."""
        async with reads.connection() as conn:
            views = await sites.list_sites(conn, after=after, limit=limit, factor=settings.gwp)
        items = list(views)
        page = SitePage(items=items, next_after=items[-1].id if len(items) == limit else None)
        return conditional(request, page, tag([_stable(v) for v in items]))

    @get("/{site_id:int}", operation_id="getSite", opt=requires("viewer"), responses=NOT_MODIFIED)
    async def get_site(
        self,
        request: Request[Any, Any, Any],
        site_id: FromPath[int],
        reads: NamedDependency[RequestReads],
        settings: NamedDependency[Settings],
    ) -> Response[SiteOut]:
        """With an ETag, as the list has."""
        async with reads.connection() as conn:
            site = await sites.get_site(conn, site_id=site_id, factor=settings.gwp)
        return conditional(request, site, tag(_stable(site)))

    @patch(
        "/{site_id:int}",
        operation_id="updateSite",
        opt=requires("admin"),
        operation_class=body_operation(SitePatch, "Fields to change"),
    )
    async def update_site(
        self,
        site_id: FromPath[int],
        request: Request[Any, Any, Any],
        pool: NamedDependency[asyncpg.Pool],
        settings: NamedDependency[Settings],
    ) -> SiteOut:
        data = await decode_json(request, _decode_patch)
        changes = {k: v for k, v in msgspec.structs.asdict(data).items() if v is not msgspec.UNSET}
        async with db.connection(pool) as conn:
            return await sites.update_site(
                conn,
                site_id=site_id,
                actor=caller(request),
                factor=settings.gwp,
                **changes,
            )

    @get("/{site_id:int}/hourly", operation_id="getSiteHourly", opt=requires("viewer"))
    async def hourly(
        self,
        site_id: FromPath[int],
        reads: NamedDependency[RequestReads],
        settings: NamedDependency[Settings],
        start: Annotated[str | None, _instant("Start, inclusive", name="from")] = None,
        end: Annotated[str | None, _instant("End, exclusive; default now", name="to")] = None,
    ) -> HourlySeries:
        """Hourly totals in [from, to) (default: the last 24 hours; hours without data
        omitted). `to` at or before `from` is an empty range; a range over 400 days is cut to
        the 400 days from `from`, with `truncated` true: continue from the `to` answered."""
        span = hourly_range(start, end, datetime.now(UTC))
        async with reads.connection() as conn:
            await sites.get_site(conn, site_id=site_id)  # 404 for an unknown site
            rows = await sites.hourly(conn, site_id=site_id, start=span.start, end=span.end)
        factor = settings.gwp
        hours = [HourOut(**dict(r), t_co2e=t_co2e(r["total_kg"], factor.factor)) for r in rows]
        return HourlySeries(
            site_id=site_id,
            start=span.start,
            end=span.end,
            hours=hours,
            gwp=factor,
            truncated=span.truncated,
        )


def _stable(site: SiteOut) -> SiteOut:
    """The site without its one clock-derived field, for the ETag."""
    return msgspec.structs.replace(site, freshness_s=None)


def _instant(description: str, *, name: str) -> Any:
    """An RFC 3339 date-time taken as text and parsed strictly by the handler (Litestar's own
    datetime parameters also take a bare number as an epoch, which the schema does not allow)."""
    extra = {"one_of": None, "type": OpenAPIType.STRING, "format": OpenAPIFormat.DATE_TIME}
    return QueryParameter(name=name, description=description, schema_extra=extra)
