"""Per-tenant rate limits and quotas: the decisions, pure (the clock is an argument).

- Requests per second: GCRA (a token bucket kept as one "theoretical arrival time" per
  tenant), in this process. Each ingress replica allows a tenant the full rate, so N replicas
  behind a balancer allow up to N times as much: cheap (no I/O per request) and enough to keep
  one tenant from flooding a replica.
- Runs started per minute: a sliding-window estimate from two fixed one-minute windows whose
  counts are shared by every replica (MongoDB, `storage.usage`).
- Concurrent runs and stored bytes: counts shared by every replica, compared with the quota.

Each limit is answered with the IETF `RateLimit-Policy` and `RateLimit` fields
(draft-ietf-httpapi-ratelimit-headers): `"requests";q=20;w=2` says 20 requests per 2 seconds
(10 a second, bursts of 20), `"requests";r=19;t=1` how many are left and in how many seconds
the quota is whole again.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from cachetools import LRUCache
from workflow.limits import Limits

BURST_FACTOR = 2.0
"""A tenant may send this many seconds' worth of requests at once."""
RUN_WINDOW_SECONDS = 60
UNLIMITED = "unlimited"

# The tenant document's field (storage.tenants) -> the Limits default it overrides.
DEFAULT_OF = {
    "requestsPerSecond": "tenant_requests_per_second",
    "runsPerMinute": "tenant_runs_per_minute",
    "concurrentRuns": "tenant_concurrent_runs",
    "storedBytes": "tenant_stored_bytes",
}


@dataclass(frozen=True)
class TenantLimits:
    """One tenant's limits; None means no limit."""

    requests_per_second: float | None
    runs_per_minute: int | None
    concurrent_runs: int | None
    stored_bytes: int | None


def resolve(defaults: Limits, own: Mapping[str, float | None]) -> TenantLimits:
    """The tenant's own limits where it has them (None = unlimited), the defaults elsewhere."""

    def pick(field: str) -> float | None:
        if field in own:
            return own[field]
        return float(getattr(defaults, DEFAULT_OF[field]))

    def whole(value: float | None) -> int | None:
        return None if value is None else int(value)

    return TenantLimits(
        requests_per_second=pick("requestsPerSecond"),
        runs_per_minute=whole(pick("runsPerMinute")),
        concurrent_runs=whole(pick("concurrentRuns")),
        stored_bytes=whole(pick("storedBytes")),
    )


@dataclass(frozen=True)
class Decision:
    allowed: bool
    policy: str
    """`RateLimit-Policy` item, e.g. `"requests";q=20;w=2`."""
    state: str
    """`RateLimit` item, e.g. `"requests";r=19;t=1`."""
    retry_after: int = 0
    """Whole seconds to wait before retrying (when refused)."""


def _seconds(value: float) -> int:
    return max(0, math.ceil(value - 1e-9))


class RequestRate:
    """GCRA per tenant: `check` admits a request or says how long to wait."""

    def __init__(self, max_tenants: int = 100_000) -> None:
        # tenant -> theoretical arrival time; an evicted tenant starts with a full bucket,
        # which is what it would have after being idle anyway.
        self._tat: LRUCache[str, float] = LRUCache(max_tenants)

    def check(self, tenant_id: str, rate: float, now: float) -> Decision:
        interval = 1.0 / rate
        burst = max(1, math.floor(rate * BURST_FACTOR))
        tolerance = interval * (burst - 1)
        window = _seconds(burst * interval)
        policy = f'"requests";q={burst};w={window}'
        tat = max(self._tat.get(tenant_id, now), now)
        if tat - now > tolerance + 1e-9:  # float sums of `interval` drift by ulps
            wait = tat - tolerance - now
            return Decision(
                False,
                policy,
                f'"requests";r=0;t={_seconds(tat - now)}',
                retry_after=max(1, _seconds(wait)),
            )
        tat += interval
        self._tat[tenant_id] = tat
        remaining = max(0, math.floor((tolerance - (tat - now)) / interval) + 1)
        return Decision(True, policy, f'"requests";r={remaining};t={_seconds(tat - now)}')


def window_of(now: float, window: int = RUN_WINDOW_SECONDS) -> tuple[int, float]:
    """The window number of `now` and the seconds elapsed in it."""
    number = math.floor(now / window)
    return number, now - number * window


def run_starts(
    limit: int, previous: int, current: int, elapsed: float, window: int = RUN_WINDOW_SECONDS
) -> Decision:
    """Whether a run start may proceed. `current` counts the starts of this window including
    this one, `previous` those of the window before; the estimate of the last `window`
    seconds weighs the previous window by the share of it still inside them."""
    weight = max(0.0, 1.0 - elapsed / window)
    estimate = previous * weight + current
    policy = f'"runs";q={limit};w={window}'
    if estimate <= limit:
        remaining = max(0, math.floor(limit - estimate))
        return Decision(True, policy, f'"runs";r={remaining};t={_seconds(window - elapsed)}')
    before = current - 1  # this start is taken back when refused
    if before + 1 <= limit and previous > 0:
        # Within this window, once enough of the previous one has slid out.
        wait = window * (1.0 - (limit - before - 1) / previous) - elapsed
    else:
        # Only in a later window, once enough of this one has slid out.
        wait = (window - elapsed) + window * (1.0 - (limit - 1) / max(before, 1))
    retry = max(1, _seconds(wait))
    return Decision(False, policy, f'"runs";r=0;t={retry}', retry_after=retry)


def quota(name: str, limit: int, used: int) -> Decision:
    """A count with no window (runs active now, bytes stored): room or not. `used` includes
    what is being asked for."""
    policy = f'"{name}";q={limit}'
    if used <= limit:
        return Decision(True, policy, f'"{name}";r={limit - used}')
    return Decision(False, policy, f'"{name}";r=0', retry_after=1)


def headers(decisions: list[Decision]) -> dict[str, str]:
    """The `RateLimit-Policy` and `RateLimit` fields for the decisions made on a request, and
    `Retry-After` when one of them refused it."""
    out = {
        "RateLimit-Policy": ", ".join(d.policy for d in decisions),
        "RateLimit": ", ".join(d.state for d in decisions),
    }
    refused = [d.retry_after for d in decisions if not d.allowed]
    if refused:
        out["Retry-After"] = str(max(refused))
    return out


class MarkedRuns:
    """The runs this process admitted with an active-run marker: only their terminal events
    cost a delete here, so tenants without a concurrent-runs quota (the bench's) cost none,
    and of several replicas only the one that admitted a run removes its marker. A marker
    this process forgot (a restart, or more than `max_runs` at once) is removed by the
    reconciliation when its tenant reaches its quota."""

    def __init__(self, max_runs: int = 100_000) -> None:
        self._runs: dict[str, None] = {}
        self._max = max_runs

    def add(self, run_id: str) -> None:
        if len(self._runs) >= self._max:
            self._runs.pop(next(iter(self._runs)))
        self._runs[run_id] = None

    def take(self, run_ids: list[str]) -> list[str]:
        """Those of `run_ids` that were marked, forgetting them."""
        return [r for r in run_ids if self._runs.pop(r, 0) is None]

    def __len__(self) -> int:
        return len(self._runs)
