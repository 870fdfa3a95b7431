"""Every limit on what a tenant sends is a 4xx problem naming the limit, and nothing is stored.

Limits the shared e2e ingress cannot reach under its 64 KiB body limit are crossed on a second
ingress (same database and Kafka) started here with small limits. Tenant JSON Schema that
used to freeze the ingress is answered while a concurrent `/healthz` is answered too; the
times are printed for the record, never asserted.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from devstack import process

pytestmark = pytest.mark.e2e

SMALL_PORT = int(os.environ.get("E2E_SMALL_INGRESS_PORT", "38190"))
SMALL_LIMITS = {
    "MAX_DEFINITION_BYTES": "4096",
    "MAX_INPUT_SCHEMA_BYTES": "1024",
    "MAX_RESOLVED_VALUE_BYTES": "1024",
    "MAX_INPUTS_BYTES": "1024",
    "MAX_METADATA_BYTES": "256",
    "MAX_WAIT_NODE_SECONDS": "3600",
    "MAX_MAP_CONCURRENCY": "8",
}


def _text(node_id: str = "a", template: str = "{{ inputs.x }}", **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "text.template", "params": {"template": template}, **extra}


def _definition(*nodes: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {
        "name": "limits",
        "nodes": list(nodes) or [_text()],
        "outputs": {"text": "{{ nodes.a.text }}"},
        **changes,
    }


def _problem(r: httpx.Response, status: int, names: str | None = None) -> dict[str, Any]:
    assert r.status_code == status, r.text
    assert r.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = r.json()
    if names is not None:
        assert names in r.text, body
    return body


def _refused_registration(
    c: httpx.Client, definition: dict[str, Any] | bytes, status: int, names: str | None
) -> dict[str, Any]:
    """PUT a definition that must be refused, and show that no version was stored."""
    workflow_id = f"limit-{secrets.token_hex(4)}"
    if isinstance(definition, bytes):
        r = c.put(
            f"/v1/workflows/{workflow_id}",
            content=definition,
            headers={"Content-Type": "application/json"},
        )
    else:
        r = c.put(f"/v1/workflows/{workflow_id}", json=definition)
    body = _problem(r, status, names)
    assert c.get(f"/v1/workflows/{workflow_id}").status_code == 404
    return body


def _runs_of(c: httpx.Client, workflow_id: str) -> int:
    r = c.get("/v1/runs", params={"workflowId": workflow_id, "limit": 100})
    return len(r.raise_for_status().json()["items"])


@pytest.fixture(scope="module")
def workflow_id(system: Any) -> str:
    workflow_id = f"limits-{secrets.token_hex(4)}"
    with system.client() as c:
        assert c.put(f"/v1/workflows/{workflow_id}", json=_definition()).status_code == 201
    return workflow_id


@pytest.fixture(scope="module")
def small(system: Any) -> Iterator[httpx.Client]:
    """A second ingress with small limits, on the same database and Kafka."""
    log = system.logs / "ingress-small.log"
    env = {**system.env, **SMALL_LIMITS, "INGRESS_PORT": str(SMALL_PORT)}
    with log.open("ab") as out:
        proc = subprocess.Popen([sys.executable, "-m", "ingress"], env=env, stdout=out, stderr=out)
    url = f"http://127.0.0.1:{SMALL_PORT}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the small-limits ingress did not start:\n{process.tail(log)}")
            time.sleep(0.1)
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {system.key}"}, timeout=60
        ) as client:
            yield client
    finally:
        proc.terminate()
        proc.wait(timeout=30)


# --- the edge: every JSON body -----------------------------------------------------------


def test_nesting_3000_deep_is_a_400_naming_max_json_depth(system: Any, workflow_id: str) -> None:
    body = b'{"inputs": {"x": ' + b"[" * 3000 + b"]" * 3000 + b"}}"
    with system.client() as c:
        r = c.post(
            f"/v1/workflows/{workflow_id}/run",
            content=body,
            headers={"Content-Type": "application/json"},
        )
        _problem(r, 400, "MAX_JSON_DEPTH (64)")
        _refused_registration(
            c, b'{"name": "deep", "description": ' + b"[" * 3000 + b"]" * 3000 + b"}", 400, None
        )
        assert _runs_of(c, workflow_id) == 0


def test_a_5000_digit_integer_is_a_400_naming_max_number_chars(
    system: Any, workflow_id: str
) -> None:
    with system.client() as c:
        r = c.post(
            f"/v1/workflows/{workflow_id}/run",
            content=b'{"inputs": {"x": ' + b"7" * 5000 + b"}}",
            headers={"Content-Type": "application/json"},
        )
        _problem(r, 400, "MAX_NUMBER_CHARS (64)")
        assert _runs_of(c, workflow_id) == 0


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e999"])
def test_nan_and_infinity_are_a_400(system: Any, workflow_id: str, literal: bytes) -> None:
    with system.client() as c:
        r = c.post(
            f"/v1/workflows/{workflow_id}/run",
            content=b'{"inputs": {"x": "a"}, "timeoutSeconds": ' + literal + b"}",
            headers={"Content-Type": "application/json"},
        )
        _problem(r, 400)
        assert _runs_of(c, workflow_id) == 0


def test_a_lone_surrogate_in_metadata_or_a_key_is_a_422(system: Any, workflow_id: str) -> None:
    with system.client() as c:
        r = c.post(
            f"/v1/workflows/{workflow_id}/run",
            content=b'{"inputs": {"x": "a"}, "metadata": {"note": "\\ud800"}}',
            headers={"Content-Type": "application/json"},
        )
        assert "/metadata/note" in _problem(r, 422, "surrogate")["detail"]
        assert _runs_of(c, workflow_id) == 0
        definition = b'{"name": "s", "inputSchema": {"\\udc00": 1}, "nodes": []}'
        _refused_registration(c, definition, 422, "surrogate")
        # U+0000 is valid JSON but PostgreSQL (under FerretDB) stores it in no string.
        definition = b'{"name": "a\\u0000b", "nodes": []}'
        _refused_registration(c, definition, 422, "U+0000")


def test_odd_headers_are_4xx_or_ignored_never_500(system: Any, workflow_id: str) -> None:
    with system.client() as c:
        for cancel_after in (b"nan", b"inf", b"1e400", b"-5", b"\xff", b"604801"):
            r = c.post(
                f"/v1/workflows/{workflow_id}/run",
                json={"inputs": {"x": "a"}},
                headers={"Cancel-After": cancel_after},
            )
            assert "cancel-after" in str(_problem(r, 422)).lower()
        assert _runs_of(c, workflow_id) == 0
        accepting = f"prefer-{secrets.token_hex(4)}"  # these runs start: not the shared id
        assert c.put(f"/v1/workflows/{accepting}", json=_definition()).status_code == 201
        for prefer in ("wait=nan", "wait=1e400", "wait=-1, respond-async", "wait"):
            r = c.post(
                f"/v1/workflows/{accepting}/run",
                json={"inputs": {"x": "a"}},
                headers={"Prefer": prefer},
            )
            assert r.status_code in (200, 202), r.text


# --- a run request ------------------------------------------------------------------------


def test_a_run_timeout_over_max_run_timeout_seconds_is_a_422(system: Any, workflow_id: str) -> None:
    with system.client() as c:
        r = c.post(
            f"/v1/workflows/{workflow_id}/run",
            json={"inputs": {"x": "a"}, "timeoutSeconds": 1e300},
        )
        _problem(r, 422)
        assert _runs_of(c, workflow_id) == 0


def test_inputs_over_max_inputs_bytes_are_a_413(small: httpx.Client) -> None:
    workflow_id = f"limits-{secrets.token_hex(4)}"
    assert small.put(f"/v1/workflows/{workflow_id}", json=_definition()).status_code == 201
    r = small.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"x": "y" * 2000}})
    _problem(r, 413, "MAX_INPUTS_BYTES (1024)")
    r = small.post(
        f"/v1/workflows/{workflow_id}/run",
        json={"inputs": {"x": "y"}, "metadata": {"note": "z" * 300}},
    )
    _problem(r, 413, "MAX_METADATA_BYTES (256)")
    assert _runs_of(small, workflow_id) == 0


# --- registration -------------------------------------------------------------------------


def test_a_definition_over_max_definition_bytes_is_a_413(small: httpx.Client) -> None:
    big = _definition(_text(template="{{ inputs.x }}" + "x" * 5000))
    _refused_registration(small, big, 413, "MAX_DEFINITION_BYTES (4096)")


def test_more_nodes_than_max_nodes_is_a_422(system: Any) -> None:
    nodes = [_text(), *(_text(f"n{i}", "x") for i in range(200))]
    with system.client() as c:
        _refused_registration(c, _definition(*nodes), 422, "MAX_NODES (200)")


def test_more_template_references_than_the_limit_is_a_422(system: Any) -> None:
    with system.client() as c:
        definition = _definition(_text(template="{{ inputs.x }}" * 2001))
        _refused_registration(c, definition, 422, "MAX_TEMPLATE_REFERENCES (2000)")


def test_an_input_schema_over_its_limit_is_a_422(small: httpx.Client) -> None:
    schema = {"type": "object", "description": "d" * 1100}
    _refused_registration(small, _definition(inputSchema=schema), 422, "MAX_INPUT_SCHEMA_BYTES")


def test_timeout_seconds_1e300_is_a_422_at_registration(system: Any) -> None:
    with system.client() as c:
        _refused_registration(
            c, _definition(timeoutSeconds=1e300), 422, "MAX_RUN_TIMEOUT_SECONDS (604800"
        )
        _refused_registration(
            c, _definition(_text(timeoutSeconds=1e300)), 422, "MAX_TIMEOUT_SECONDS (86400"
        )


def test_a_wait_over_max_wait_node_seconds_is_a_422(small: httpx.Client) -> None:
    wait = {"id": "w", "type": "wait", "params": {"seconds": 7200}}
    _refused_registration(small, _definition(_text(), wait), 422, "MAX_WAIT_NODE_SECONDS (3600")


def _map(items: Any, concurrency: int = 2) -> dict[str, Any]:
    template = {"type": "text.template", "params": {"template": "{{ item }}"}}
    return {
        "id": "m",
        "type": "map",
        "params": {"items": items, "concurrency": concurrency, "node": template},
    }


def test_map_concurrency_and_literal_items_over_their_limits_are_a_422(
    system: Any, small: httpx.Client
) -> None:
    _refused_registration(
        small, _definition(_text(), _map([1], concurrency=9)), 422, "MAX_MAP_CONCURRENCY (8)"
    )
    with system.client() as c:  # the e2e stack runs with MAX_MAP_ITEMS=50
        _refused_registration(
            c, _definition(_text(), _map(list(range(51)))), 422, "MAX_MAP_ITEMS (50)"
        )


def test_literal_params_over_max_resolved_value_bytes_are_a_422(small: httpx.Client) -> None:
    definition = _definition(_text(template="{{ inputs.x }}" + "p" * 1100))
    _refused_registration(small, definition, 422, "MAX_RESOLVED_VALUE_BYTES (1024)")


# --- tenant JSON Schema, while /healthz keeps answering ----------------------------------


class _Healthz:
    """Polls /healthz on its own connection while a request is in flight."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.latencies: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as c:
            while not self._stop.is_set():
                started = time.perf_counter()
                if c.get("/healthz").status_code != 200:
                    self.failures += 1
                self.latencies.append(time.perf_counter() - started)

    def __enter__(self) -> _Healthz:
        """Starts polling and returns once /healthz has answered, so the poller is already
        in flight when the request under test is sent."""
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self.latencies and time.monotonic() < deadline:
            time.sleep(0.01)
        self.latencies.clear()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)


