"""A bounded async HTTP load generator: N requests at concurrency C on one keep-alive pool."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

import aiohttp
import numpy as np


@dataclass(frozen=True)
class LoadResult:
    requests: int
    failures: int
    seconds: float
    latencies_ms: np.ndarray

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))


async def _drive(
    url: str, body: bytes, headers: dict[str, str], total: int, concurrency: int
) -> LoadResult:
    latencies: list[float] = []
    failures = 0
    remaining = total
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=False)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def worker() -> None:
            nonlocal remaining, failures
            while remaining > 0:
                remaining -= 1
                started = time.perf_counter()
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    if response.status != 200:
                        failures += 1
                latencies.append((time.perf_counter() - started) * 1000)

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        seconds = time.perf_counter() - started
    return LoadResult(total, failures, seconds, np.array(latencies))


def drive(
    url: str, body: bytes, total: int, concurrency: int, content_type: str = "application/json"
) -> LoadResult:
    """Send ``total`` POSTs of ``body`` to ``url``, ``concurrency`` at a time (on uvloop)."""
    import uvloop

    return uvloop.run(_drive(url, body, {"content-type": content_type}, total, concurrency))
