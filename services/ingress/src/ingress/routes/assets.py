"""Uploading input assets: the body is the file, the answer its s3:// reference."""

from __future__ import annotations

import mimetypes

from contracts.api import AssetResource
from fastapi import APIRouter, Request
from storage.assets import owned_by
from storage.ids import time_ordered_id

from ingress.auth import TenantId
from ingress.body import read_limited
from ingress.problems import ProblemError
from ingress.runtime import RuntimeDep

router = APIRouter(prefix="/v1/assets", tags=["assets"])


@router.post("", response_model=AssetResource, response_model_by_alias=True, status_code=201)
async def upload_asset(request: Request, tenant_id: TenantId, runtime: RuntimeDep) -> AssetResource:
    """Send the file as the raw body with its `Content-Type` (e.g. `image/png`)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not content_type or content_type in {"application/x-www-form-urlencoded"}:
        raise ProblemError(
            415, "send the file as the raw body with its Content-Type", kind="unsupported-media"
        )
    data = await read_limited(request, runtime.settings.max_upload_bytes)
    if not data:
        raise ProblemError(400, "the body is empty", kind="empty-upload")
    ext = mimetypes.guess_extension(content_type) or ".bin"
    key = f"{tenant_id}/{time_ordered_id('asset')}{ext}"
    ref = await runtime.store.put(
        runtime.settings.s3_uploads_bucket,
        key,
        data,
        content_type=content_type,
        metadata=owned_by(tenant_id),
    )
    return AssetResource(
        ref=ref, url=runtime.presign(ref), content_type=content_type, bytes=len(data)
    )
