"""The run console (`/console`) and the API reference (`/docs`) in headless Chromium against
the real stack: what a person does with them, end to end. Any console error in a page, and
any request leaving the machine, fails the test (console_browser.py)."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from console_browser import PHONE, SMALL_LAPTOP, Console, browser, console
from e2e_helpers import poll, register
from e2e_receiver import Receiver, Reply
from PIL import Image
from playwright.sync_api import FilePayload, Route, expect

from conftest import System

pytestmark = pytest.mark.e2e
__all__ = ["browser", "console"]  # the fixtures, imported for pytest

DEMO = json.loads((Path(__file__).parents[2] / "examples" / "studio-portrait.json").read_text())
RUN_TIMEOUT_MS = 60_000


def start(c: httpx.Client, workflow_id: str, inputs: dict[str, Any], **extra: Any) -> str:
    r = c.post(
        f"/v1/workflows/{workflow_id}/run",
        json={"inputs": inputs, **extra},
        headers={"Prefer": "respond-async"},
    )
    assert r.status_code == 202, r.text
    return str(r.json()["runId"])


@pytest.fixture(scope="module")
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture(scope="module")
def demo(system: System) -> str:
    """The demo workflow, registered under its own id as `make run` does."""
    with system.client() as c:
        return register(c, DEMO, "studio-portrait")


def test_the_key_is_asked_once_kept_in_the_session_and_never_put_in_a_url(
    console: Console,
) -> None:
    page = console.page
    page.goto(f"{console.base_url}/console")
    console.expect_http_error(401, "/v1/workflows")
    console.sign_in("wfk_not-a-key")
    expect(page.get_by_role("alert")).to_contain_text("refused")
    console.sign_in()
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 1
    assert page.evaluate("localStorage.length") == 0
    page.reload()
    expect(page.get_by_role("heading", name="Runs")).to_be_visible()
    assert not [u for u in console.requested if console.key in u]
    # A key refused later (revoked, say) brings the form back, saying so.
    page.evaluate("sessionStorage.setItem('workflow-console.api-key', 'wfk_revoked')")
    page.get_by_role("link", name="Workflows").click()
    expect(page.get_by_role("alert")).to_contain_text("refused")
    console.sign_in()
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
    page.get_by_role("button", name="Forget key").click()
    expect(page.locator("#api-key")).to_be_visible()
    expect(page.get_by_role("alert")).to_have_count(0)
    assert page.evaluate("sessionStorage.length") == 0


def png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 120, 40)).save(out, format="PNG")
    return out.getvalue()


def loaded_size(page: Any, selector: str) -> list[list[int]]:
    """[naturalWidth, naturalHeight] of each picture matching `selector`, once all loaded."""
    page.wait_for_function(
        "s => [...document.querySelectorAll(s)].every(i => i.complete && i.naturalWidth > 0)",
        arg=selector,
    )
    sizes: list[list[int]] = page.eval_on_selector_all(
        selector, "imgs => imgs.map(i => [i.naturalWidth, i.naturalHeight])"
    )
    return sizes


def test_the_demo_workflow_runs_from_its_form_and_its_run_shows_both_pictures(
    console: Console, demo: str
) -> None:
    page = console.page
    console.open(f"/workflows/{demo}")
    dag = page.locator("figure.dag svg")
    for node in ("inputs", "render", "warm", "square", "story", "outputs"):
        expect(dag.locator(f'[data-node-id="{node}"]')).to_be_visible()
    # inputs → render → warm → square and story → outputs
    expect(dag.locator("path.dag-edge")).to_have_count(6)
    page.get_by_label("prompt").fill("Studio portrait, warm lighting")
    page.get_by_label("quality").select_option("high")
    # A file input is uploaded (POST /v1/assets) and its s3:// reference goes in the inputs.
    upload: FilePayload = {"name": "reference.png", "mimeType": "image/png", "buffer": png(24, 16)}
    page.get_by_label("assets").set_input_files(files=[upload])
    expect(page.locator(".refs li")).to_contain_text("s3://")
    page.get_by_role("button", name=re.compile(r"^Run v\d+")).click()
    result = page.locator(".run-result")
    expect(result).to_have_attribute("data-status", "completed", timeout=RUN_TIMEOUT_MS)
    # Watched live: the steps appeared on the timeline while it ran, then the pictures.
    expect(result.locator(".gantt-row")).to_have_count(4)
    expect(result.locator("figure.output-image")).to_have_count(2)
    console.screenshot("workflow")

    result.locator("a.mono").click()
    expect(page.locator("article.run")).to_have_attribute("data-status", "completed")
    outputs = page.locator(".outputs.large figure.output-image")
    expect(outputs).to_have_count(2)
    assert loaded_size(page, ".outputs.large img") == [[512, 512], [540, 960]]
    expect(outputs.first).to_contain_text("512 \u00d7 512 px")
    expect(outputs.first.get_by_role("link", name=re.compile("Download"))).to_have_attribute(
        "href", re.compile(r"^http://127\.0\.0\.1")
    )
    # Each step's picture on its timeline row, the render first.
    expect(page.locator(".gantt-row")).to_have_count(4)
    console.screenshot("run", full_page=False)


def failing_flow(url: str) -> dict[str, Any]:
    """A picture, then a call that fails twice (a retry between), then a step never run."""
    return {
        "name": "picture then a failing call",
        "inputSchema": {"type": "object", "properties": {"prompt": {"type": "string"}}},
        "nodes": [
            {
                "id": "render",
                "type": "image.generate",
                "params": {"prompt": "{{ inputs.prompt }}", "width": 96, "height": 96},
            },
            {
                "id": "notify",
                "type": "http.request",
                "params": {
                    "url": url,
                    "method": "POST",
                    "body": {"image": "{{ nodes.render.image }}"},
                },
                "retry": {"maxAttempts": 2, "backoff": {"initialSeconds": 0.3, "maxSeconds": 1}},
            },
            {
                "id": "caption",
                "type": "text.template",
                "params": {"template": "sent: {{ nodes.notify.status }}"},
            },
        ],
        "outputs": {"picture": "{{ nodes.render.image }}", "caption": "{{ nodes.caption.text }}"},
    }


def test_a_failed_runs_error_and_failing_step_show_without_scrolling(
    console: Console, system: System, receiver: Receiver
) -> None:
    receiver.on("/down", Reply(503, {"error": "down for maintenance"}))
    with system.client() as c:
        workflow_id = register(c, failing_flow(f"{receiver.url}/down"))
        run_id = start(c, workflow_id, {"prompt": "a failing run"})
        assert poll(c, run_id)["status"] == "failed"
    page = console.page
    console.open(f"/runs/{run_id}")
    banner = page.locator(".run-error")
    expect(banner).to_contain_text("notify")
    expect(banner).to_contain_text("503")
    failing = page.locator('.gantt-row.failing[data-node-id="notify"]')
    expect(failing).to_contain_text("2 attempts")
    # Both in the first screen of a laptop, above the fold.
    height = page.viewport_size["height"] if page.viewport_size else 0
    for element in (banner, failing):
        box = element.bounding_box()
        assert box is not None
        assert box["y"] + box["height"] <= height, box
    # The failed attempt and the wait before the retry are drawn; the failing step is opened.
    expect(failing.locator("rect.attempt-failed")).to_have_count(1)
    expect(failing.locator("rect.retry-wait")).to_have_count(1)
    expect(page.locator('details.step[data-node-id="notify"]')).to_have_attribute("open", "")
    expect(page.locator('.gantt-row[data-node-id="caption"]')).to_have_attribute(
        "data-status", "canceled"
    )
    console.screenshot("run-failed", full_page=False)


def test_a_running_run_with_a_wait_node_is_cancelled_from_its_page(
    console: Console, system: System
) -> None:
    waits = {
        "name": "waits",
        "inputSchema": {"type": "object"},
        "nodes": [{"id": "nap", "type": "wait", "params": {"seconds": 300}}],
        "outputs": {"waited": "{{ nodes.nap.waited }}"},
    }
    with system.client() as c:
        run_id = start(c, register(c, waits), {})
        page = console.page
        console.open(f"/runs/{run_id}")
        run = page.locator("article.run")
        expect(run).to_have_attribute("data-status", "running", timeout=RUN_TIMEOUT_MS)
        expect(page.locator('.gantt-row[data-node-id="nap"] rect.waitnode')).to_be_visible()
        page.get_by_role("button", name="Cancel run").click()
        expect(run).to_have_attribute("data-status", "canceled")
        assert c.get(f"/v1/runs/{run_id}").json()["status"] == "canceled"


def test_a_webhook_delivery_is_redelivered_from_the_run_page(
    console: Console, system: System, receiver: Receiver
) -> None:
    echo = {
        "name": "echo",
        "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
        "nodes": [{"id": "say", "type": "text.template", "params": {"template": "{{ inputs.x }}"}}],
        "outputs": {"text": "{{ nodes.say.text }}"},
    }
    receiver.on("/hook", Reply(200))
    with system.client() as c:
        run_id = start(c, register(c, echo), {"x": "hi"}, webhook=f"{receiver.url}/hook")
        assert poll(c, run_id)["status"] == "completed"
    assert receiver.wait_for(lambda: len(hook_calls(receiver, run_id)) == 1)
    page = console.page
    console.open(f"/runs/{run_id}")
    delivery = page.locator("table.deliveries tbody tr")
    expect(delivery).to_have_count(1)
    expect(delivery).to_contain_text("run.completed")
    expect(delivery.locator("ol.attempts li")).to_have_count(1)
    page.get_by_role("button", name="Redeliver run.completed").click()
    expect(delivery.locator("ol.attempts li")).to_have_count(2)
    expect(delivery.locator("ol.attempts li").last).to_contain_text("200")
    calls = hook_calls(receiver, run_id)
    assert len(calls) == 2
    assert calls[0].headers["webhook-id"] == calls[1].headers["webhook-id"]


def hook_calls(receiver: Receiver, run_id: str) -> list[Any]:
    return [r for r in receiver.calls("/hook") if run_id.encode() in r.body]


def test_a_map_of_many_items_is_one_bar_with_progress_and_a_compact_item_grid(
    console: Console, system: System
) -> None:
    items = system.env["MAX_MAP_ITEMS"]
    fan_out = {
        "name": "fan out",
        "inputSchema": {"type": "object", "properties": {"names": {"type": "array"}}},
        "nodes": [
            {
                "id": "greet",
                "type": "map",
                "params": {
                    "items": "{{ inputs.names }}",
                    "concurrency": 8,
                    "node": {"type": "text.template", "params": {"template": "hi {{ item }}"}},
                },
            }
        ],
        "outputs": {"greetings": "{{ nodes.greet.results }}"},
    }
    with system.client() as c:
        names = [f"n{i}" for i in range(int(items))]
        run_id = start(c, register(c, fan_out), {"names": names})
        page = console.page
        console.open(f"/runs/{run_id}")
        row = page.locator('.gantt-row[data-node-id="greet"]')
        expect(row).to_contain_text(f"{items}/{items}", timeout=RUN_TIMEOUT_MS)
        expect(row.locator("rect.progress")).to_have_count(1)
    expect(page.locator(".gantt-row")).to_have_count(1)
    row.get_by_role("button").click()
    grid = page.locator('details[data-node-id="greet"] .item-grid')
    expect(grid.locator("button")).to_have_count(int(items))
    # One tab stop for the whole grid; End and Home move within it.
    expect(grid.locator('button[tabindex="0"]')).to_have_count(1)
    grid.locator('button[tabindex="0"]').focus()
    page.keyboard.press("End")
    expect(grid.locator("button").last).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(".item-detail")).to_contain_text(f"Item {int(items) - 1}")
    expect(page.locator(".item-detail")).to_contain_text(f"hi n{int(items) - 1}")

    # The stack refuses more than MAX_MAP_ITEMS (50 here): the same run, answered with 200
    # items, must stay as usable (one bar, one grid, one tab stop).
    def widened(route: Route) -> None:
        run = route.fetch().json()
        for step in run["steps"]:
            if step.get("items"):
                step["items"] = [
                    {**step["items"][i % len(step["items"])], "index": i} for i in range(200)
                ]
                step["itemsTotal"] = step["itemsDone"] = 200
        route.fulfill(json=run)

    page.route(re.compile(rf"/v1/runs/{run_id}\?detail=full$"), widened)
    page.reload()
    expect(row).to_contain_text("200/200")
    row.get_by_role("button").click()
    expect(grid.locator("button")).to_have_count(200)
    grid.locator('button[tabindex="0"]').focus()
    page.keyboard.press("End")
    expect(grid.locator("button").last).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator(".item-detail")).to_contain_text("Item 199")


def test_the_api_reference_renders_without_internet(console: Console) -> None:
    page = console.page
    page.goto(f"{console.base_url}/docs")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Workflow API")
    expect(page.locator("#operations-runs-get_run_v1_runs__run_id__get")).to_be_visible()
    console.screenshot("docs", full_page=False)
    assert all(
        u.startswith(console.base_url) for u in console.requested if not u.startswith("data:")
    )


@pytest.fixture(scope="module")
def demo_run(system: System, demo: str) -> str:
    """A completed run of the demo workflow, started over the API."""
    with system.client() as c:
        run_id = start(c, demo, {"prompt": "Rerun me", "options": {"quality": "draft"}})
        assert poll(c, run_id)["status"] == "completed"
    return run_id


def rerun_from_page(
    console: Console,
    run_id: str,
    from_node: str | None,
    inputs: dict[str, Any] | None = None,
) -> str:
    """Rerun `run_id` from its page (from `from_node`, else every step; with `inputs`, else
    its own); the new run's id, once its page shows it completed."""
    page = console.page
    console.open(f"/runs/{run_id}")
    page.get_by_role("button", name="Rerun…").click()
    dialog = page.get_by_role("dialog")
    if from_node:
        dialog.get_by_label("Start from").select_option(from_node)
    box = dialog.get_by_label("Inputs (JSON)")
    # The dialog starts from the run's own inputs, ready to edit.
    expect(box).to_have_value(re.compile(r'"prompt"'))
    if inputs is not None:
        box.fill(json.dumps(inputs))
    dialog.get_by_role("button", name=re.compile("^Rerun")).click()
    run = page.locator("article.run")
    expect(run).not_to_have_attribute("data-run-id", run_id)
    expect(run).to_have_attribute("data-status", "completed", timeout=RUN_TIMEOUT_MS)
    new_id = str(run.get_attribute("data-run-id"))
    assert new_id != run_id
    assert page.url.endswith(f"#/runs/{new_id}")
    expect(page.locator(".run-head")).to_contain_text(f"rerun of {run_id}")
    return new_id


