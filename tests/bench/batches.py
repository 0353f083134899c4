"""Bench batches: every one new (unique key, windows no earlier batch had), built before timing.

Each site has one device reporting 1-minute windows. A site's windows are handed out going
back in time from the start of the run, so a batch is never a duplicate, never in the future,
and the partitions it lands in exist (see stack.prepare_database).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import msgspec

from domain.readings import Window
from tests.bench.load import Request, build_request

STEP = timedelta(minutes=1)
_encode = msgspec.json.Encoder().encode


class _Body(msgspec.Struct):
    device_id: str
    measurements: list[Window]


@dataclass(frozen=True, slots=True)
class Batch:
    site_id: int
    device_id: str
    key: str
    readings: list[Window]


class Timeline:
    """Hands out fresh windows per site, newest first, from `start` backwards."""

    def __init__(self, sites: list[int], *, start: datetime, tag: str, seed: int = 7) -> None:
        self.sites = sites
        self.start = start.astimezone(UTC).replace(second=0, microsecond=0)
        self.tag = tag
        self._taken = dict.fromkeys(sites, 0)
        self._site = itertools.cycle(sites)
        self._serial = itertools.count()
        self._rng = random.Random(seed)

    def batch(self, size: int, site_id: int | None = None) -> Batch:
        site = next(self._site) if site_id is None else site_id
        first = self._taken[site]
        self._taken[site] = first + size
        newest = self.start - STEP * (first + 1)
        rng = self._rng
        readings = [
            # Up to 1.5 kg per 1-minute window (90 kg/h): below the leak threshold, as almost
            # all real windows are; a leak alert per hour would be a different benchmark.
            Window(ts=newest - STEP * i, methane_kg=round(rng.uniform(0.0, 1.5), 3))
            for i in range(size)
        ]
        return Batch(site, device_of(site), f"{self.tag}-{next(self._serial)}", readings)


def device_of(site_id: int) -> str:
    return f"bench-dev-{site_id}"


def encode_body(batch: Batch) -> bytes:
    return _encode(_Body(batch.device_id, batch.readings))


def http_requests(
    timeline: Timeline,
    size: int,
    count: int,
    *,
    host: str,
    auth: dict[int, str],
) -> Iterator[Request]:
    """`count` requests built now, then more on demand if a phase outruns the estimate."""
    built = [_request(timeline.batch(size), host, auth) for _ in range(count)]
    more = (_request(timeline.batch(size), host, auth) for _ in itertools.count())
    return itertools.chain(built, more)


def _request(batch: Batch, host: str, auth: dict[int, str]) -> Request:
    headers = {"Authorization": f"Bearer {auth[batch.site_id]}"} if batch.site_id in auth else {}
    raw = build_request(
        f"/v1/sites/{batch.site_id}/measurements",
        encode_body(batch),
        key=batch.key,
        host=host,
        headers=headers,
    )
    return Request(raw, batch.site_id, len(batch.readings))
