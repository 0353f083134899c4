"""Webhook signing: the reference library and the README's own snippet both accept our
signatures, and reject tampering."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from domain.webhooks import headers, new_secret, secret_key

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_verify() -> Callable[..., bool]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    (snippet,) = [b for b in blocks if "def verify(" in b]
    namespace: dict[str, Any] = {}
    exec(snippet, namespace)  # noqa: S102 (our own README, under test)
    verify: Callable[..., bool] = namespace["verify"]
    return verify


def test_signatures_verify_with_the_reference_library_and_the_readme_snippet() -> None:
    secret = new_secret()
    body = b'{"id":"evt_7","type":"batch.accepted","timestamp":"2026-01-01T00:00:00Z","data":{}}'
    signed = headers(secret, "evt_7", int(time.time()), body)
    assert Webhook(secret).verify(body, signed)["id"] == "evt_7"
    verify = readme_verify()
    assert verify(secret, signed, body)
    assert not verify(secret, signed, body.replace(b"evt_7", b"evt_8"))
    assert not verify(new_secret(), signed, body)
    stale = headers(secret, "evt_7", int(time.time()) - 3600, body)
    assert not verify(secret, stale, body)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, stale)


@pytest.mark.parametrize(
    "secret",
    ["hunter2", "whsec_", "whsec_not base64!", "whsec_" + "QUJD" * 4, "whsec_" + "QUJD" * 30],
)
def test_secrets_must_be_whsec_base64_of_24_to_64_bytes(secret: str) -> None:
    with pytest.raises(ValueError):
        secret_key(secret)


def test_generated_secrets_are_32_random_bytes() -> None:
    a, b = new_secret(), new_secret()
    assert a != b and len(secret_key(a)) == 32