def test_a_rerun_is_a_new_run_with_the_same_inputs(
    console: Console, system: System, demo_run: str
) -> None:
    new_id = rerun_from_page(console, demo_run, None)
    with system.client() as c:
        rerun = c.get(f"/v1/runs/{new_id}").json()
    assert rerun["rerunOf"] == {"runId": demo_run, "fromNode": None}
    assert not any(s.get("reusedFrom") for s in rerun["steps"])
    assert loaded_size(console.page, ".outputs.large img") == [[512, 512], [540, 960]]


def test_a_rerun_with_edited_inputs_runs_on_them(
    console: Console, system: System, demo_run: str
) -> None:
    edited = {"prompt": "Edited before the rerun", "options": {"quality": "high"}}
    new_id = rerun_from_page(console, demo_run, None, edited)
    with system.client() as c:
        rerun = c.get(f"/v1/runs/{new_id}", params={"detail": "full"}).json()
    render = next(s for s in rerun["steps"] if s["nodeId"] == "render")
    assert render["params"]["prompt"] == "Edited before the rerun"
    console.page.locator('.gantt-row[data-node-id="render"] button').click()
    expect(console.page.get_by_label("Params of render")).to_contain_text("Edited before the rerun")


def test_a_rerun_from_the_second_step_reuses_the_first_steps_output(
    console: Console, system: System, demo_run: str
) -> None:
    new_id = rerun_from_page(console, demo_run, "warm")
    page = console.page
    expect(page.locator(".run-head")).to_contain_text("from step warm")
    render = page.locator('.gantt-row[data-node-id="render"]')
    expect(render.get_by_role("link", name="reused")).to_have_attribute(
        "href", f"#/runs/{demo_run}"
    )
    expect(render.locator("rect.reused")).to_have_count(1)
    with system.client() as c:
        steps = {s["nodeId"]: s for s in c.get(f"/v1/runs/{new_id}").json()["steps"]}
    # render was not executed again: never dispatched, its output the first run's.
    assert steps["render"]["reusedFrom"] == demo_run
    assert steps["render"]["dispatchedAt"] is None
    assert all(steps[n]["reusedFrom"] is None for n in ("warm", "square", "story"))
    console.screenshot("run-rerun-from-step", full_page=False)


