"""Many tenants on one service: rate limits and quotas answered 429 with `Retry-After` and the
`RateLimit` fields, keys with scopes created, listed and revoked over the admin API, `/metrics`
closed to the public, and a MongoDB outage answered 503 rather than 500.

Each test makes tenants of its own (over the admin API, with the limits it needs), so the
shared "e2e" tenant, which has no limits, is never throttled."""

from __future__ import annotations

import contextlib
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest
from e2e_helpers import poll, register
from test_service_lifecycle import TcpProxy, _closed_port

pytestmark = pytest.mark.e2e

WAIT = {
    "name": "waits",
    "inputSchema": {"type": "object"},
    "nodes": [{"id": "nap", "type": "wait", "params": {"seconds": 30}}],
    "outputs": {"waited": "{{ nodes.nap.waited }}"},
}
ECHO = {
    "name": "echo",
    "inputSchema": {"type": "object"},
    "nodes": [{"id": "say", "type": "text.template", "params": {"template": "hi"}}],
    "outputs": {"text": "{{ nodes.say.text }}"},
}


def _admin(system: Any) -> httpx.Client:
    return system.client(key=system.env["ADMIN_API_KEY"], timeout=30)


def _tenant(
    system: Any, limits: dict[str, Any] | None = None, scopes: list[str] | None = None
) -> tuple[str, dict[str, Any]]:
    """A new tenant with its own limits: its id and its new key (as the admin API made it)."""
    tenant = f"tenancy-{secrets.token_hex(4)}"
    with _admin(system) as admin:
        if limits is not None:
            r = admin.put(f"/v1/admin/tenants/{tenant}/limits", json=limits)
            assert r.status_code == 200, r.text
        body: dict[str, Any] = {"tenantId": tenant, "name": "test"}
        if scopes is not None:
            body["scopes"] = scopes
        created = admin.post("/v1/admin/keys", json=body)
        assert created.status_code == 201, created.text
        return tenant, created.json()


def test_a_tenant_over_its_rate_limit_gets_429_while_another_is_unaffected(system: Any) -> None:
    _, noisy = _tenant(system, {"requestsPerSecond": 2})
    _, quiet = _tenant(system)
    with system.client(noisy["key"]) as c, system.client(quiet["key"]) as other:
        answers = [c.get("/v1/workflows") for _ in range(12)]
        codes = [a.status_code for a in answers]
        # Bursts of twice the rate (4) pass; the requests past them are refused.
        assert codes[:4] == [200] * 4, codes
        assert 429 in codes, codes
        refused = next(a for a in answers if a.status_code == 429)
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert int(refused.headers["Retry-After"]) >= 1
        assert refused.headers["RateLimit-Policy"] == '"requests";q=4;w=2'
        assert refused.headers["RateLimit"].startswith('"requests";r=0;')
        assert "TENANT_REQUESTS_PER_SECOND (2/s)" in refused.json()["detail"]
        ok = answers[0]
        assert ok.headers["RateLimit-Policy"] == '"requests";q=4;w=2'
        assert ok.headers["RateLimit"].startswith('"requests";r=3;')

        mine = other.get("/v1/workflows")
        assert mine.status_code == 200, "another tenant is unaffected"
        assert mine.headers["RateLimit-Policy"].startswith('"requests";q=20;')


def test_a_tenant_at_its_concurrent_runs_quota_gets_429_and_nothing_is_stored(
    system: Any,
) -> None:
    _, key = _tenant(system, {"concurrentRuns": 1, "runsPerMinute": None})
    with system.client(key["key"]) as c:
        workflow_id = register(c, WAIT)
        first = c.post(
            f"/v1/workflows/{workflow_id}/run", json={}, headers={"Prefer": "respond-async"}
        )
        assert first.status_code == 202, first.text
        assert first.headers["RateLimit-Policy"].endswith('"concurrent";q=1')
        second = c.post(
            f"/v1/workflows/{workflow_id}/run", json={}, headers={"Prefer": "respond-async"}
        )
        assert second.status_code == 429, second.text
        assert "TENANT_CONCURRENT_RUNS (1)" in second.json()["detail"]
        assert int(second.headers["Retry-After"]) >= 1
        assert '"concurrent";r=0' in second.headers["RateLimit"]
        stored = c.get("/v1/runs", params={"workflowId": workflow_id}).json()["items"]
        assert [r["runId"] for r in stored] == [first.json()["runId"]], "nothing else stored"

        # Once the first run has ended, the tenant may start another.
        assert c.post(f"/v1/runs/{first.json()['runId']}/cancel").status_code in (200, 202)
        assert poll(c, first.json()["runId"])["status"] == "canceled"
        deadline = time.monotonic() + 20
        while True:
            again = c.post(
                f"/v1/workflows/{workflow_id}/run", json={}, headers={"Prefer": "respond-async"}
            )
            if again.status_code == 202 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert again.status_code == 202, again.text
        c.post(f"/v1/runs/{again.json()['runId']}/cancel")


