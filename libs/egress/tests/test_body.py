"""Bounded reading and decoding of response bodies."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import AsyncIterator

import httpx
import pytest
from egress.body import ACCEPT_ENCODING, BodyTooLarge, BoundedDecoder, UndecodableBody, read_bounded

LIMIT = 64 * 1024


def zeros_gzip(size: int) -> bytes:
    """gzip of `size` zero bytes, built without holding them."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1024 * 1024)
    out = bytearray()
    for start in range(0, size, len(block)):
        out += packer.compress(block[: min(len(block), size - start)])
    return bytes(out + packer.flush())


def response(
    body: bytes,
    encoding: str | None = None,
    chunk: int = 4096,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    headers = {**(headers or {}), **({"content-encoding": encoding} if encoding else {})}

    async def chunks() -> AsyncIterator[bytes]:
        for i in range(0, len(body), chunk):
            yield body[i : i + chunk]

    class Stream(httpx.AsyncByteStream):
        async def __aiter__(self) -> AsyncIterator[bytes]:
            async for part in chunks():
                yield part

    return httpx.Response(200, headers=headers, stream=Stream())


async def test_a_double_gzip_bomb_is_cut_at_the_limit_without_decoding_it() -> None:
    bomb = gzip.compress(zeros_gzip(200 * 1024 * 1024))
    assert len(bomb) < 1024  # a few hundred bytes on the wire
    with pytest.raises(BodyTooLarge, match=f"larger than {LIMIT} bytes after decoding"):
        await read_bounded(response(bomb, "gzip, gzip"), LIMIT)


def test_no_stage_produces_more_than_the_limit_plus_one() -> None:
    decoder = BoundedDecoder("gzip", LIMIT)
    payload = zeros_gzip(10 * LIMIT)
    with pytest.raises(BodyTooLarge):
        decoder.feed(payload)
    assert decoder._produced == [LIMIT + 1]


@pytest.mark.parametrize(
    ("encoding", "encode"),
    [
        (None, lambda b: b),
        ("identity", lambda b: b),
        ("gzip", gzip.compress),
        ("x-gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda b: zlib.compress(b, wbits=-zlib.MAX_WBITS)),
        ("gzip, gzip", lambda b: gzip.compress(gzip.compress(b))),
        ("deflate, gzip", lambda b: gzip.compress(zlib.compress(b))),
        ("gzip", lambda b: gzip.compress(b[:100]) + gzip.compress(b[100:])),
        ("gzip", lambda b: gzip.compress(b) + bytes(16)),
    ],
)
async def test_encoded_bodies_within_the_limit_decode_exactly(encoding: str | None, encode) -> None:  # type: ignore[no-untyped-def]
    body = bytes(range(256)) * (LIMIT // 256)  # exactly the limit
    assert await read_bounded(response(encode(body), encoding, chunk=1000), LIMIT) == body


async def test_one_byte_over_the_limit_is_refused_after_decoding() -> None:
    body = bytes(LIMIT + 1)
    with pytest.raises(BodyTooLarge, match="after decoding"):
        await read_bounded(response(gzip.compress(body), "gzip"), LIMIT)


async def test_raw_bytes_are_counted_on_the_wire() -> None:
    with pytest.raises(BodyTooLarge, match="on the wire"):
        await read_bounded(response(bytes(LIMIT + 1)), LIMIT)
    declared = response(b"", headers={"content-length": str(LIMIT + 1)})
    with pytest.raises(BodyTooLarge, match="on the wire"):
        await read_bounded(declared, LIMIT)


async def test_unknown_or_corrupt_encodings_are_undecodable() -> None:
    with pytest.raises(UndecodableBody, match="Content-Encoding br"):
        await read_bounded(response(b"x", "br"), LIMIT)
    with pytest.raises(UndecodableBody, match="gzip-encoded response is corrupt"):
        await read_bounded(response(b"\x1f\x8bnot gzip at all", "gzip"), LIMIT)
    with pytest.raises(UndecodableBody, match="deflate-encoded response is corrupt"):
        await read_bounded(response(b"\xff" * 50, "deflate"), LIMIT)
    assert "gzip" in ACCEPT_ENCODING


async def test_a_response_already_in_memory_is_checked_by_its_size() -> None:
    assert await read_bounded(httpx.Response(200, content=b"abc"), LIMIT) == b"abc"
    with pytest.raises(BodyTooLarge, match="after decoding"):
        await read_bounded(httpx.Response(200, content=bytes(LIMIT + 1)), LIMIT)