CONTRAST = """() => {
  // WCAG 2 contrast of every visible text against the background it is drawn on.
  const rgb = (c) => (c.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => {
    const f = (v) => ((v /= 255) <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4);
    return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b);
  };
  const background = (el) => {
    for (; el; el = el.parentElement) {
      const c = rgb(getComputedStyle(el).backgroundColor);
      if (c.length === 3 || c[3] > 0) return c;
    }
    return [255, 255, 255];
  };
  const low = [];
  for (const el of document.querySelectorAll("body *")) {
    const own = [...el.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
    if (!own || !el.checkVisibility() || el.closest(":disabled, svg, .sr-only")) continue;
    const a = lum(rgb(getComputedStyle(el).color));
    const b = lum(background(el));
    const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
    const text = el.textContent.trim().slice(0, 30);
    if (ratio < 4.5) low.push(`${el.tagName}.${el.className} ${ratio.toFixed(2)}: ${text}`);
  }
  return low;
}"""


def test_the_runs_page_lists_runs_live_filters_and_pages_them(
    console: Console, system: System
) -> None:
    echo = {
        "name": "echo",
        "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
        "nodes": [{"id": "say", "type": "text.template", "params": {"template": "{{ inputs.x }}"}}],
        "outputs": {"text": "{{ nodes.say.text }}"},
    }
    page = console.page
    with system.client() as c:
        workflow_id = register(c, echo)
        console.open(f"/runs?workflowId={workflow_id}&limit=2")
        expect(page.get_by_text("No runs match")).to_be_visible()
        runs = [start(c, workflow_id, {"x": str(i)}) for i in range(3)]
        # The open page shows them without a reload, newest first, two a page.
        rows = page.locator("table.runs tbody tr")
        expect(rows).to_have_count(2)
        expect(rows.first).to_have_attribute("data-run-id", runs[2])
        for run_id in runs:
            poll(c, run_id)
    expect(rows.locator(".badge", has_text="completed")).to_have_count(2)
    page.get_by_role("link", name="Older →").click()
    expect(rows).to_have_count(1)
    expect(rows.first).to_have_attribute("data-run-id", runs[0])
    page.get_by_role("link", name="← Newer").click()
    expect(rows).to_have_count(2)

    filters = page.get_by_role("form", name="Filter runs")

    def apply(shown: str) -> None:
        """Apply the filters, until the address says `shown`. The edits that follow must stay:
        the form once copied the applied filters back after paint, over the next edit."""
        filters.get_by_role("button", name="Apply").click()
        expect(page).to_have_url(re.compile(re.escape(shown)))

    filters.get_by_label("Status").select_option("failed")
    apply("status=failed")
    expect(page.get_by_text("No runs match")).to_be_visible()
    filters.get_by_label("Status").select_option("")
    filters.get_by_label("Created before").fill("2001-01-01T00:00")
    apply("createdBefore=2001")
    expect(page.get_by_text("No runs match")).to_be_visible()
    filters.get_by_label("Created before").fill("")
    filters.get_by_label("Created after").fill("2001-01-01T00:00")
    apply("createdAfter=2001")
    expect(page).not_to_have_url(re.compile("createdBefore"))
    expect(rows).to_have_count(2)