def test_a_tenant_over_its_runs_per_minute_gets_429_naming_the_limit(system: Any) -> None:
    _, key = _tenant(system, {"runsPerMinute": 2, "concurrentRuns": None})
    with system.client(key["key"]) as c:
        workflow_id = register(c, ECHO)
        codes = []
        for _ in range(3):
            r = c.post(f"/v1/workflows/{workflow_id}/run", json={})
            codes.append(r.status_code)
        assert codes == [200, 200, 429], codes
        assert "TENANT_RUNS_PER_MINUTE (2)" in r.json()["detail"]
        assert int(r.headers["Retry-After"]) >= 1
        assert '"runs";q=2;w=60' in r.headers["RateLimit-Policy"]
        assert len(c.get("/v1/runs", params={"workflowId": workflow_id}).json()["items"]) == 2


def test_a_tenant_over_its_stored_bytes_gets_429_and_nothing_more_is_stored(
    system: Any,
) -> None:
    _, key = _tenant(system, {"storedBytes": 3000})
    upload = {"Content-Type": "text/plain"}
    with system.client(key["key"]) as c:
        first = c.post("/v1/assets", content=b"x" * 2000, headers=upload)
        assert first.status_code == 201, first.text
        assert '"stored-bytes";q=3000' in first.headers["RateLimit-Policy"]
        refused = c.post("/v1/assets", content=b"y" * 2000, headers=upload)
        assert refused.status_code == 429, refused.text
        assert "TENANT_STORED_BYTES (3000)" in refused.json()["detail"]
        assert int(refused.headers["Retry-After"]) >= 1
        small = c.post("/v1/assets", content=b"z" * 500, headers=upload)
        assert small.status_code == 201, "what fits is still accepted"


def test_keys_are_listed_by_prefix_and_a_revoked_key_is_refused_within_a_second(
    system: Any,
) -> None:
    tenant, key = _tenant(system)
    with _another_ingress(system, "replica") as replica:
        _revoke_and_wait_for_401(system, tenant, key, [system.url, replica])


def _revoke_and_wait_for_401(
    system: Any, tenant: str, key: dict[str, Any], replicas: list[str]
) -> None:
    auth = {"Authorization": f"Bearer {key['key']}"}
    for url in replicas:  # each replica has the key in its cache now
        assert httpx.get(f"{url}/v1/workflows", headers=auth, timeout=10).status_code == 200
    with _admin(system) as admin:
        listed = admin.get("/v1/admin/keys", params={"tenantId": tenant}).json()["items"]
        assert [k["keyId"] for k in listed] == [key["keyId"]]
        assert listed[0]["prefix"] == key["key"][:12]
        assert key["key"] not in str(listed)
        assert set(listed[0]) >= {"keyId", "tenantId", "prefix", "scopes", "createdAt"}
        assert "key" not in listed[0]

        revoked_at = time.monotonic()
        assert admin.delete(f"/v1/admin/keys/{key['keyId']}").status_code == 204
        assert admin.delete(f"/v1/admin/keys/{key['keyId']}").status_code == 204
    deadline = revoked_at + 5  # the key cache lives 1 s; the rest is slack for the machine
    for url in replicas:
        while httpx.get(f"{url}/v1/workflows", headers=auth, timeout=10).status_code != 401:
            assert time.monotonic() < deadline, f"{url} still accepts a revoked key"
            time.sleep(0.05)
        print(f"revoked key refused by {url} after {time.monotonic() - revoked_at:.2f} s")
    with _admin(system) as admin:
        [after] = admin.get("/v1/admin/keys", params={"tenantId": tenant}).json()["items"]
        assert after["revokedAt"] is not None


def test_a_key_without_a_scope_gets_403_naming_it(system: Any) -> None:
    _, reader = _tenant(system, scopes=["runs:read"])
    with system.client(reader["key"]) as c:
        refused = c.put(f"/v1/workflows/wf-{secrets.token_hex(4)}", json=ECHO)
        assert refused.status_code == 403, refused.text
        assert "workflows:write" in refused.json()["detail"]
        assert c.get("/v1/runs").status_code == 200
        assert c.get("/v1/workflows").status_code == 200, "reading the registry: any key"
        assert c.post("/v1/workflows/none/run", json={}).status_code == 403


