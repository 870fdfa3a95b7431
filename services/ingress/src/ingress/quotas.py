"""Admitting a run: the tenant's runs per minute and concurrent runs, shared by every replica.

Called once a run request is valid and before anything is stored: a refusal (429) leaves
nothing behind. An admitted run holds a marker in `active_runs` until its terminal event is
seen (`app`'s event listener removes it, in the replica that admitted the run); a marker whose
event was missed is found out when the tenant reaches its quota (`UsageRepository.reconcile`).
A tenant without these limits costs nothing here.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from fastapi import Request
from workflow.limits import exceeded

from ingress import ratelimit
from ingress.auth import RATELIMIT_STATE
from ingress.problems import ProblemError
from ingress.runtime import Runtime


@dataclass(frozen=True)
class Admission:
    tenant_id: str
    run_id: str
    window: int | None
    marked: bool

    async def release(self, runtime: Runtime) -> None:
        """Take the admission back (the run was not stored after all)."""
        if self.window is not None:
            await runtime.usage.uncount_start(self.tenant_id, self.window)
        if self.marked:
            runtime.marked_runs.take([self.run_id])
            await runtime.usage.remove_active([self.run_id])


def _refuse(request: Request, decisions: list[ratelimit.Decision], detail: str) -> ProblemError:
    every = _record(request, decisions)
    return ProblemError(429, detail, kind="quota-exceeded", headers=ratelimit.headers(every))


def _record(request: Request, decisions: list[ratelimit.Decision]) -> list[ratelimit.Decision]:
    """Add the decisions to the request's (its response carries all of them)."""
    every = [*getattr(request.state, RATELIMIT_STATE, []), *decisions]
    setattr(request.state, RATELIMIT_STATE, every)
    return every


async def _no_count() -> tuple[int, int]:
    return 0, 0


async def _no_marker() -> tuple[bool, int]:
    return False, 0


async def admit_run(runtime: Runtime, request: Request, tenant_id: str, run_id: str) -> Admission:
    limits = await runtime.cached_limits.of(tenant_id)
    if limits.runs_per_minute is None and limits.concurrent_runs is None:
        return Admission(tenant_id, run_id, None, marked=False)
    usage = runtime.usage
    window, elapsed = ratelimit.window_of(time.time())
    now = datetime.now(UTC)

    async def count() -> tuple[int, int]:
        current, previous = await asyncio.gather(
            usage.count_start(tenant_id, window), usage.starts_in(tenant_id, window - 1)
        )
        return current, previous

    # Both shared counts at once: the request waits for the slower, not for their sum.
    (current, previous), (marked, active) = await asyncio.gather(
        count() if limits.runs_per_minute is not None else _no_count(),
        usage.add_active(tenant_id, run_id, now=now)
        if limits.concurrent_runs is not None
        else _no_marker(),
    )
    admission = Admission(
        tenant_id,
        run_id,
        window if limits.runs_per_minute is not None else None,
        marked=marked,
    )
    if marked:
        runtime.marked_runs.add(run_id)
    decisions: list[ratelimit.Decision] = []
    if limits.runs_per_minute is not None:
        rate = ratelimit.run_starts(limits.runs_per_minute, previous, current, elapsed)
        decisions.append(rate)
        if not rate.allowed:
            await admission.release(runtime)
            raise _refuse(
                request,
                decisions,
                "too many runs started: "
                f"{exceeded('tenant_runs_per_minute', limits.runs_per_minute)}; "
                "retry after the seconds in Retry-After",
            )
    if limits.concurrent_runs is not None:
        if active > limits.concurrent_runs:
            # Perhaps some ended unseen: look at the runs themselves before refusing.
            active = await usage.reconcile(tenant_id, now=now)
        concurrent = ratelimit.quota("concurrent", limits.concurrent_runs, active)
        decisions.append(concurrent)
        if not concurrent.allowed:
            await admission.release(runtime)
            raise _refuse(
                request,
                decisions,
                "too many runs queued or running: "
                f"{exceeded('tenant_concurrent_runs', limits.concurrent_runs)}; "
                "retry when one of them has ended",
            )
    _record(request, decisions)
    return admission


async def check_stored_bytes(
    runtime: Runtime, request: Request, tenant_id: str, incoming: int | None
) -> None:
    """Refuse (429) an upload that would take the tenant past its stored bytes. Checked before
    the upload and charged after it (`charge_stored_bytes`): uploads running at the same time
    may pass the quota by what they carry, never by more."""
    limits = await runtime.cached_limits.of(tenant_id)
    if limits.stored_bytes is None:
        return
    used = await runtime.usage.stored_bytes(tenant_id)
    decision = ratelimit.quota("stored-bytes", limits.stored_bytes, used + (incoming or 1))
    if not decision.allowed:
        raise _refuse(
            request,
            [decision],
            f"the tenant stores {used} bytes of uploads; this one would pass "
            f"{exceeded('tenant_stored_bytes', limits.stored_bytes)}",
        )
    _record(request, [decision])


async def charge_stored_bytes(runtime: Runtime, tenant_id: str, size: int) -> None:
    # Charged whether or not the tenant has a quota now, so that one set later is true.
    await runtime.usage.charge_bytes(tenant_id, size)
