"""Token buckets in this process's memory, one per key (the token publish rate limit).

A bucket holds up to ``burst`` messages and refills at ``rate`` per second. Buckets live
per node: with N nodes behind a balancer a client can publish up to N times the rate.
Memory is bounded: past ``max_keys`` buckets, the full ones (idle long enough to have
refilled) are forgotten first, then the oldest (which then start again from a full
bucket: more lenient, never stricter).
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable


class TokenBuckets:
    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        max_keys: int = 20_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate = rate
        self.burst = burst
        self.max_keys = max_keys
        self.clock = clock
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key -> (level, at)

    def take(self, key: str, n: float = 1.0) -> float:
        """Take ``n`` from ``key``'s bucket: 0.0 when allowed, else the seconds to wait."""
        now = self.clock()
        level, at = self._buckets.pop(key, (self.burst, now))
        level = min(self.burst, level + (now - at) * self.rate)
        wait = 0.0
        if level >= n:
            level -= n
        else:
            wait = (n - level) / self.rate
        self._buckets[key] = (level, now)
        if len(self._buckets) > self.max_keys:
            self._forget(now)
        return wait

    def _forget(self, now: float) -> None:
        full = [
            k
            for k, (level, at) in self._buckets.items()
            if level + (now - at) * self.rate >= self.burst
        ]
        for k in full:
            del self._buckets[k]
        # Some headroom, so a crowd of busy keys does not rescan on every new one.
        while len(self._buckets) > self.max_keys * 9 // 10:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)

    def __contains__(self, key: object) -> bool:
        return key in self._buckets


def retry_after(wait: float) -> str:
    """A Retry-After header value (whole seconds, at least 1) for a wait in seconds."""
    return str(max(1, math.ceil(wait)))
