"""Uploading input assets: the body is the file, the answer its s3:// reference.

The body is streamed to S3 (one part in memory at a time), bounded by MAX_UPLOAD_BYTES (413,
from Content-Length and again while streaming) and typed by UPLOAD_CONTENT_TYPES (415). A
refused upload stores nothing.
"""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator

from contracts.api import AssetResource
from fastapi import APIRouter, Request
from storage.assets import owned_by
from storage.ids import time_ordered_id
from workflow.limits import exceeded

from ingress.auth import TenantId
from ingress.problems import ProblemError
from ingress.quotas import charge_stored_bytes, check_stored_bytes
from ingress.runtime import RuntimeDep

router = APIRouter(prefix="/v1/assets", tags=["assets"])


def allowed_types(setting: str) -> list[str]:
    return [t.strip().lower() for t in setting.split(",") if t.strip()]


def _too_large(limit: int) -> ProblemError:
    return ProblemError(
        413,
        f"the upload is larger than {exceeded('max_upload_bytes', limit)}",
        kind="upload-too-large",
    )


async def _bounded(first: bytes, rest: AsyncIterator[bytes], limit: int) -> AsyncIterator[bytes]:
    """The body, refusing it as soon as it passes `limit` (whatever Content-Length said)."""
    size = len(first)
    yield first
    async for chunk in rest:
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        yield chunk


@router.post("", response_model=AssetResource, response_model_by_alias=True, status_code=201)
async def upload_asset(request: Request, tenant_id: TenantId, runtime: RuntimeDep) -> AssetResource:
    """Send the file as the raw body with its `Content-Type` (e.g. `image/png`); at most
    MAX_UPLOAD_BYTES, of a type in UPLOAD_CONTENT_TYPES."""
    settings = runtime.settings
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    allowed = allowed_types(settings.upload_content_types)
    if content_type not in allowed:
        sent = f"Content-Type {content_type!r}" if content_type else "no Content-Type"
        raise ProblemError(
            415,
            f"uploads of {sent} are not accepted; send the file as the raw body with one of: "
            + ", ".join(allowed),
            kind="unsupported-media",
        )
    limit = settings.max_upload_bytes
    declared_header = request.headers.get("content-length")
    declared = int(declared_header) if declared_header and declared_header.isdigit() else None
    if declared is not None and declared > limit:
        raise _too_large(limit)
    # Look at the first bytes before starting an upload: an empty body stores nothing.
    chunks = aiter(request.stream())
    first = b""
    async for chunk in chunks:
        if chunk:
            first = chunk
            break
    if not first:
        raise ProblemError(400, "the body is empty", kind="empty-upload")
    if len(first) > limit:
        raise _too_large(limit)
    await check_stored_bytes(runtime, request, tenant_id, declared)
    ext = mimetypes.guess_extension(content_type) or ".bin"
    key = f"{tenant_id}/{time_ordered_id('asset')}{ext}"
    ref, size = await runtime.store.put_stream(
        settings.s3_uploads_bucket,
        key,
        _bounded(first, chunks, limit),
        length=declared,
        content_type=content_type,
        metadata=owned_by(tenant_id),
    )
    # `size` is what the tenant now stores (what a stored-bytes quota charges).
    await charge_stored_bytes(runtime, tenant_id, size)
    return AssetResource(ref=ref, url=runtime.presign(ref), content_type=content_type, bytes=size)
