"""A small, fast S3-compatible read-only server: GetObject and HeadObject, path-style
(`/bucket/key`), from a directory (`ROOT/bucket/key` is the object), over HTTP/1.1 with
keep-alive, shaped like a remote S3 (see shaping.py).

What it implements, as S3 does:

* `Range: bytes=a-b`, `bytes=a-` and `bytes=-n` (206 with `Content-Range`); a range starting
  at or past the end is 416 `InvalidRange`; a malformed or multi-range header is ignored (the
  whole object, 200).
* `ETag` and `x-amz-version-id`, derived from the file's inode, size and modification time
  (cheap: no hashing of the content; they change when the file is rewritten). A `versionId`
  query parameter other than the reported one is 404 `NoSuchVersion`.
* `If-Match` (412 `PreconditionFailed` unless it names the ETag or is `*`), `If-None-Match`
  (304 when it names the ETag).
* `Content-Length`, `Last-Modified`, `Accept-Ranges`, `x-amz-request-id`; errors as S3's XML
  bodies (`NoSuchBucket`, `NoSuchKey`; no body for HEAD).

Anything else (writes, listings, `partNumber`) is 501 `NotImplemented`. Request signatures
are not checked.
"""

from __future__ import annotations

import asyncio
import email.utils
import hashlib
import itertools
import os
import re
import socket
import time
import urllib.parse
from xml.sax.saxutils import escape

from .shaping import CHUNK, Dropped, Response, Shaping, TokenBucket

_REQUEST_IDS = itertools.count(1)
_RANGE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*")
_REASONS = {
    200: "OK",
    206: "Partial Content",
    304: "Not Modified",
    400: "Bad Request",
    404: "Not Found",
    412: "Precondition Failed",
    416: "Requested Range Not Satisfiable",
    501: "Not Implemented",
}


class Reply:
    """A response: status, headers, and a body (bytes, or a byte range of a file)."""

    def __init__(self, status: int, headers: list[tuple[str, str]], body: bytes = b"", file=None, head_length=None):
        self.status = status
        self.headers = headers
        self.body = body
        self.file = file  # (path, offset, length) or None
        self.head_length = head_length  # a HEAD's Content-Length: what GET would send

    @property
    def length(self) -> int:
        if self.head_length is not None:
            return self.head_length
        return self.file[2] if self.file else len(self.body)


def _error(status: int, code: str, message: str, method: str, resource: str, request_id: str, extra=()) -> Reply:
    body = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f"<Error><Code>{code}</Code><Message>{escape(message)}</Message>"
        f"<Resource>{escape(resource)}</Resource><RequestId>{request_id}</RequestId></Error>"
    ).encode()
    headers = [("Content-Type", "application/xml"), *extra]
    return Reply(status, headers, b"" if method == "HEAD" else body)


def _parse_range(value: str, size: int):
    """(start, end) inclusive; "unsatisfiable"; or None to ignore the header."""
    m = _RANGE.fullmatch(value)
    if not m or (not m[1] and not m[2]):
        return None
    if m[1]:
        start = int(m[1])
        end = int(m[2]) if m[2] else size - 1
        if m[2] and end < start:
            return None
        if start >= size:
            return "unsatisfiable"
        return start, min(end, size - 1)
    suffix = int(m[2])
    if suffix == 0 or size == 0:
        return "unsatisfiable"
    return max(0, size - suffix), size - 1


def _etag_matches(header: str, etag: str) -> bool:
    tags = [t.strip() for t in header.split(",")]
    return any(t == "*" or t.removeprefix("W/").strip('"') == etag for t in tags)


def object_identity(stat: os.stat_result) -> tuple[str, str]:
    """(ETag without quotes, version id) of a file, from what identifies its content."""
    seed = f"{stat.st_ino}:{stat.st_size}:{stat.st_mtime_ns}".encode()
    return hashlib.md5(seed).hexdigest(), hashlib.sha256(seed).hexdigest()[:32]


