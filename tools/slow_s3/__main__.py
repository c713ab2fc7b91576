"""A slow S3 on this machine: first-byte latency per request and a bandwidth cap per connection.

usage: python -m tools.slow_s3 (--root DIR | --upstream URL) [--listen HOST:PORT]
           [--latency-ms MS] [--mbps MB_PER_S] [--drop-after-bytes N [--drop-every K]]

--root DIR serves DIR/bucket/key as s3://bucket/key (GetObject and HeadObject, path-style:
see server.py); --upstream URL relays to another server (e.g. moto's) instead (proxy.py). The
listening port is printed on stdout, alone on a line, once it accepts connections (so
`--listen 127.0.0.1:0` picks a free port). SIGINT or SIGTERM stops it and prints its counters
and CPU seconds on stderr; SIGUSR1 prints them and goes on. See tools/slow_s3/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import signal
import sys
import urllib.parse

from .proxy import Proxy
from .server import Server
from .shaping import CHUNK, Shaping


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tools.slow_s3", description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--root", help="serve DIR/bucket/key as s3://bucket/key")
    source.add_argument("--upstream", help="relay to this http://HOST:PORT")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any free port; default %(default)s)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay of each response's first byte after its request")
    parser.add_argument(
        "--mbps", type=float, default=0.0, help="response bandwidth per connection, in MB/s (10^6 bytes); 0: unlimited"
    )
    parser.add_argument(
        "--drop-after-bytes",
        type=int,
        help="close the connection after this many bytes of a GET response (its head included)",
    )
    parser.add_argument(
        "--drop-every", type=int, default=1, help="with --drop-after-bytes: only every K-th GET response (default 1)"
    )
    args = parser.parse_args(argv)
    if args.drop_every < 1:
        parser.error("--drop-every must be at least 1")
    if args.drop_after_bytes is not None and args.drop_after_bytes < 0:
        parser.error("--drop-after-bytes must not be negative")
    return args


async def serve(args) -> None:
    shaping = Shaping(
        latency=args.latency_ms / 1000,
        rate=args.mbps * 1e6,
        drop_after=args.drop_after_bytes,
        drop_every=args.drop_every,
    )
    if args.root:
        handler = Server(args.root, shaping).handle
    else:
        upstream = urllib.parse.urlsplit(args.upstream if "//" in args.upstream else "http://" + args.upstream)
        if upstream.scheme != "http" or not upstream.hostname:
            sys.exit(f"--upstream {args.upstream}: expected http://HOST:PORT")
        handler = Proxy(upstream.hostname, upstream.port or 80, shaping).handle
    host, _, port = args.listen.rpartition(":")
    server = await asyncio.start_server(handler, host or "127.0.0.1", int(port), limit=CHUNK, backlog=1024)
    print(server.sockets[0].getsockname()[1], flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, report, shaping)
    async with server:
        await stop.wait()
    report(shaping)


def report(shaping: Shaping) -> None:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    print(f"slow_s3: {shaping.stats.line()} cpu_s={usage.ru_utime + usage.ru_stime:.2f}", file=sys.stderr, flush=True)


def main(argv=None) -> None:
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
