"""A shaping TCP relay in front of any HTTP/1.1 server (e.g. moto's).

It does not parse HTTP: each client connection gets its own upstream connection, bytes are
relayed both ways in chunks of up to 256 KiB, and a request is recognised as the client
sending bytes after the upstream has answered (or first on the connection). That holds for
HTTP/1.1 with keep-alive as clients use it (one request at a time per connection); with
pipelining, requests sent back to back would share one latency. The first byte upstream sends
after a request waits until `latency` after the request's first byte arrived; the
upstream-to-client direction is paced by the connection's token bucket; a request starting
with `GET ` counts as a GET for fault injection, and a dropped response closes both
connections. `Expect: 100-continue` uploads pay the latency twice (for the interim response,
then for the final one).
"""

from __future__ import annotations

import asyncio
import socket
import time

from .shaping import CHUNK, Dropped, Response, Shaping, TokenBucket


class _Exchange:
    """The state of one client connection: is a response owed, and since when."""

    def __init__(self):
        self.answered = True  # the upstream has sent bytes since the client last did
        self.request_at = 0.0
        self.is_get = False
        self.pending = False  # the next upstream byte starts a response


class Proxy:
    def __init__(self, upstream_host: str, upstream_port: int, shaping: Shaping):
        self.host = upstream_host
        self.port = upstream_port
        self.shaping = shaping

    async def handle(self, client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
        self.shaping.stats.connections += 1
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(self.host, self.port)
        except OSError:
            client_writer.close()
            return
        for writer in (client_writer, upstream_writer):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        exchange = _Exchange()
        tasks = [
            asyncio.create_task(self._requests(client_reader, upstream_writer, exchange)),
            asyncio.create_task(self._responses(upstream_reader, client_writer, exchange)),
        ]
        try:
            # The responses' end (upstream closed, or a drop) ends the connection; the client's
            # end only once the upstream has answered what it had sent.
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            if tasks[1] not in done and tasks[0].exception() is None:
                await asyncio.wait([tasks[1]])
        finally:
            for task in tasks:
                task.cancel()
            for task in tasks:
                if task.done() and not task.cancelled():
                    task.exception()  # retrieved: a reset connection is not worth a traceback
            client_writer.close()
            upstream_writer.close()

    async def _requests(self, reader, writer, exchange: _Exchange) -> None:
        while True:
            data = await reader.read(CHUNK)
            if not data:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            if exchange.answered:
                exchange.answered = False
                exchange.pending = True
                exchange.request_at = time.monotonic()
                exchange.is_get = data.startswith(b"GET ")
            writer.write(data)
            await writer.drain()

    async def _responses(self, reader, writer, exchange: _Exchange) -> None:
        bucket = TokenBucket(self.shaping.rate)
        response = None
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data:
                    return
                if exchange.pending:
                    exchange.pending = False
                    await self.shaping.first_byte(exchange.request_at)
                    response = Response(self.shaping, bucket, writer, self.shaping.response_limit(exchange.is_get))
                exchange.answered = True
                if response is None:  # bytes the client never asked for
                    response = Response(self.shaping, bucket, writer, None)
                await response.send(data)
        except (Dropped, ConnectionError):
            return
