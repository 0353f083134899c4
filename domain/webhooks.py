"""Webhook messages as subscribers receive them, signed the Standard Webhooks way.

Scheme (https://www.standardwebhooks.com): the secret is "whsec_" + base64 of random bytes;
the signed content is "{webhook-id}.{webhook-timestamp}.{body}"; the `webhook-signature`
header is "v1," + base64(HMAC-SHA256(key, content)). Any Standard Webhooks library verifies it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from datetime import datetime
from typing import Any

import msgspec

SECRET_PREFIX = "whsec_"  # noqa: S105 (a format prefix, not a secret)
SECRET_BYTES = 32
USER_AGENT = "emissions-engine-webhooks/1"


class WebhookMessage(msgspec.Struct, frozen=True, kw_only=True):
    """The JSON body of every delivery. `id` is the same on every retry of the same event."""

    id: str
    type: str
    timestamp: datetime
    data: dict[str, Any]


def event_id(outbox_id: int) -> str:
    return f"evt_{outbox_id}"


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key of a secret. Raises ValueError unless it is whsec_ + base64 of 24..64 bytes."""
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError(f"must start with {SECRET_PREFIX}")
    try:
        key = base64.b64decode(secret[len(SECRET_PREFIX) :], validate=True)
    except binascii.Error:
        raise ValueError("must be whsec_ followed by base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("the key must be 24 to 64 bytes")
    return key


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    content = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(key, content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def headers(secret: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret_key(secret), msg_id, timestamp, body),
    }
