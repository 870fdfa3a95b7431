"""Reading a response body from an untrusted server with a size limit that holds on the wire
and after every decoding step, so a small compressed body cannot expand into a large one.

httpx decodes `Content-Encoding` itself and hands out decoded bytes, unbounded per chunk: a
500-byte `gzip, gzip` body becomes hundreds of megabytes before a caller can count it. Here the
raw bytes are read (`aiter_raw`), counted, and decoded by our own decoders, each of which is
asked for at most the limit + 1 bytes, so decoding stops as soon as the limit is passed.

    async with http.stream("GET", url, headers={"Accept-Encoding": ACCEPT_ENCODING}) as r:
        body = await read_bounded(r, limit)   # BodyTooLarge / UndecodableBody
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Final, Protocol

import httpx

ACCEPT_ENCODING: Final = "gzip, deflate"
"""The encodings `read_bounded` decodes; send it so servers do not pick another."""

_GZIP_WBITS: Final = zlib.MAX_WBITS | 16
_GZIP_MAGIC: Final = 0x1F


class BodyTooLarge(Exception):
    """The body passed `limit` bytes; `stage` says where it was counted."""

    def __init__(self, limit: int, stage: str) -> None:
        super().__init__(f"the response is larger than {limit} bytes {stage}")
        self.limit = limit
        self.stage = stage


class UndecodableBody(Exception):
    """An encoding we do not decode, or bytes that are not what the encoding says."""


class _Stage(Protocol):
    def decompress(self, data: bytes, max_length: int) -> bytes: ...


class _Gzip:
    """gzip, including several members one after another (as `gzip` concatenations are)."""

    def __init__(self) -> None:
        self._obj = zlib.decompressobj(_GZIP_WBITS)
        self._trailing = False

    def decompress(self, data: bytes, max_length: int) -> bytes:
        out = bytearray()
        while data and not self._trailing and len(out) < max_length:
            if self._obj.eof:
                if data[0] != _GZIP_MAGIC:
                    # Padding after the last member (some servers add zeros): ignored, as
                    # Python's gzip module and browsers do.
                    self._trailing = True
                    break
                self._obj = zlib.decompressobj(_GZIP_WBITS)
            try:
                out += self._obj.decompress(data, max_length - len(out))
            except zlib.error as exc:
                raise UndecodableBody(f"the gzip-encoded response is corrupt: {exc}") from exc
            if self._obj.unconsumed_tail:
                break  # max_length reached: the caller refuses the body
            data = self._obj.unused_data if self._obj.eof else b""
        return bytes(out)


class _Deflate:
    """`deflate` is meant to be zlib-wrapped, but some servers send raw deflate (like httpx,
    accept both, deciding on the first bytes)."""

    def __init__(self) -> None:
        self._obj = zlib.decompressobj()
        self._first = True

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._obj.eof:
            return b""
        try:
            out = self._obj.decompress(data, max_length)
        except zlib.error as exc:
            if not self._first:
                raise UndecodableBody(f"the deflate-encoded response is corrupt: {exc}") from exc
            self._obj = zlib.decompressobj(-zlib.MAX_WBITS)
            self._first = False
            return self.decompress(data, max_length)
        self._first = False
        return out


_STAGES: Final[dict[str, Callable[[], _Stage]]] = {
    "gzip": _Gzip,
    "x-gzip": _Gzip,
    "deflate": _Deflate,
}


class BoundedDecoder:
    """Decodes a `Content-Encoding` (stacked codings too) chunk by chunk; every stage's output
    counts against `limit`, and no stage produces more than `limit` + 1 bytes."""

    def __init__(self, content_encoding: str | None, limit: int) -> None:
        codings = [c.strip().lower() for c in (content_encoding or "").split(",")]
        codings = [c for c in codings if c and c != "identity"]
        unknown = [c for c in codings if c not in _STAGES]
        if unknown:
            raise UndecodableBody(
                f"the response uses Content-Encoding {', '.join(unknown)}; "
                f"only {ACCEPT_ENCODING} are decoded"
            )
        # Codings are listed in the order they were applied: undo them last to first.
        self._stages: list[_Stage] = [_STAGES[c]() for c in reversed(codings)]
        self._produced = [0] * len(self._stages)
        self._limit = limit

    def feed(self, data: bytes) -> bytes:
        for i, stage in enumerate(self._stages):
            if not data:
                return b""
            data = stage.decompress(data, self._limit - self._produced[i] + 1)
            self._produced[i] += len(data)
            if self._produced[i] > self._limit:
                raise BodyTooLarge(self._limit, "after decoding")
        return data


async def read_bounded(response: httpx.Response, limit: int) -> bytes:
    """The decoded body of a streamed response, or `BodyTooLarge` once the raw or a decoded
    size passes `limit` (a declared Content-Length above it is refused before reading)."""
    if response.is_stream_consumed:
        # Already read into memory by httpx (e.g. a response built from bytes): the raw bytes
        # are gone, only the decoded size is left to check.
        if len(response.content) > limit:
            raise BodyTooLarge(limit, "after decoding")
        return response.content
    declared = response.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge(limit, "on the wire")
    decoder = BoundedDecoder(response.headers.get("content-encoding"), limit)
    body = bytearray()
    wire = 0
    async for chunk in response.aiter_raw():
        wire += len(chunk)
        if wire > limit:
            raise BodyTooLarge(limit, "on the wire")
        body += decoder.feed(chunk)
        # Each stage is bounded, but the last one's total is what the caller holds.
        if len(body) > limit:
            raise BodyTooLarge(limit, "after decoding")
    return bytes(body)
