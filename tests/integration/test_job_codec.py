"""The worker never unpickles: arq job records are JSON both ways, so a pickled job pushed into
Redis by anyone who can reach it fails as a job instead of running its payload's code."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import redis.asyncio as aioredis

from service.infra.doorbell import decode_job, encode_job
from service.infra.settings import Settings
from tests.integration.helpers import batch, make_site, post_batch, readings

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


class _Payload:
    """Unpickling this runs a shell command: what an attacker with Redis access would push."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, (f"touch {self.marker}",))


def test_job_records_round_trip_as_json_and_refuse_pickles(tmp_path: Path) -> None:
    job = {"t": 1, "f": "drain", "a": [], "k": {}, "et": 1_700_000_000_000}
    assert decode_job(encode_job(job)) == job
    assert encode_job({"r": ValueError("boom")}) == b'{"r":"boom"}'  # results never fail
    marker = tmp_path / "pwned"
    with pytest.raises(ValueError):  # msgspec.DecodeError is a ValueError
        decode_job(pickle.dumps({**job, "a": [_Payload(marker)]}))
    assert not marker.exists()


async def test_a_pickled_job_in_redis_is_refused_and_the_worker_keeps_draining(
    settings: Settings, client: httpx.AsyncClient, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    job = {"t": 1, "f": "drain", "a": [_Payload(marker)], "k": {}, "et": int(time.time() * 1000)}
    redis = aioredis.Redis.from_url(settings.redis_url)
    await redis.flushdb()
    out = tmp_path / "worker.log"
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "REDIS_URL": settings.redis_url,
        "LOG_JSON": "true",
        "PYTHONUNBUFFERED": "1",
    }
    with out.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cli", "worker"], cwd=ROOT, env=env, stdout=log, stderr=log
        )
    try:
        for _ in range(200):
            if b'"worker_started"' in out.read_bytes():
                break
            await asyncio.sleep(0.05)
        # What arq's enqueue_job writes, with pickle in place of JSON.
        await redis.set("arq:job:evil", pickle.dumps(job))
        await redis.zadd("arq:queue", {"evil": time.time() * 1000})
        for _ in range(100):
            if not await redis.zscore("arq:queue", "evil"):
                break
            await asyncio.sleep(0.05)
        assert not await redis.zscore("arq:queue", "evil"), out.read_text()  # taken and failed
        await asyncio.sleep(0.3)
        assert not marker.exists(), "the worker ran code from a pickled job"
        assert "deserializing job evil failed" in out.read_text()
        # And it goes on working: a batch posted now is drained.
        site = await make_site(client)
        assert (await post_batch(client, site, batch(readings(2)))).status_code == 202
        for _ in range(100):
            body = (await client.get(f"/v1/sites/{site}")).json()
            if body["reading_count"] == 2:
                break
            await asyncio.sleep(0.05)
        assert body["reading_count"] == 2
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.to_thread(proc.wait, 20)
        except subprocess.TimeoutExpired:
            proc.kill()
        await redis.aclose()
