"""The Litestar application: routes, lifespan resources, one error mapping."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import structlog
from litestar import Litestar, Router
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.plugins import JsonRenderPlugin

from api import auth, staleness
from api.context import RequestContext
from api.docs_page import DocsPage
from api.head import HeadAsGet
from api.openapi import SECURITY_SCHEMES, finish
from api.problems import handle_exception
from api.routes import (
    alerts,
    audit,
    dashboard,
    devices,
    health,
    me,
    measurements,
    metrics,
    ops,
    queue_history,
    reports,
    sites,
    subscriptions,
)
from service.infra import db, migrations
from service.infra.doorbell import Doorbell, doorbell_redis
from service.infra.health import Readiness
from service.infra.logs import configure_logging
from service.infra.ratelimit import UnknownTokens
from service.infra.replica import Reads
from service.infra.settings import Settings
from service.ingest import Ingest
from service.operators import OperatorGate

log = structlog.get_logger("api")
STARTUP_DB_WAIT_S = 30.0


def create_app(settings: Settings | None = None) -> RequestContext:
    settings = settings or Settings.from_env()
    settings.check_production()  # no development secrets in production, whoever starts us
    settings.operator_tokens  # noqa: B018 - UnknownRole: a mistyped role refuses to start
    configure_logging(settings.log_level, settings.log_json)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        pool = await db.open_pool(settings, wait_s=STARTUP_DB_WAIT_S)
        # The replica opens connections on demand (min 0): a replica that is down never
        # delays startup, and its reads fall back to the primary.
        replica = (
            await db.create_pool(settings, dsn=settings.read_database_url, min_size=0)
            if settings.read_database_url
            else None
        )
        # Ingest's fast path: its own few connections, which keep generic plans.
        lane_pool = await db.create_pool(
            settings,
            max_size=settings.ingest_statements,
            server_settings=db.INGEST_POOL_SETTINGS,
        )
        # Redis is a doorbell: short timeouts, and nothing waits for it at startup.
        redis = doorbell_redis(settings.redis_url, timeout_s=settings.nudge_timeout_s)
        doorbell = Doorbell(redis, timeout_s=settings.nudge_timeout_s)
        try:
            async with db.connection(pool) as conn:
                await migrations.verify(conn)
            app.state.pool = pool
            app.state.reads = Reads(pool, replica)
            app.state.redis = redis
            app.state.doorbell = doorbell
            # One budget per client address for unknown tokens, device keys and admin alike.
            unknown = UnknownTokens(settings.auth_failures_per_s, settings.auth_failure_burst)
            app.state.ingest = Ingest(pool, settings, doorbell, unknown, lane_pool)
            app.state.operators = OperatorGate(pool, settings, unknown)
            app.state.readiness = Readiness(pool, redis, ttl_s=settings.ready_cache_s)
            log.info("api_started", environment=settings.environment)
            yield
        finally:
            await doorbell.close()
            await redis.aclose()
            if replica is not None:
                await replica.close()
            await lane_pool.close()
            await pool.close()

    # Every route declares its access (api/auth.py); `authorize` enforces it for all of them
    # but ingest, whose device key the ingest transaction checks (a guard there would copy the
    # route handler on every request of the hottest route).
    guarded = Router(
        path="/",
        guards=[auth.authorize],
        route_handlers=[
            sites.SitesController,
            ops.OpsController,
            queue_history.QueueHistoryController,
            devices.DevicesController,
            alerts.AlertsController,
            subscriptions.SubscriptionsController,
            subscriptions.replay_deliveries,
            subscriptions.list_all_deliveries,
            reports.ReportsController,
            audit.list_audit,
            me.me,
            health.live,
            health.ready,
            health.list_problem_types,
            health.get_problem_type,
            metrics.scrape,
            dashboard.router,
        ],
    )
    app = Litestar(
        route_handlers=[measurements.ingest_measurements, guarded],
        lifespan=[lifespan],
        state=State({"settings": settings}),
        dependencies={
            "settings": Provide(lambda: settings, use_cache=True, sync_to_thread=False),
            "pool": Provide(_pool, sync_to_thread=False),
            # Reads that tolerate lag: the replica when there is one (api/staleness.py).
            "reads": Provide(staleness.provide_reads, sync_to_thread=False),
        },
        exception_handlers={Exception: handle_exception},
        request_max_body_size=settings.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="emissions-engine",
            version="1",
            description="Idempotent batch ingest of methane readings, and site aggregates.",
            components=SECURITY_SCHEMES,
            openapi_router=Router(
                path="/schema",
                route_handlers=[],
                include_in_schema=False,
                opt=auth.requires("public"),
            ),
            # The reference page is rendered here (no CDN, no script); the JSON for tools.
            render_plugins=[DocsPage(), JsonRenderPlugin()],
        ),
        debug=False,
    )
    auth.check_routes(app)  # a route without a declared access never serves
    finish(app.openapi_schema, app, development=settings.environment != "production")
    return RequestContext(
        HeadAsGet(app),
        max_in_flight=settings.max_in_flight,
        allowed_hosts=settings.allowed_host_list,
        max_headers=settings.max_headers,
        max_header_bytes=settings.max_header_bytes,
    )


def _pool(state: State) -> asyncpg.Pool:
    pool: asyncpg.Pool = state.pool
    return pool
