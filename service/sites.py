"""Sites: create, change, read with totals. Reads are plain SQL over the site_overview view."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import asyncpg
import msgspec
from msgspec import Meta

from domain.co2e import Gwp, gwp, t_co2e
from domain.limits import LimitStatus, limit_status, percent_of_limit
from domain.projection import project_year
from domain.roles import Actor
from domain.sites import metadata_errors, name_errors
from service import audit
from service.infra import queries
from service.infra.db import valid_id
from service.infra.errors import DuplicateSiteName, InvalidInput, SiteNotFound

DEFAULT_GWP = gwp("AR6-fossil")
# Metadata keys a site may name its IANA time zone under (the dashboard's "site zone" option).
ZONE_KEYS = ("timezone", "time_zone", "tz")

DeadCount = Annotated[int, Meta(ge=0, description="Dead-lettered, not yet replayed")]
ProjectedKg = Annotated[
    float,
    Meta(
        ge=0,
        description="kg CH4 by 31 December at the year-to-date average pace: year_kg / f, f the "
        "elapsed fraction of the UTC year (taken to the minute)",
    ),
]
ExceedanceAt = Annotated[
    datetime | None,
    Meta(
        description="When the year-to-date pace reaches the limit: 1 January + elapsed * "
        "limit / year_kg; null when already exceeded or not reached this year",
    ),
]


class SiteView(msgspec.Struct, frozen=True, kw_only=True):
    """A site as the read API shows it (also the response body)."""

    id: int
    name: str
    emission_limit_kg: float
    metadata: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    lifetime_kg: float
    year: int
    year_kg: float
    percent_of_limit: float
    status: LimitStatus
    reading_count: int
    last_reading_at: datetime | None
    freshness_s: float | None
    lifetime_t_co2e: float
    year_t_co2e: float
    gwp: Gwp
    reporting_interval_s: int
    dead_events: DeadCount = 0
    dead_deliveries: Annotated[
        int, Meta(ge=0, description="Webhook deliveries of this site's events, dead-lettered")
    ] = 0
    projected_year_kg: ProjectedKg = 0.0
    projected_year_t_co2e: float = 0.0
    projected_exceedance_at: ExceedanceAt = None
    time_zone: Annotated[
        str | None,
        Meta(description="The IANA zone named by metadata timezone, time_zone or tz, if valid"),
    ] = None


def _view(row: asyncpg.Record, now: datetime, factor: Gwp) -> SiteView:
    year_kg, limit = row["year_kg"], row["emission_limit_kg"]
    last = row["last_reading_at"]
    # To the minute: the projection moves slowly, and a list polled every 2 s keeps its ETag.
    projection = project_year(year_kg, limit, now.replace(second=0, microsecond=0))
    return SiteView(
        id=row["id"],
        name=row["name"],
        emission_limit_kg=limit,
        metadata=row["metadata"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        lifetime_kg=row["lifetime_kg"],
        year=now.year,
        year_kg=year_kg,
        percent_of_limit=round(percent_of_limit(year_kg, limit), 3),
        status=limit_status(year_kg, limit),
        reading_count=row["reading_count"],
        last_reading_at=last,
        freshness_s=None if last is None else max(0.0, (now - last).total_seconds()),
        lifetime_t_co2e=t_co2e(row["lifetime_kg"], factor.factor),
        year_t_co2e=t_co2e(year_kg, factor.factor),
        gwp=factor,
        reporting_interval_s=row["reporting_interval_s"],
        dead_events=row["dead_events"],
        dead_deliveries=row["dead_deliveries"],
        projected_year_kg=projection.year_end_kg,
        projected_year_t_co2e=t_co2e(projection.year_end_kg, factor.factor),
        projected_exceedance_at=projection.exceedance_at,
        time_zone=_zone(row["metadata"]),
    )


def _zone(metadata: dict[str, Any]) -> str | None:
    for key in ZONE_KEYS:
        name = metadata.get(key)
        if isinstance(name, str) and _valid_zone(name):
            return name
    return None


@lru_cache(maxsize=256)
def _valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


async def create_site(
    conn: asyncpg.Connection,
    *,
    name: str,
    emission_limit_kg: float,
    metadata: dict[str, Any],
    actor: Actor,
    reporting_interval_s: int = 900,
    factor: Gwp = DEFAULT_GWP,
) -> SiteView:
    """A new site, audited."""
    _check(name, metadata)
    async with conn.transaction():
        with _name_taken(name):
            site_id = await conn.fetchval(
                queries.load("sites")["insert_site"],
                name,
                emission_limit_kg,
                metadata,
                reporting_interval_s,
            )
        await audit.record(conn, actor=actor, action="site.create", params={"site_id": site_id})
    return await get_site(conn, site_id=site_id, factor=factor)


async def update_site(
    conn: asyncpg.Connection,
    *,
    site_id: int,
    actor: Actor,
    name: str | None = None,
    emission_limit_kg: float | None = None,
    metadata: dict[str, Any] | None = None,
    reporting_interval_s: int | None = None,
    factor: Gwp = DEFAULT_GWP,
) -> SiteView:
    """Change the given fields of a site, audited (with the names of the fields changed)."""
    _check(name, metadata)
    if not valid_id(site_id):
        raise SiteNotFound(f"site {site_id} does not exist")
    fields = {
        "name": name,
        "emission_limit_kg": emission_limit_kg,
        "metadata": metadata,
        "reporting_interval_s": reporting_interval_s,
    }
    async with conn.transaction():
        with _name_taken(name):
            updated = await conn.fetchval(
                queries.load("sites")["update_site"],
                site_id,
                name,
                emission_limit_kg,
                metadata,
                reporting_interval_s,
            )
        if updated is None:
            raise SiteNotFound(f"site {site_id} does not exist")
        changed = sorted(k for k, v in fields.items() if v is not None)
        params = {"site_id": site_id, "fields": changed}
        await audit.record(conn, actor=actor, action="site.update", params=params)
    return await get_site(conn, site_id=site_id, factor=factor)


@contextmanager
def _name_taken(name: str | None) -> Iterator[None]:
    """The one translation of the unique-name violation (names compare case-insensitively)."""
    try:
        yield
    except asyncpg.UniqueViolationError as exc:
        raise DuplicateSiteName(f"a site named {name!r} already exists") from exc


def _check(name: str | None, metadata: dict[str, Any] | None) -> None:
    errors = [
        *(name_errors(name) if name is not None else []),
        *(metadata_errors(metadata) if metadata is not None else []),
    ]
    if errors:
        raise InvalidInput(errors)


async def get_site(
    conn: asyncpg.Connection, *, site_id: int, factor: Gwp = DEFAULT_GWP
) -> SiteView:
    if not valid_id(site_id):
        raise SiteNotFound(f"site {site_id} does not exist")
    row = await conn.fetchrow(queries.load("sites")["site_view"], site_id)
    if row is None:
        raise SiteNotFound(f"site {site_id} does not exist")
    return _view(row, datetime.now(UTC), factor)


async def list_sites(
    conn: asyncpg.Connection, *, after: int, limit: int, factor: Gwp = DEFAULT_GWP
) -> list[SiteView]:
    rows = await conn.fetch(queries.load("sites")["list_sites"], after, limit)
    now = datetime.now(UTC)
    return [_view(row, now, factor) for row in rows]


async def hourly(
    conn: asyncpg.Connection, *, site_id: int, start: datetime, end: datetime
) -> list[asyncpg.Record]:
    """The site's hourly series in [start, end)."""
    return await conn.fetch(queries.load("sites")["hourly"], site_id, start, end)