def test_every_page_is_readable_and_fits_a_laptop_and_a_phone(
    console: Console, demo: str, demo_run: str
) -> None:
    """Runs (all of this tenant's, newest first), a run, a workflow: contrast of at least
    4.5:1 everywhere, nothing wider than the screen, keyboard users skip to the content."""
    page = console.page
    console.open("/runs")
    expect(page.locator("table.runs tbody tr").first).to_be_visible()
    page.wait_for_function(
        "() => [...document.querySelectorAll('table.runs img')].every(i => i.complete)"
    )
    console.screenshot("runs", full_page=False)
    for size in (SMALL_LAPTOP, PHONE):
        page.set_viewport_size(size)
        for route in ("/runs", f"/workflows/{demo}", f"/runs/{demo_run}"):
            console.open(route)
            expect(page.locator("main h1").first).to_be_visible()
            assert page.evaluate(CONTRAST) == [], route
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - document.documentElement.clientWidth"
            )
            assert overflow <= 0, (route, size)
    loaded_size(page, ".gantt-thumb img")
    console.screenshot("run-phone", full_page=False)
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main#main")).to_be_focused()


def test_a_slow_network_shows_loading_states(console: Console, demo_run: str) -> None:
    page = console.page
    console.open("/workflows")
    expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
    # A slow mobile connection: 1.5 s for every answer.
    cdp = page.context.new_cdp_session(page)
    cdp.send(
        "Network.emulateNetworkConditions",
        {
            "offline": False,
            "latency": 1500,
            "downloadThroughput": 50_000,
            "uploadThroughput": 20_000,
        },
    )
    page.get_by_role("link", name="Runs", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Loading runs…")
    expect(page.locator("table.runs tbody tr").first).to_be_visible(timeout=RUN_TIMEOUT_MS)
    page.evaluate("id => { location.hash = `#/runs/${id}`; }", demo_run)
    expect(page.get_by_role("status")).to_have_text("Loading the run…")
    expect(page.locator("article.run")).to_have_attribute(
        "data-status", "completed", timeout=RUN_TIMEOUT_MS
    )


def test_a_child_run_is_linked_from_its_parents_timeline_and_marked_in_the_graph(
    console: Console, system: System
) -> None:
    echo = {
        "name": "echo",
        "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
        "nodes": [{"id": "say", "type": "text.template", "params": {"template": "{{ inputs.x }}"}}],
        "outputs": {"text": "{{ nodes.say.text }}"},
    }
    with system.client() as c:
        child_workflow = register(c, echo)
        parent = {
            "name": "calls echo",
            "inputSchema": {"type": "object", "properties": {"x": {"type": "string"}}},
            "nodes": [
                {
                    "id": "delegate",
                    "type": "workflow.run",
                    "params": {"workflowId": child_workflow, "inputs": {"x": "{{ inputs.x }}"}},
                }
            ],
            "outputs": {"text": "{{ nodes.delegate.text }}"},
        }
        parent_workflow = register(c, parent)
        run_id = start(c, parent_workflow, {"x": "hello"})
        run = poll(c, run_id)
    assert run["status"] == "completed"
    child_id = run["steps"][0]["childRunId"]
    page = console.page
    console.open(f"/workflows/{parent_workflow}")
    expect(page.locator('.dag-node.chain[data-node-id="delegate"]')).to_contain_text(child_workflow)
    console.open(f"/runs/{run_id}")
    page.locator('.gantt-row[data-node-id="delegate"]').get_by_role(
        "link", name=re.compile("^child")
    ).click()
    expect(page.locator("article.run")).to_have_attribute("data-run-id", child_id)
    expect(page.locator(".run-head")).to_contain_text(f"child of {run_id}")


def test_the_event_stream_parser_handles_lines_split_across_chunks(console: Console) -> None:
    """sse-starlette ends lines with CRLF, and a network chunk may end between CR and LF,
    or inside a field: the events must come out whole, once each, comments dropped (the last
    event id carries over, as the standard says)."""
    page = console.page
    page.goto(f"{console.base_url}/console/")
    chunks = [
        "event: run\r",
        '\ndata: {"a"',
        ":1}\r\nid: r:1\r\n\r",
        "\n: ping\r\n\r\nevent: step.started\ndata: x\ndata: y\n\n",
    ]
    events = page.evaluate(
        """async (chunks) => {
          const { sseParser } = await import("./js/sse.js");
          const seen = [];
          const parser = sseParser((e) => seen.push(e));
          chunks.forEach((c) => parser.push(c));
          parser.end();
          return seen;
        }""",
        chunks,
    )
    assert events == [
        {"event": "run", "data": '{"a":1}', "id": "r:1"},
        {"event": "step.started", "data": "x\ny", "id": "r:1"},
    ]
