"""Webhook subscriptions: register (admin; the secret is shown once), list with delivery
health, disable (admin), pause and resume (operator); deliveries, of one subscription or of
all; replay of deliveries (operator)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
import msgspec
from litestar import Controller, Request, Response, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter
from msgspec import Meta

from api.auth import caller, requires
from api.decode import body_operation, decode_json
from api.schemas import AuditOut, Base
from service import subscriptions
from service.infra import db
from service.infra.db import MAX_ID
from service.subscriptions import Subscription

DeliveryStatus = Literal["pending", "backoff", "delivered", "dead", "all"]
# The types subscribers see (domain.events.EVENT_TYPES).
DeliveryEventType = Literal[
    "batch.accepted",
    "site.threshold_crossed",
    "site.leak_detected",
    "site.stale",
    "report.restated",
]


class SubscriptionCreate(Base):
    """A receiver URL, the event types it wants, and optionally its own secret (whsec_...)."""

    url: Annotated[str, Meta(min_length=8, max_length=2000)]
    event_types: Annotated[list[str], Meta(min_length=1, max_length=16)]
    description: Annotated[str, Meta(max_length=500)] = ""
    secret: Annotated[str, Meta(max_length=200)] | None = None


class SubscriptionCreated(Base):
    secret: str  # shown once: store it to verify signatures
    subscription: Subscription


class SubscriptionList(Base):
    items: list[Subscription]


class DeliveryOut(Base):
    id: int
    subscription_id: int
    event_id: int
    event_type: str
    status: str
    attempts: int
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    last_attempt_at: datetime | None
    next_attempt_at: datetime | None
    delivered_at: datetime | None
    dead_at: datetime | None


class DeliveryPage(Base):
    items: list[DeliveryOut]
    next_before: int | None = None


class DeliveryReplayRequest(Base):
    """Exactly one of: delivery_ids; subscription_id (all of it, or with all_dead only its
    dead-lettered ones); all_dead alone (every dead delivery). The last two can be narrowed by
    event_type and by when the delivery was queued, in [from, to). dry_run changes nothing."""

    delivery_ids: Annotated[list[int], Meta(min_length=1, max_length=10_000)] | None = None
    subscription_id: Annotated[int, Meta(ge=1, le=MAX_ID)] | None = None
    all_dead: bool = False
    event_type: DeliveryEventType | None = None
    start: datetime | None = msgspec.field(default=None, name="from")
    end: datetime | None = msgspec.field(default=None, name="to")
    dry_run: bool = False


_ABSENT = {"type": "null"}  # in a oneOf mode: the member is left out (or null)
# subscriptions.check_replay as schema: the modes exclude each other (all_dead with a
# subscription_id filters it, it is not a second mode).
DELIVERY_REPLAY_MODES = [
    {
        "title": "By delivery ids",
        "required": ["delivery_ids"],
        "properties": {
            "delivery_ids": {"type": "array"},
            "subscription_id": _ABSENT,
            "all_dead": {"const": False},
            "event_type": _ABSENT,
            "from": _ABSENT,
            "to": _ABSENT,
        },
    },
    {
        "title": "A subscription's deliveries (with all_dead: its dead ones), optionally of one "
        "event type and queued in [from, to)",
        "required": ["subscription_id"],
        "properties": {"subscription_id": {"type": "integer"}, "delivery_ids": _ABSENT},
    },
    {
        "title": "Every dead delivery, optionally of one event type and queued in [from, to)",
        "required": ["all_dead"],
        "properties": {
            "all_dead": {"const": True},
            "delivery_ids": _ABSENT,
            "subscription_id": _ABSENT,
        },
    },
]


class SubscriptionPaused(Base):
    subscription: Subscription
    changed: bool  # false: it already was paused (or running), and stays as it was
    audit: AuditOut


class DeliveryReplayOut(Base):
    delivery_ids: list[int]
    replayed: int
    dry_run: bool
    audit: AuditOut


_decode_create = msgspec.json.Decoder(SubscriptionCreate)
_decode_replay = msgspec.json.Decoder(DeliveryReplayRequest)


class SubscriptionsController(Controller):
    path = "/v1/subscriptions"
    tags = ["subscriptions"]  # noqa: RUF012 (Controller declares it as a plain attribute)

    @post(
        operation_id="createSubscription",
        status_code=201,
        opt=requires("admin"),
        operation_class=body_operation(SubscriptionCreate, "Receiver URL and event types"),
    )
    async def create(
        self, request: Request[Any, Any, Any], pool: NamedDependency[asyncpg.Pool]
    ) -> Response[SubscriptionCreated]:
        data = await decode_json(request, _decode_create)
        async with db.connection(pool) as conn:
            sub, secret = await subscriptions.create(
                conn,
                url=data.url,
                event_types=data.event_types,
                description=data.description,
                secret=data.secret,
                actor=caller(request),
                allowed=request.app.state.settings.webhook_networks,
            )
        return Response(
            SubscriptionCreated(secret=secret, subscription=sub),
            status_code=201,
            headers={"Location": f"/v1/subscriptions/{sub.id}"},
        )

    @get(operation_id="listSubscriptions", opt=requires("viewer"))
    async def list_subscriptions(
        self, pool: NamedDependency[asyncpg.Pool], include_disabled: FromQuery[bool] = False
    ) -> SubscriptionList:
        async with db.connection(pool) as conn:
            items = await subscriptions.list_all(conn, include_disabled=include_disabled)
        return SubscriptionList(items=items)

    @delete(
        "/{subscription_id:int}",
        operation_id="disableSubscription",
        status_code=200,
        opt=requires("admin"),
    )
    async def disable(
        self,
        subscription_id: FromPath[int],
        request: Request[Any, Any, Any],
        pool: NamedDependency[asyncpg.Pool],
    ) -> Subscription:
        async with db.connection(pool) as conn:
            return await subscriptions.disable(
                conn, subscription_id=subscription_id, actor=caller(request)
            )

    @get("/{subscription_id:int}/deliveries", operation_id="listDeliveries", opt=requires("viewer"))
    async def deliveries(
        self,
        subscription_id: FromPath[int],
        pool: NamedDependency[asyncpg.Pool],
        status: FromQuery[DeliveryStatus] = "all",
        before: Annotated[int, QueryParameter(ge=1, le=MAX_ID, description="Cursor")] = MAX_ID,
        limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
        event_type: FromQuery[DeliveryEventType | None] = None,
    ) -> DeliveryPage:
        return await _deliveries(pool, subscription_id, status, before, limit, event_type)

    @post(
        "/{subscription_id:int}/pause",
        operation_id="pauseSubscription",
        status_code=200,
        opt=requires("operator"),
    )
    async def pause(
        self,
        subscription_id: FromPath[int],
        request: Request[Any, Any, Any],
        pool: NamedDependency[asyncpg.Pool],
    ) -> SubscriptionPaused:
        return await _set_paused(request, pool, subscription_id, paused=True)

    @post(
        "/{subscription_id:int}/resume",
        operation_id="resumeSubscription",
        status_code=200,
        opt=requires("operator"),
    )
    async def resume(
        self,
        subscription_id: FromPath[int],
        request: Request[Any, Any, Any],
        pool: NamedDependency[asyncpg.Pool],
    ) -> SubscriptionPaused:
        return await _set_paused(request, pool, subscription_id, paused=False)


async def _set_paused(
    request: Request[Any, Any, Any], pool: asyncpg.Pool, subscription_id: int, *, paused: bool
) -> SubscriptionPaused:
    async with db.connection(pool) as conn:
        sub, changed, entry = await subscriptions.set_paused(
            conn, subscription_id=subscription_id, paused=paused, actor=caller(request)
        )
    return SubscriptionPaused(subscription=sub, changed=changed, audit=AuditOut(**entry.__dict__))


async def _deliveries(
    pool: asyncpg.Pool,
    subscription_id: int | None,
    status: str,
    before: int,
    limit: int,
    event_type: str | None,
) -> DeliveryPage:
    async with db.connection(pool) as conn:
        rows = await subscriptions.list_deliveries(
            conn,
            subscription_id=subscription_id,
            status=status,
            before=before,
            limit=limit,
            event_type=event_type,
        )
    items = [DeliveryOut(**dict(r)) for r in rows]
    return DeliveryPage(items=items, next_before=items[-1].id if len(items) == limit else None)


@get("/v1/ops/deliveries", operation_id="listAllDeliveries", tags=["ops"], opt=requires("viewer"))
async def list_all_deliveries(
    pool: NamedDependency[asyncpg.Pool],
    status: FromQuery[DeliveryStatus] = "all",
    subscription_id: Annotated[int | None, QueryParameter(ge=1, le=MAX_ID)] = None,
    event_type: FromQuery[DeliveryEventType | None] = None,
    before: Annotated[int, QueryParameter(ge=1, le=MAX_ID, description="Cursor")] = MAX_ID,
    limit: Annotated[int, QueryParameter(ge=1, le=500)] = 100,
) -> DeliveryPage:
    """Webhook deliveries of every subscription (or of one), newest first, keyset paged."""
    return await _deliveries(pool, subscription_id, status, before, limit, event_type)


@post(
    "/v1/ops/deliveries/replay",
    operation_id="replayDeliveries",
    tags=["ops"],
    opt=requires("operator"),
    status_code=200,
    operation_class=body_operation(
        DeliveryReplayRequest,
        "Which deliveries to send again",
        one_of=DELIVERY_REPLAY_MODES,
        examples={
            "by_ids": {"delivery_ids": [3, 4]},
            "dead_of_a_subscription": {"subscription_id": 2, "all_dead": True},
            "every_dead": {"all_dead": True, "dry_run": True},
            "dead_by_filter": {
                "all_dead": True,
                "subscription_id": 2,
                "event_type": "site.leak_detected",
                "from": "2026-01-01T00:00:00Z",
                "to": "2026-02-01T00:00:00Z",
                "dry_run": True,
            },
        },
    ),
)
async def replay_deliveries(
    request: Request[Any, Any, Any], pool: NamedDependency[asyncpg.Pool]
) -> DeliveryReplayOut:
    body = await decode_json(request, _decode_replay)
    async with db.connection(pool) as conn:
        ids, entry = await subscriptions.replay(
            conn,
            delivery_ids=body.delivery_ids,
            subscription_id=body.subscription_id,
            only_dead=body.all_dead,
            actor=caller(request),
            dry_run=body.dry_run,
            event_type=body.event_type,
            start=body.start,
            end=body.end,
        )
    return DeliveryReplayOut(
        delivery_ids=ids,
        replayed=0 if body.dry_run else len(ids),
        dry_run=body.dry_run,
        audit=AuditOut(**entry.__dict__),
    )