def s3_reply(root: str, method: str, target: str, headers: dict[str, str]) -> Reply:
    """What S3 would answer to `method target` for the objects under `root`."""
    request_id = f"{next(_REQUEST_IDS):016X}"
    common = [("x-amz-request-id", request_id)]
    path, _, query = target.partition("?")
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    bucket, _, key = urllib.parse.unquote(path).lstrip("/").partition("/")
    resource = "/" + bucket + ("/" + key if key else "")

    def error(status, code, message, extra=()):
        return _error(status, code, message, method, resource, request_id, [*common, *extra])

    if method not in ("GET", "HEAD") or not bucket or not key or "partNumber" in params:
        return error(501, "NotImplemented", "Only GetObject and HeadObject (path-style) are implemented.")
    if bucket in (".", "..") or not os.path.isdir(os.path.join(root, bucket)):
        return error(404, "NoSuchBucket", "The specified bucket does not exist.")
    parts = key.split("/")
    file = os.path.join(root, bucket, *parts)
    try:
        if any(p in ("", ".", "..") for p in parts):
            raise FileNotFoundError(key)
        stat = os.stat(file)
        if not os.path.isfile(file):
            raise FileNotFoundError(key)
    except OSError:
        return error(404, "NoSuchKey", "The specified key does not exist.")

    etag, version = object_identity(stat)
    wanted_version = params.get("versionId", [None])[0]
    if wanted_version not in (None, "", "null") and wanted_version != version:
        return error(404, "NoSuchVersion", "The specified version does not exist.")
    identity = [
        ("ETag", f'"{etag}"'),
        ("Last-Modified", email.utils.formatdate(stat.st_mtime, usegmt=True)),
        ("x-amz-version-id", version),
    ]
    if "if-match" in headers and not _etag_matches(headers["if-match"], etag):
        return error(412, "PreconditionFailed", "At least one of the pre-conditions you specified did not hold")
    if "if-none-match" in headers and _etag_matches(headers["if-none-match"], etag):
        return Reply(304, [*common, *identity])

    size = stat.st_size
    headers_out = [*common, *identity, ("Accept-Ranges", "bytes"), ("Content-Type", "application/octet-stream")]
    wanted = _parse_range(headers["range"], size) if "range" in headers else None
    if wanted == "unsatisfiable":
        return error(416, "InvalidRange", "The requested range is not satisfiable", [("Content-Range", f"bytes */{size}")])
    if wanted is None:
        status, start, length = 200, 0, size
    else:
        status, start, length = 206, wanted[0], wanted[1] - wanted[0] + 1
        headers_out.append(("Content-Range", f"bytes {wanted[0]}-{wanted[1]}/{size}"))
    if method == "HEAD":
        return Reply(status, headers_out, head_length=length)
    return Reply(status, headers_out, file=(file, start, length))


def _head_bytes(reply: Reply, keep_alive: bool) -> bytes:
    length = reply.length
    lines = [f"HTTP/1.1 {reply.status} {_REASONS.get(reply.status, 'Unknown')}"]
    lines += [f"{k}: {v}" for k, v in reply.headers]
    lines.append(f"Date: {email.utils.formatdate(time.time(), usegmt=True)}")
    lines.append("Server: slow_s3")
    if reply.status != 304:
        lines.append(f"Content-Length: {length}")
    if not keep_alive:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _send_body(response: Response, reply: Reply, head: bytes) -> None:
    if not reply.file:
        await response.send(head + reply.body)
        return
    path, offset, remaining = reply.file
    with open(path, "rb", buffering=0) as f:
        first = True
        while remaining > 0 or first:
            data = os.pread(f.fileno(), min(CHUNK, remaining), offset) if remaining > 0 else b""
            if remaining > 0 and not data:
                raise Dropped()  # the file shrank under us: cut the connection, as S3 would fail
            offset += len(data)
            remaining -= len(data)
            await response.send(head + data if first else data)
            first = False


class Server:
    def __init__(self, root: str, shaping: Shaping):
        self.root = root
        self.shaping = shaping

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.shaping.stats.connections += 1
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bucket = TokenBucket(self.shaping.rate)
        try:
            while True:
                try:
                    head = await reader.readuntil(b"\r\n\r\n")
                except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
                    return
                request_at = time.monotonic()
                lines = head.decode("latin-1").split("\r\n")
                try:
                    method, target, version = lines[0].split(" ")
                except ValueError:
                    return
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, _, value = line.partition(":")
                        headers[name.strip().lower()] = value.strip()
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    return  # no request bodies are expected; refuse to guess their framing
                body_length = int(headers.get("content-length", "0") or 0)
                if body_length:
                    await reader.readexactly(body_length)
                keep_alive = version == "HTTP/1.1" and headers.get("connection", "").lower() != "close"
                reply = s3_reply(self.root, method, target, headers)
                await self.shaping.first_byte(request_at)
                response = Response(self.shaping, bucket, writer, self.shaping.response_limit(method == "GET"))
                await _send_body(response, reply, _head_bytes(reply, keep_alive))
                if not keep_alive:
                    return
        except (Dropped, ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            writer.close()