def _timed(system: Any, label: str, send: Any) -> httpx.Response:
    with _Healthz(system.url) as health:
        started = time.perf_counter()
        r: httpx.Response = send()
        elapsed = time.perf_counter() - started
    worst = max(health.latencies, default=float("nan"))
    print(
        f"\n{label}: answered {r.status_code} in {elapsed:.3f} s;"
        f" /healthz answered {len(health.latencies)} times meanwhile, slowest {worst:.3f} s"
    )
    assert health.failures == 0
    return r


def test_a_catastrophic_pattern_answers_while_healthz_is_answered(system: Any) -> None:
    schema = {"type": "object", "properties": {"x": {"type": "string", "pattern": "^(a+)+$"}}}
    with system.client() as c:
        workflow_id = f"redos-{secrets.token_hex(4)}"
        assert c.put(
            f"/v1/workflows/{workflow_id}", json=_definition(inputSchema=schema)
        ).is_success
        r = _timed(
            system,
            "^(a+)+$ on 40 characters",
            lambda: c.post(
                f"/v1/workflows/{workflow_id}/run", json={"inputs": {"x": "a" * 40 + "!"}}
            ),
        )
        assert _problem(r, 422)["errors"][0]["path"] == "/inputs/x"
        assert _runs_of(c, workflow_id) == 0


