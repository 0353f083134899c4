"""Webhook subscriptions (admin): register, list with delivery health, disable; deliveries:
list, and replay (send again, audited)."""

from __future__ import annotations

from datetime import datetime
from urllib.parse import unquote, urlsplit

import asyncpg
import msgspec

from domain.egress import Networks, why_host_refused
from domain.errors import FieldError
from domain.events import EVENT_TYPES
from domain.roles import Actor
from domain.webhooks import new_secret, secret_key
from service import audit
from service.infra import queries
from service.infra.db import valid_id
from service.infra.egress import refusal
from service.infra.errors import InvalidInput, ServiceError

Q = "delivery"


class SubscriptionNotFound(ServiceError):
    """No webhook subscription has this id."""


class InvalidSubscription(InvalidInput):
    """The subscription is not valid."""


class InvalidReplay(InvalidInput):
    """Give exactly one of: delivery ids; a subscription (all its deliveries, or with only_dead
    its dead ones); only_dead alone (every dead delivery)."""


def check_replay(
    delivery_ids: list[int] | None, subscription_id: int | None, only_dead: bool
) -> None:
    modes = [
        delivery_ids is not None,
        subscription_id is not None,
        only_dead and subscription_id is None,
    ]
    if sum(modes) != 1 or (delivery_ids is not None and only_dead):
        message = "give exactly one of: delivery_ids, subscription_id, all_dead"
        raise InvalidReplay([FieldError("", message)])


class DeliveryHealth(msgspec.Struct, kw_only=True):
    pending: int
    in_backoff: int
    dead: int
    delivered_last_hour: int
    last_delivered_at: datetime | None
    last_failure_at: datetime | None
    last_error: str | None
    last_status_code: int | None


class Subscription(msgspec.Struct, kw_only=True):
    id: int
    url: str
    event_types: list[str]
    description: str
    created_at: datetime
    created_by: str
    disabled_at: datetime | None
    health: DeliveryHealth | None = None


def check(
    url: str, event_types: list[str], secret: str | None, *, allowed: Networks
) -> list[FieldError]:
    """What is wrong with a subscription, field by field (empty when it is fine). The URL's
    host is held to the egress policy as far as it can be without a lookup (`allowed`: the
    networks WEBHOOK_ALLOW_NETWORKS names); delivery checks the addresses it resolves to."""
    errors = []
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        errors.append(FieldError("/url", "must be an absolute http:// or https:// URL"))
    elif parts.username or parts.password:
        errors.append(FieldError("/url", "must not carry credentials; the signature is the auth"))
    elif reason := why_host_refused(unquote(parts.hostname), allowed):
        errors.append(FieldError("/url", refusal(reason)))
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown:
        known = ", ".join(EVENT_TYPES)
        errors.append(FieldError("/event_types", f"unknown {unknown}; known: {known}"))
    if secret is not None:
        try:
            secret_key(secret)
        except ValueError as exc:
            errors.append(FieldError("/secret", str(exc)))
    return errors


def _subscription(row: asyncpg.Record) -> Subscription:
    sub = Subscription(
        id=row["id"],
        url=row["url"],
        event_types=list(row["event_types"]),
        description=row["description"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        disabled_at=row["disabled_at"],
    )
    if "pending" in row:
        sub.health = DeliveryHealth(
            **{f: row[f] for f in DeliveryHealth.__struct_fields__},
        )
    return sub


async def create(
    conn: asyncpg.Connection,
    *,
    url: str,
    event_types: list[str],
    description: str,
    secret: str | None,
    actor: Actor,
    allowed: Networks,
) -> tuple[Subscription, str]:
    """Register a subscription; returns it and its secret (generated unless given). `allowed`:
    the networks the egress policy lets through (settings.webhook_networks)."""
    errors = check(url, event_types, secret, allowed=allowed)
    if errors:
        raise InvalidSubscription(errors)
    secret = secret or new_secret()
    types = sorted(set(event_types), key=EVENT_TYPES.index)
    async with conn.transaction():
        row = await conn.fetchrow(
            queries.load(Q)["create_subscription"], url, types, secret, description, actor.name
        )
        assert row is not None
        await audit.record(
            conn, actor=actor, action="subscription.create", params={"subscription_id": row["id"]}
        )
    return _subscription(row), secret


async def list_all(conn: asyncpg.Connection, *, include_disabled: bool) -> list[Subscription]:
    rows = await conn.fetch(queries.load(Q)["list_subscriptions"], include_disabled)
    return [_subscription(r) for r in rows]


async def disable(conn: asyncpg.Connection, *, subscription_id: int, actor: Actor) -> Subscription:
    row = None
    async with conn.transaction():
        if valid_id(subscription_id):
            row = await conn.fetchrow(queries.load(Q)["disable_subscription"], subscription_id)
        if row is None:
            raise SubscriptionNotFound(f"no webhook subscription with id {subscription_id}")
        await audit.record(
            conn,
            actor=actor,
            action="subscription.disable",
            params={"subscription_id": subscription_id},
        )
    return _subscription(row)


async def list_deliveries(
    conn: asyncpg.Connection, *, subscription_id: int, status: str, before: int, limit: int
) -> list[asyncpg.Record]:
    exists = await conn.fetchval(
        "SELECT true FROM webhook_subscriptions WHERE id = $1", subscription_id
    )
    if not exists:
        raise SubscriptionNotFound(f"no webhook subscription with id {subscription_id}")
    return await conn.fetch(
        queries.load(Q)["list_deliveries"], subscription_id, before, status, limit
    )


async def replay(
    conn: asyncpg.Connection,
    *,
    delivery_ids: list[int] | None,
    subscription_id: int | None,
    only_dead: bool,
    actor: Actor,
    dry_run: bool,
) -> tuple[list[int], audit.AuditEntry]:
    """Send the selected deliveries again (fresh attempt budget), or, dry run, only say which.

    Subscribers may receive an event twice this way; the event id tells them it is the same.
    """
    check_replay(delivery_ids, subscription_id, only_dead)
    q = queries.load(Q)
    if delivery_ids is not None:
        delivery_ids = [i for i in delivery_ids if valid_id(i)]
    async with conn.transaction():
        rows = await conn.fetch(q["select_replay"], delivery_ids, subscription_id, only_dead)
        chosen = [r["id"] for r in rows]
        if chosen and not dry_run:
            await conn.execute(q["requeue"], chosen)
        entry = await audit.record(
            conn,
            actor=actor,
            action="deliveries.replay",
            params={
                "delivery_ids": delivery_ids,
                "subscription_id": subscription_id,
                "only_dead": only_dead,
            },
            affected=len(chosen),
            dry_run=dry_run,
        )
    return chosen, entry