def test_the_admin_api_and_metrics_refuse_tenant_keys_and_anonymous_requests(
    system: Any,
) -> None:
    with system.client() as tenant:
        assert tenant.get("/v1/admin/keys", params={"tenantId": "e2e"}).status_code == 403
        assert tenant.post("/v1/admin/keys", json={"tenantId": "e2e"}).status_code == 403
        assert tenant.get("/metrics").status_code == 403
    anonymous = httpx.get(f"{system.url}/metrics", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"].startswith("application/problem+json")
    assert httpx.get(f"{system.url}/v1/admin/keys?tenantId=e2e", timeout=10).status_code == 401
    with _admin(system) as admin:
        metrics = admin.get("/metrics")
        assert metrics.status_code == 200
        assert "python_info" in metrics.text


def test_admin_cli_creates_lists_and_revokes_keys_and_sets_limits(system: Any) -> None:
    tenant = f"tenancy-cli-{secrets.token_hex(3)}"

    def cli(*args: str) -> str:
        return subprocess.run(
            [sys.executable, "-m", "ingress.admin", *args],
            env=system.env,
            capture_output=True,
            text=True,
            check=True,
            timeout=60,
        ).stdout

    key = cli("create-key", "--tenant", tenant, "--scopes", "runs:read").strip()
    assert key.startswith("wfk_")
    [listed] = [line for line in cli("list-keys", "--tenant", tenant).splitlines() if line]
    assert key not in listed
    assert '"runs:read"' in listed
    limits = cli("set-limits", "--tenant", tenant, "--runs-per-minute", "7")
    assert '"runsPerMinute": 7.0' in limits
    with _admin(system) as admin:
        view = admin.get(f"/v1/admin/tenants/{tenant}/limits").json()
        assert view["effective"]["runsPerMinute"] == 7
        key_id = admin.get("/v1/admin/keys", params={"tenantId": tenant}).json()["items"][0]
    assert "revoked" in cli("revoke-key", key_id["keyId"])


@contextlib.contextmanager
def _another_ingress(system: Any, name: str, env: dict[str, str] | None = None) -> Iterator[str]:
    """One more ingress replica beside the system's, with `env` overriding the system's."""
    port = _closed_port()
    env = {**system.env, **(env or {}), "INGRESS_PORT": str(port)}
    log = (system.logs / f"ingress-{name}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "ingress"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{base}/readyz", timeout=5).status_code == 200:
                    break
            assert proc.poll() is None, "ingress exited"
            assert time.monotonic() < deadline, "ingress did not start"
            time.sleep(0.2)
        yield base
    finally:
        proc.terminate()
        proc.wait(30)


def test_mongodb_down_is_a_503_with_retry_after_and_readyz_names_it(system: Any) -> None:
    url = urlsplit(system.env["MONGODB_URL"])
    proxy = TcpProxy(url.port or 27017)
    via_proxy = urlunsplit(url._replace(netloc=f"127.0.0.1:{proxy.port}"))
    _, key = _tenant(system)
    with _another_ingress(system, "mongodb-down", {"MONGODB_URL": via_proxy}) as base:
        headers = {"Authorization": f"Bearer {key['key']}"}
        assert httpx.get(f"{base}/v1/runs", headers=headers, timeout=10).status_code == 200
        proxy.close()
        started = time.monotonic()
        deadline = started + 30
        while True:
            # The key is cached for a second; past that every request needs MongoDB.
            down = httpx.get(f"{base}/v1/runs", headers=headers, timeout=20)
            if down.status_code != 200 or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert down.status_code == 503, down.text
        assert down.headers["content-type"].startswith("application/problem+json")
        assert int(down.headers["Retry-After"]) >= 1
        assert "MongoDB" in down.json()["detail"]
        print(f"503 after {time.monotonic() - started:.2f} s")

        ready = httpx.get(f"{base}/readyz", timeout=20)
        assert ready.status_code == 503
        detail = ready.json()["detail"]
        assert "mongodb" in detail
        assert "kafka" not in detail
        assert "Error" not in detail, "no exception text"
        assert str(proxy.port) not in detail
        assert httpx.get(f"{base}/healthz", timeout=5).status_code == 200
