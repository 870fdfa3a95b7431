"""The rate-limit decisions, with the clock passed in: bursts, refill, sliding windows, quotas,
per-tenant limits over the defaults, and the IETF fields they answer with."""

from __future__ import annotations

from ingress import ratelimit
from ingress.auth import EVERY_SCOPE, required_scopes
from ingress.ratelimit import RequestRate, quota, resolve, run_starts, window_of
from workflow.limits import Limits


def test_a_tenant_may_burst_twice_its_rate_then_waits_for_the_next_token() -> None:
    rate = RequestRate()
    allowed = [rate.check("t", 10, now=100.0).allowed for _ in range(25)]
    assert allowed == [True] * 20 + [False] * 5
    refused = rate.check("t", 10, now=100.0)
    assert refused.retry_after == 1
    assert refused.policy == '"requests";q=20;w=2'
    assert refused.state.startswith('"requests";r=0;')
    assert rate.check("t", 10, now=100.1).allowed, "one token back after 1/rate seconds"
    assert not rate.check("t", 10, now=100.1).allowed


def test_one_tenant_at_its_limit_leaves_another_untouched() -> None:
    rate = RequestRate()
    for _ in range(30):
        rate.check("noisy", 10, now=5.0)
    quiet = rate.check("quiet", 10, now=5.0)
    assert quiet.allowed
    assert quiet.state == '"requests";r=19;t=1'


def test_an_idle_tenant_gets_its_whole_burst_back() -> None:
    rate = RequestRate()
    for _ in range(20):
        rate.check("t", 10, now=0.0)
    assert not rate.check("t", 10, now=0.0).allowed
    assert [rate.check("t", 10, now=2.0).allowed for _ in range(21)] == [True] * 20 + [False]


def test_runs_per_minute_counts_the_previous_window_by_the_share_still_inside() -> None:
    # 60 a minute; the previous minute used all 60; 45 s into this one a quarter of it
    # still counts (15), so 45 more fit.
    assert run_starts(60, previous=60, current=45, elapsed=45).allowed
    refused = run_starts(60, previous=60, current=46, elapsed=45)
    assert not refused.allowed
    assert refused.retry_after >= 1
    assert refused.policy == '"runs";q=60;w=60'
    assert run_starts(60, previous=0, current=60, elapsed=1).allowed
    full = run_starts(60, previous=0, current=61, elapsed=1)
    assert not full.allowed
    assert 59 <= full.retry_after <= 61, "room again once this window has slid out"


def test_window_of_gives_the_minute_and_the_seconds_into_it() -> None:
    assert window_of(125.5) == (2, 5.5)


def test_a_quota_counts_what_is_asked_for() -> None:
    assert quota("concurrent", 2, used=2).allowed
    refused = quota("concurrent", 2, used=3)
    assert not refused.allowed
    assert refused.state == '"concurrent";r=0'
    fields = ratelimit.headers([quota("concurrent", 2, used=1), refused])
    assert fields["RateLimit-Policy"] == '"concurrent";q=2, "concurrent";q=2'
    assert fields["Retry-After"] == "1"
    assert "Retry-After" not in ratelimit.headers([quota("concurrent", 2, used=1)])


def test_a_tenants_own_limits_win_and_null_means_unlimited() -> None:
    defaults = Limits()
    assert resolve(defaults, {}) == ratelimit.TenantLimits(
        requests_per_second=defaults.tenant_requests_per_second,
        runs_per_minute=defaults.tenant_runs_per_minute,
        concurrent_runs=defaults.tenant_concurrent_runs,
        stored_bytes=defaults.tenant_stored_bytes,
    )
    own = resolve(defaults, {"runsPerMinute": 5.0, "concurrentRuns": None})
    assert own.runs_per_minute == 5
    assert own.concurrent_runs is None
    assert own.requests_per_second == defaults.tenant_requests_per_second


def test_every_tenant_route_needs_a_named_scope_and_an_unknown_one_needs_all() -> None:
    from ingress.openapi import document

    operations = [
        (method.upper(), path)
        for path, item in document()["paths"].items()
        if path.startswith("/v1/")
        for method in item
    ]
    assert len(operations) >= 13
    for method, path in operations:
        assert required_scopes(method, path) != EVERY_SCOPE, (method, path)
    assert required_scopes("GET", "/v1/workflows/w") == ()
    assert required_scopes("PUT", "/v1/workflows/w") == ("workflows:write",)
    assert required_scopes("POST", "/v1/workflows/w/run") == ("runs:write",)
    assert required_scopes("GET", "/v1/runs/run_1/events") == ("runs:read",)
    assert required_scopes("POST", "/v1/runs/run_1/cancel") == ("runs:write",)
    assert required_scopes("DELETE", "/v1/something-new") == EVERY_SCOPE


def test_only_runs_admitted_with_a_marker_are_released_and_only_once() -> None:
    marked = ratelimit.MarkedRuns(max_runs=2)
    marked.add("run_a")
    marked.add("run_b")
    assert marked.take(["run_a", "run_x"]) == ["run_a"]
    assert marked.take(["run_a"]) == [], "a repeated terminal event deletes nothing more"
    marked.add("run_c")
    marked.add("run_d")  # over max_runs: the oldest is forgotten (reconciled at the quota)
    assert len(marked) == 2
    assert marked.take(["run_b", "run_c", "run_d"]) == ["run_c", "run_d"]
