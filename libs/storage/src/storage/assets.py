"""Assets in S3 through the `minio` SDK (any S3-compatible server).

The SDK is synchronous: network calls run in a worker thread. Presigning is local computation
against the public endpoint, so URLs work for callers outside our network.
"""

from __future__ import annotations

import asyncio
import io
import re
from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

import urllib3
from minio import Minio
from minio.error import S3Error

_REF = re.compile(r"^s3://(?P<bucket>[a-z0-9][a-z0-9.-]{1,61}[a-z0-9])/(?P<key>.+)$")


TENANT_HEADER = "x-amz-meta-tenant"

PART_SIZE = 5 * 1024 * 1024
"""What a streamed upload holds in memory at most: one part (S3's smallest multipart part)."""


def owned_by(tenant_id: str) -> dict[str, str]:
    """Object metadata marking the tenant an asset belongs to."""
    return {"tenant": tenant_id}


class AssetNotFound(Exception):
    def __init__(self, ref: str) -> None:
        super().__init__(f"asset {ref} does not exist")
        self.ref = ref


class InvalidAssetRef(ValueError):
    pass


def parse_ref(ref: str) -> tuple[str, str]:
    match = _REF.match(ref)
    if match is None:
        raise InvalidAssetRef(f"{ref!r} is not an s3://bucket/key reference")
    return match["bucket"], match["key"]


def make_ref(bucket: str, key: str) -> str:
    return f"s3://{bucket}/{key}"


@dataclass(frozen=True)
class S3Config:
    endpoint: str
    """e.g. http://127.0.0.1:38333"""
    public_endpoint: str
    access_key: str
    secret_key: str
    region: str = "us-east-1"


def _client(url: str, cfg: S3Config) -> Minio:
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.netloc:
        raise ValueError(f"S3 endpoint must be http(s)://host:port, got {url!r}")
    # Bounded retries: an unreachable server is reported in seconds, not after the SDK's
    # default of five exponential retries per call.
    http = urllib3.PoolManager(
        timeout=urllib3.Timeout(connect=5, read=60),
        maxsize=32,
        retries=urllib3.Retry(total=2, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]),
    )
    return Minio(
        parts.netloc,
        access_key=cfg.access_key,
        secret_key=cfg.secret_key,
        secure=parts.scheme == "https",
        region=cfg.region,
        http_client=http,
    )


class AssetStore:
    def __init__(self, cfg: S3Config) -> None:
        self._client = _client(cfg.endpoint, cfg)
        self._public = _client(cfg.public_endpoint, cfg)

    async def ping(self) -> None:
        await asyncio.to_thread(self._client.list_buckets)

    async def ensure_bucket(self, bucket: str) -> None:
        def ensure() -> None:
            if not self._client.bucket_exists(bucket):
                try:
                    self._client.make_bucket(bucket)
                except S3Error as exc:
                    if exc.code not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                        raise

        await asyncio.to_thread(ensure)

    async def put(
        self,
        bucket: str,
        key: str,
        data: bytes,
        *,
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> str:
        await asyncio.to_thread(
            self._client.put_object,
            bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type=content_type,
            metadata=metadata,  # type: ignore[arg-type]
        )
        return make_ref(bucket, key)

    async def put_stream(
        self,
        bucket: str,
        key: str,
        chunks: AsyncIterable[bytes],
        *,
        length: int | None,
        content_type: str,
        metadata: dict[str, str] | None = None,
    ) -> tuple[str, int]:
        """Store what `chunks` yields without holding it whole: one part of `PART_SIZE` at a
        time (a multipart upload above it). `length` is the size when it is known.

        Returns the reference and the bytes stored. When `chunks` raises (the caller's size
        limit, a client gone), the exception propagates and nothing is stored: a single part
        is never sent, a multipart upload is aborted (by the SDK)."""
        reader = _StreamReader(chunks, asyncio.get_running_loop())
        await asyncio.to_thread(
            self._client.put_object,
            bucket,
            key,
            reader,  # type: ignore[arg-type]
            -1 if length is None else length,
            content_type=content_type,
            metadata=metadata,  # type: ignore[arg-type]
            part_size=PART_SIZE,
        )
        return make_ref(bucket, key), reader.count

    async def get(self, ref: str, *, tenant_id: str | None = None) -> bytes:
        """The object's bytes. With `tenant_id`, an object another tenant stored (its `tenant`
        metadata differs or is missing) is reported as not found, so nothing about it leaks."""
        bucket, key = parse_ref(ref)

        def read() -> bytes:
            try:
                response = self._client.get_object(bucket, key)
            except S3Error as exc:
                if exc.code in {"NoSuchKey", "NoSuchBucket", "NoSuchObject"}:
                    raise AssetNotFound(ref) from exc
                raise
            try:
                if tenant_id is not None and response.headers.get(TENANT_HEADER) != tenant_id:
                    raise AssetNotFound(ref)
                return response.read()
            finally:
                response.close()
                response.release_conn()

        return await asyncio.to_thread(read)

    def presign(self, ref: str, *, expires: timedelta) -> str:
        bucket, key = parse_ref(ref)
        return self._public.presigned_get_object(bucket, key, expires=expires)


class _StreamReader:
    """A blocking `read(n)` (what the SDK calls in its worker thread) over an async iterable
    consumed on the event loop: each read waits for the loop to produce the next chunks."""

    def __init__(self, chunks: AsyncIterable[bytes], loop: asyncio.AbstractEventLoop) -> None:
        self._chunks: AsyncIterator[bytes] = aiter(chunks)
        self._loop = loop
        self._buffer = bytearray()
        self._done = False
        self.count = 0
        """Bytes handed to the SDK so far: the object's size once the upload returns."""

    async def _next(self) -> bytes | None:
        return await anext(self._chunks, None)

    def read(self, size: int = -1) -> bytes:
        # Fill up to `size` in one call: the SDK concatenates what each read returns.
        while not self._done and (size < 0 or len(self._buffer) < size):
            chunk = asyncio.run_coroutine_threadsafe(self._next(), self._loop).result()
            if chunk is None:
                self._done = True
            else:
                self._buffer += chunk
        take = len(self._buffer) if size < 0 else min(size, len(self._buffer))
        data = bytes(self._buffer[:take])
        del self._buffer[:take]
        self.count += len(data)
        return data
