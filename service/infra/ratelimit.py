"""Token buckets (in this process): a flooding device, or an address guessing tokens, is
slowed; others are not."""

from __future__ import annotations

import time
from dataclasses import dataclass

from cachetools import TTLCache


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class TokenBuckets:
    """`rate` requests per second sustained, bursts up to `burst`; one bucket per key.

    Per process: with N API processes a device may reach N times the rate. The bound it
    protects is fairness between devices, which holds per process.
    """

    def __init__(self, rate: float, burst: float, *, max_keys: int = 100_000) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self._buckets: dict[int | str, _Bucket] = {}

    def wait_s(self, key: int | str, now: float | None = None) -> float:
        """Seconds until `key` has a token (0 if it has one now); spends nothing."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        now = time.monotonic() if now is None else now
        tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, key: int | str, now: float | None = None) -> float:
        """0 if allowed (a token is spent); else the seconds until a token is available."""
        now = time.monotonic() if now is None else now
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._buckets.clear()  # crude bound on memory; only resets allowances
            bucket = self._buckets[key] = _Bucket(self.burst, now)
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
        bucket.stamp = now
        if bucket.tokens >= 1:
            bucket.tokens -= 1
            return 0.0
        return (1 - bucket.tokens) / self.rate


class UnknownTokens:
    """Bearer tokens that named no one, remembered for `remember_s` (a repeat costs no lookup),
    and each client address's budget for presenting them: past it, the address is refused
    before any lookup, so a flood of made-up keys costs no database round trip per request.
    Tokens are random secrets nobody can present before they exist, so remembering a miss
    never refuses a real one."""

    def __init__(
        self, per_s: float, burst: float, *, remember_s: float = 60.0, max_tokens: int = 100_000
    ) -> None:
        self.budget = TokenBuckets(per_s, burst)
        self.misses: TTLCache[bytes, bool] = TTLCache(max_tokens, remember_s)

    def wait_s(self, address: str) -> float:
        """Seconds this address must wait before it may present an unknown token again."""
        return self.budget.wait_s(address)

    def known(self, digest: bytes) -> bool:
        return digest in self.misses

    def failed(self, address: str, digest: bytes) -> None:
        self.misses[digest] = True
        self.budget.take(address)
