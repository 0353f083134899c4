"""Webhook subscriptions (admin): register, list with delivery health, disable; pause and
resume (operator); deliveries: list, and replay (send again, audited)."""

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


class SubscriptionDisabled(ServiceError):
    """This webhook subscription is disabled; only a live one can be paused or resumed."""


class InvalidReplay(InvalidInput):
    """Give exactly one of: delivery ids; a subscription (all its deliveries, or with only_dead
    its dead ones); only_dead alone (every dead delivery)."""


def check_replay(
    delivery_ids: list[int] | None,
    subscription_id: int | None,
    only_dead: bool,
    *,
    filtered: bool = False,
) -> None:
    """Exactly one mode; the filters (`filtered`: event type, time range) only narrow a
    subscription or every dead delivery, never a list of ids."""
    modes = [
        delivery_ids is not None,
        subscription_id is not None,
        only_dead and subscription_id is None,
    ]
    if sum(modes) != 1 or (delivery_ids is not None and only_dead):
        message = "give exactly one of: delivery_ids, subscription_id, all_dead"
        raise InvalidReplay([FieldError("", message)])
    if filtered and delivery_ids is not None:
        message = "event_type and from/to filter a subscription or all_dead, not delivery_ids"
        raise InvalidReplay([FieldError("/delivery_ids", message)])


class DeliveryHealth(msgspec.Struct, kw_only=True):
    backlog: int  # owed: pending plus in backoff (kept, not sent, while paused)
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
    # Paused (operator): deliveries are still queued, and sent once it is resumed.
    paused_at: datetime | None = None
    paused_by: str | None = None
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
        paused_at=row["paused_at"],
        paused_by=row["paused_by"],
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


async def set_paused(
    conn: asyncpg.Connection, *, subscription_id: int, paused: bool, actor: Actor
) -> tuple[Subscription, bool, audit.AuditEntry]:
    """Pause (or resume) a live subscription, audited either way; returns it and whether this
    call changed it (pausing a paused one, or resuming a running one, is a no-op that keeps
    the first pause). While paused, the drain still queues its deliveries and the delivery
    loop leaves them pending; on resume they go out, oldest first."""
    q = queries.load(Q)
    row = None
    async with conn.transaction():
        if valid_id(subscription_id):
            if paused:
                row = await conn.fetchrow(q["pause_subscription"], subscription_id, actor.name)
            else:
                row = await conn.fetchrow(q["resume_subscription"], subscription_id)
            if row is None and await conn.fetchval(q["subscription_disabled"], subscription_id):
                raise SubscriptionDisabled(f"webhook subscription {subscription_id} is disabled")
        if row is None:
            raise SubscriptionNotFound(f"no webhook subscription with id {subscription_id}")
        entry = await audit.record(
            conn,
            actor=actor,
            action="subscription.pause" if paused else "subscription.resume",
            params={"subscription_id": subscription_id},
            affected=1 if row["changed"] else 0,
        )
    return _subscription(row), bool(row["changed"]), entry


async def list_deliveries(
    conn: asyncpg.Connection,
    *,
    subscription_id: int | None,
    status: str,
    before: int,
    limit: int,
    event_type: str | None = None,
) -> list[asyncpg.Record]:
    """Deliveries newest first (keyset: ids below `before`), of one subscription or of all."""
    q = queries.load(Q)
    if subscription_id is not None:
        known = valid_id(subscription_id) and (
            await conn.fetchval(q["subscription_disabled"], subscription_id) is not None
        )
        if not known:
            raise SubscriptionNotFound(f"no webhook subscription with id {subscription_id}")
    return await conn.fetch(
        q["list_deliveries"], subscription_id, before, status, limit, event_type
    )


async def replay(
    conn: asyncpg.Connection,
    *,
    delivery_ids: list[int] | None,
    subscription_id: int | None,
    only_dead: bool,
    actor: Actor,
    dry_run: bool,
    event_type: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> tuple[list[int], audit.AuditEntry]:
    """Send the selected deliveries again (fresh attempt budget), or, dry run, only say which.
    A subscription or every dead delivery can be narrowed by event type and by when the
    delivery was queued, in [start, end) (an empty range selects nothing).

    Subscribers may receive an event twice this way; the event id tells them it is the same.
    """
    filtered = event_type is not None or start is not None or end is not None
    check_replay(delivery_ids, subscription_id, only_dead, filtered=filtered)
    q = queries.load(Q)
    if delivery_ids is not None:
        delivery_ids = [i for i in delivery_ids if valid_id(i)]
    empty = start is not None and end is not None and start >= end
    async with conn.transaction():
        rows = (
            []
            if empty
            else await conn.fetch(
                q["select_replay"],
                delivery_ids,
                subscription_id,
                only_dead,
                event_type,
                start,
                end,
            )
        )
        chosen = [r["id"] for r in rows]
        if chosen and not dry_run:
            await conn.execute(q["requeue"], chosen)
        params: dict[str, object] = {
            "delivery_ids": delivery_ids,
            "subscription_id": subscription_id,
            "only_dead": only_dead,
        }
        if filtered:
            params |= {
                "event_type": event_type,
                "from": start.isoformat() if start else None,
                "to": end.isoformat() if end else None,
            }
        entry = await audit.record(
            conn,
            actor=actor,
            action="deliveries.replay",
            params=params,
            affected=len(chosen),
            dry_run=dry_run,
        )
    return chosen, entry
