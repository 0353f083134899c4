"""Device keys: create (the secret is shown once), list, revoke, and who a key belongs to."""

from __future__ import annotations

import time
from datetime import datetime

import asyncpg
import msgspec

from domain.credentials import hash_secret, new_secret
from domain.roles import Actor
from service import audit
from service.infra import queries
from service.infra.db import valid_id
from service.infra.errors import DeviceKeyNotFound, InvalidDeviceKey, SiteNotFound

DEVICE_KEY_PREFIX = "emk_"
Q = "devices"


class DeviceIdentity(msgspec.Struct, frozen=True):
    """Who is sending: the key's device and the sites it may post to."""

    key_id: int
    device_id: str
    site_ids: list[int]


class DeviceKey(msgspec.Struct, frozen=True, kw_only=True):
    """A device key as listed: never the secret, only its first characters."""

    id: int
    device_id: str
    site_ids: list[int]
    name: str | None
    key_prefix: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None


async def authenticate_device(conn: asyncpg.Connection, key: str) -> DeviceIdentity:
    """The live key's identity; InvalidDeviceKey for an unknown or revoked key.

    Looked up by hash on every call. The API remembers what it finds (DeviceKeyCache); the
    ingest transaction re-checks the key, so a revocation still applies to the next request.
    """
    row = await conn.fetchrow(queries.load(Q)["find_device_key"], hash_secret(key))
    if row is None:
        raise InvalidDeviceKey()
    return DeviceIdentity(row["id"], row["device_id"], list(row["site_ids"]))


class DeviceKeyCache:
    """Identities of keys found live, remembered in this process for `ttl_s`.

    Saves a pool checkout and a query per request. A key's device and sites never change;
    only revocation does, and revocation stays effective on the next request: the ingest
    statement checks the key is live in its own transaction (ingest.record_batch, key_id),
    and a revoke through this process forgets the key here as well. Unknown keys are not
    remembered, so a key created a moment ago works at once.
    """

    def __init__(self, ttl_s: float = 300.0, *, max_keys: int = 50_000) -> None:
        self.ttl_s = ttl_s
        self.max_keys = max_keys
        self._found: dict[bytes, tuple[float, DeviceIdentity]] = {}

    def get(self, key: str, now: float | None = None) -> DeviceIdentity | None:
        hit = self._found.get(hash_secret(key))
        if hit is None:
            return None
        expires, identity = hit
        if (time.monotonic() if now is None else now) >= expires:
            return None
        return identity

    def remember(self, key: str, identity: DeviceIdentity, now: float | None = None) -> None:
        if len(self._found) >= self.max_keys:
            self._found.clear()  # crude bound on memory; only costs lookups
        now = time.monotonic() if now is None else now
        self._found[hash_secret(key)] = (now + self.ttl_s, identity)

    def forget(self, key_id: int) -> None:
        for digest, (_, identity) in list(self._found.items()):
            if identity.key_id == key_id:
                del self._found[digest]


async def create_device_key(
    conn: asyncpg.Connection,
    *,
    device_id: str,
    site_ids: list[int],
    name: str | None,
    actor: Actor,
) -> tuple[DeviceKey, str]:
    """A new key for a device bound to site_ids, audited; returns the listing and the secret
    (shown this once)."""
    q = queries.load(Q)
    out_of_range = [s for s in site_ids if not valid_id(s)]
    secret = new_secret(DEVICE_KEY_PREFIX)
    async with conn.transaction():
        missing = out_of_range or [r["s"] for r in await conn.fetch(q["missing_sites"], site_ids)]
        if missing:
            raise SiteNotFound(f"no site with id {', '.join(map(str, missing))}")
        row = await conn.fetchrow(
            q["insert_device_key"],
            device_id,
            sorted(set(site_ids)),
            name,
            secret[: len(DEVICE_KEY_PREFIX) + 6],
            hash_secret(secret),
            actor.name,
        )
        key = _key(row)
        await audit.record(conn, actor=actor, action="device.create", params={"key_id": key.id})
    return key, secret


async def list_device_keys(conn: asyncpg.Connection, *, site_id: int | None) -> list[DeviceKey]:
    return [_key(r) for r in await conn.fetch(queries.load(Q)["list_device_keys"], site_id)]


async def revoke_device_key(
    conn: asyncpg.Connection, *, key_id: int, actor: Actor, cache: DeviceKeyCache | None = None
) -> DeviceKey:
    """Revoke a key, audited; this process's cache forgets it at once (other processes' ingest
    transactions check the key is live)."""
    row = None
    async with conn.transaction():
        if valid_id(key_id):
            row = await conn.fetchrow(queries.load(Q)["revoke_device_key"], key_id)
        if row is None:
            raise DeviceKeyNotFound(f"no device key with id {key_id}")
        await audit.record(conn, actor=actor, action="device.revoke", params={"key_id": key_id})
    if cache is not None:
        cache.forget(key_id)
    return _key(row)


def _key(row: asyncpg.Record | None) -> DeviceKey:
    assert row is not None
    return DeviceKey(**{**dict(row), "site_ids": list(row["site_ids"])})
