"""Secrets given to devices and operators: random, shown once, stored only as a hash."""

from __future__ import annotations

import hashlib
import secrets


def new_secret(prefix: str) -> str:
    """256 random bits, URL-safe, with a prefix that tells what kind of secret it is."""
    return prefix + secrets.token_urlsafe(32)


def hash_secret(secret: str) -> bytes:
    return hashlib.sha256(secret.encode()).digest()
