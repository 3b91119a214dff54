"""Reads a `/collect` request body: content type, content encoding, and the size limit.

The limit applies to the decompressed bytes, and decompression is streamed with a cap, so a small
gzip bomb costs at most `limit` bytes of memory before it is refused.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Mapping

from starlette.requests import ClientDisconnect
from starlette.types import Receive

from sluice.collector.rejections import Rejection

MAX_BODY_BYTES = 1024 * 1024
JSON_TYPES = frozenset({"application/json", "text/plain"})  # text/plain: what navigator.sendBeacon sends


def check_content_type(headers: Mapping[str, str]) -> None:
    raw = headers.get("content-type", "")
    media_type = raw.split(";", 1)[0].strip().lower()
    if media_type not in JSON_TYPES:
        raise Rejection(
            "unsupported_media_type",
            f"Content-Type {raw!r} is not supported; send application/json or text/plain",
        )


def _too_large(limit: int) -> Rejection:
    return Rejection("body_too_large", f"the body exceeds {limit} bytes (after decompression)")


async def chunks(receive: Receive) -> AsyncIterator[bytes]:
    """The body as it arrives, straight from ASGI `receive` (Starlette's `request.stream()` without its bookkeeping)."""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


async def read_body(headers: Mapping[str, str], receive: Receive, limit: int = MAX_BODY_BYTES) -> bytes:
    encoding = headers.get("content-encoding", "identity").strip().lower()
    if encoding not in ("identity", "", "gzip", "x-gzip", "deflate"):
        raise Rejection("unsupported_encoding", f"Content-Encoding {encoding!r} is not supported; use gzip or deflate")
    declared = headers.get("content-length", "")
    # Compressed input can be larger than its output only by a little, so the same cap bounds it.
    if declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)

    if encoding in ("identity", ""):
        parts: list[bytes] = []
        size = 0
        async for chunk in chunks(receive):
            size += len(chunk)
            if size > limit:
                raise _too_large(limit)
            parts.append(chunk)
        return b"".join(parts)

    return await _inflate(encoding, chunks(receive), limit)


async def _inflate(encoding: str, stream: AsyncIterator[bytes], limit: int) -> bytes:
    decoder: zlib._Decompress | None = None
    out = bytearray()
    received = 0
    try:
        async for chunk in stream:
            received += len(chunk)
            if received > limit:
                raise _too_large(limit)
            if decoder is None:
                if not chunk:
                    continue
                decoder = zlib.decompressobj(_wbits(encoding, chunk))
            data = chunk
            # max_length caps each step; what the cap held back waits in unconsumed_tail.
            while data and not decoder.eof:
                out += decoder.decompress(data, limit + 1 - len(out))
                if len(out) > limit:
                    raise _too_large(limit)
                data = decoder.unconsumed_tail
        if decoder is None:
            return b""
        if not decoder.eof:
            raise Rejection("malformed_body", f"the {encoding} body is truncated")
    except zlib.error as exc:
        raise Rejection("malformed_body", f"the {encoding} body does not decompress: {exc}") from None
    return bytes(out)


def _wbits(encoding: str, first: bytes) -> int:
    if encoding != "deflate":
        return 16 + zlib.MAX_WBITS  # gzip header and trailer
    # HTTP's "deflate" is the zlib format, but some clients send raw deflate: tell them apart by the header.
    if len(first) >= 2 and first[0] & 0x0F == 8 and (first[0] << 8 | first[1]) % 31 == 0:
        return zlib.MAX_WBITS
    return -zlib.MAX_WBITS


GZIP_MAGIC = b"\x1f\x8b"


async def gunzip(data: bytes, limit: int = MAX_BODY_BYTES) -> bytes:
    """`data` decompressed, with the same cap as a gzip request body: for the clients that send a
    gzip body without saying so (rudder-sdk-node's), or inside a form field (posthog-js)."""

    async def one_chunk() -> AsyncIterator[bytes]:
        yield data

    return await _inflate("gzip", one_chunk(), limit)