def test_a_ref_cycle_is_a_422_at_registration(system: Any) -> None:
    definition = _definition(inputSchema={"type": "object", "allOf": [{"$ref": "#"}]})
    with system.client() as c:
        workflow_id = f"cycle-{secrets.token_hex(4)}"
        r = _timed(
            system,
            '"$ref": "#" cycle',
            lambda: c.put(f"/v1/workflows/{workflow_id}", json=definition),
        )
        assert "cycle" in str(_problem(r, 422)["errors"])
        assert c.get(f"/v1/workflows/{workflow_id}").status_code == 404


def test_unique_items_over_4000_objects_answers_while_healthz_is_answered(system: Any) -> None:
    schema = {
        "type": "object",
        "properties": {"x": {"type": "string"}, "xs": {"type": "array", "uniqueItems": True}},
    }
    items = [{"i": i} for i in range(4000)]
    with system.client() as c:
        workflow_id = f"unique-{secrets.token_hex(4)}"
        assert c.put(
            f"/v1/workflows/{workflow_id}", json=_definition(inputSchema=schema)
        ).is_success
        r = _timed(
            system,
            "uniqueItems over 4,000 distinct objects",
            lambda: c.post(
                f"/v1/workflows/{workflow_id}/run",
                json={"inputs": {"x": "a", "xs": items}},
                headers={"Prefer": "respond-async"},
            ),
        )
        assert r.status_code == 202, r.text
        r = _timed(
            system,
            "uniqueItems over 4,000 objects with one repeated",
            lambda: c.post(
                f"/v1/workflows/{workflow_id}/run",
                json={"inputs": {"x": "a", "xs": [*items, {"i": 3999.0}]}},
            ),
        )
        assert _problem(r, 422)["errors"][0]["path"] == "/inputs/xs"
        assert _runs_of(c, workflow_id) == 1


def test_a_schema_doubling_with_the_inputs_stops_at_max_schema_steps(system: Any) -> None:
    branch = {"type": "array", "items": {"$ref": "#/$defs/t"}}
    schema = {
        "type": "object",
        "properties": {"x": {"$ref": "#/$defs/t"}},
        "$defs": {"t": {"anyOf": [branch, {**branch}]}},
    }
    nested: Any = 1
    for _ in range(60):
        nested = [nested]
    with system.client() as c:
        workflow_id = f"doubling-{secrets.token_hex(4)}"
        assert c.put(
            f"/v1/workflows/{workflow_id}", json=_definition(inputSchema=schema)
        ).is_success
        r = _timed(
            system,
            "anyOf doubling 60 deep (MAX_SCHEMA_STEPS)",
            lambda: c.post(f"/v1/workflows/{workflow_id}/run", json={"inputs": {"x": nested}}),
        )
        _problem(r, 422, "MAX_SCHEMA_STEPS (200000)")
        assert _runs_of(c, workflow_id) == 0
