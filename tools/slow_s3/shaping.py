"""What makes the endpoint slow: first-byte latency per response, a bandwidth cap per
connection (token bucket), and injected connection drops. Shared by the server and the proxy.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time

# Reads and writes move at most this much at a time: large enough that a 2-core machine
# spends little CPU per byte, small enough that pacing at tens of MB/s stays smooth.
CHUNK = 256 * 1024


class Dropped(Exception):
    """The connection was closed on purpose, part-way through a response (fault injection)."""


class TokenBucket:
    """Paces bytes at `rate` bytes per second, with bursts of at most `burst` bytes.

    Tokens may go negative (a chunk larger than the tokens at hand is sent, then the debt is
    slept off), so a chunk is never split and the average rate is exact whatever the timer's
    granularity: time overslept is credited back, up to `burst`.
    """

    def __init__(self, rate: float, burst: int = CHUNK):
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    async def take(self, n: int) -> None:
        if not self.rate:
            return
        now = time.monotonic()
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= n
        if self.tokens < 0:
            await asyncio.sleep(-self.tokens / self.rate)


@dataclasses.dataclass
class Stats:
    connections: int = 0
    requests: int = 0
    gets: int = 0
    response_bytes: int = 0
    drops: int = 0

    def line(self) -> str:
        return (
            f"connections={self.connections} requests={self.requests} gets={self.gets} "
            f"response_bytes={self.response_bytes} drops={self.drops}"
        )


@dataclasses.dataclass
class Shaping:
    """The endpoint's behaviour, for every connection it serves."""

    latency: float = 0.0  # seconds from a request to the first byte of its response
    rate: float = 0.0  # bytes per second per connection (responses only); 0: unlimited
    drop_after: int | None = None  # close a GET response's connection after this many bytes...
    drop_every: int = 1  # ...on every K-th GET response (counted across connections)
    stats: Stats = dataclasses.field(default_factory=Stats)

    def response_limit(self, is_get: bool) -> int | None:
        """Counts a response; returns after how many bytes (head included) to drop its
        connection, or None to send it whole."""
        self.stats.requests += 1
        if not is_get:
            return None
        self.stats.gets += 1
        if self.drop_after is not None and self.stats.gets % self.drop_every == 0:
            return self.drop_after
        return None

    async def first_byte(self, request_at: float) -> None:
        """Waits until `latency` after `request_at` (a time.monotonic() stamp)."""
        delay = request_at + self.latency - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)


class Response:
    """One response's bytes on one connection: paced by the connection's bucket, and cut
    after `limit` bytes (raising Dropped once the cut bytes are flushed) when it has one."""

    def __init__(self, shaping: Shaping, bucket: TokenBucket, writer: asyncio.StreamWriter, limit: int | None):
        self.shaping = shaping
        self.bucket = bucket
        self.writer = writer
        self.limit = limit
        self.sent = 0

    async def send(self, data) -> None:
        if self.limit is not None and self.sent + len(data) >= self.limit:
            data = data[: self.limit - self.sent]
            await self._write(data)
            self.shaping.stats.drops += 1
            raise Dropped()
        await self._write(data)

    async def _write(self, data) -> None:
        if not data:
            return
        await self.bucket.take(len(data))
        self.writer.write(data)
        self.sent += len(data)
        self.shaping.stats.response_bytes += len(data)
        await self.writer.drain()
