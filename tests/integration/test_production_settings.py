"""Production refuses development secrets: `emissions serve`, `worker` and `run` exit non-zero
before starting anything, with a message that says what to set; development needs nothing."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.infra.settings import Settings, UnsafeSettings

ROOT = Path(__file__).resolve().parents[2]

STRONG = "ops:" + "x" * 32


@pytest.mark.parametrize("command", ["serve", "worker", "run"])
@pytest.mark.parametrize(
    ("tokens", "why"),
    [
        (None, "public development token"),
        ("dev:dev-admin-token", "public development token"),
        ("ops:short-but-not-empty-31-chars", "fewer than 32"),
        ("", "public development token"),  # empty means unset: the default
        (",", "ADMIN_TOKENS is empty"),
        (f"{STRONG},old:weak", "fewer than 32"),
    ],
)
async def test_serving_commands_refuse_weak_admin_tokens_in_production(
    command: str, tokens: str | None, why: str, db_url: str
) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ADMIN_TOKENS"}
    env.update(ENVIRONMENT="production", DATABASE_URL=db_url, LOG_JSON="true")
    if tokens is not None:
        env["ADMIN_TOKENS"] = tokens
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "cli", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert why in done.stderr
    assert "set ADMIN_TOKENS=name:token" in done.stderr
    assert "x" * 32 not in done.stdout + done.stderr  # never echoes a token back


def test_the_rules_in_one_place() -> None:
    development = Settings.from_env({})
    assert development.production_problems() == []  # zero-config stays zero-config
    strong = Settings.from_env({"ENVIRONMENT": "production", "ADMIN_TOKENS": STRONG})
    assert strong.production_problems() == []
    strong.check_production()
    weak = Settings.from_env({"ENVIRONMENT": "production"})
    with pytest.raises(UnsafeSettings, match="public development token"):
        weak.check_production()
