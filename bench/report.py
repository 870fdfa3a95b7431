"""docs/performance.md (and the console summary) from one run of the bench."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from common import Summary, fmt
from history import LoadReport
from workloads import BurstResult, SyncResult

KAFKA_HOPS = 4  # run.requested, step.requested, step.finished, run.events
FLOOR_RATIO_TARGET = 4.0
C16_RUNS_TARGET = 100.0
C16_P99_TARGET_MS = 1000.0
W2_RUNS_TARGET = 100.0
HISTORY_TOLERANCE = 0.20


@dataclass
class StateResult:
    """Every measurement on one state of the database."""

    name: str
    floor: Summary
    sync: list[SyncResult] = field(default_factory=list)
    burst: BurstResult | None = None
    errors: list[str] = field(default_factory=list)
    """Measurements that could not be made at all (an exception), one line each."""

    def level(self, clients: int) -> SyncResult | None:
        return next((r for r in self.sync if r.clients == clients), None)

    @property
    def hops_p50(self) -> float:
        return self.floor.p50 * KAFKA_HOPS

    @property
    def failures(self) -> int:
        return (
            sum(len(r.failures) for r in self.sync)
            + (self.burst.failure_count if self.burst else 0)
            + len(self.errors)
        )


@dataclass
class Context:
    date: str
    machine: str
    servers: list[tuple[str, str]]
    settings: dict[str, dict[str, str]]
    partitions: str
    args: str
    history: LoadReport | None
    history_note: str
    duration_s: float


# -- figures -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One number the bench reports for each database state."""

    name: str
    get: Callable[[StateResult], float | None]
    higher_is_better: bool


def _sync(clients: int, attr: str) -> Callable[[StateResult], float | None]:
    def get(state: StateResult) -> float | None:
        r = state.level(clients)
        if r is None:
            return None
        if attr == "runs_per_s":
            return r.runs_per_s
        return float(getattr(r.summary, attr))

    return get


def _burst(attr: str) -> Callable[[StateResult], float | None]:
    def get(state: StateResult) -> float | None:
        if state.burst is None:
            return None
        if attr == "runs_per_s":
            return state.burst.runs_per_s
        return float(getattr(state.burst.summary, attr))

    return get


def figures(levels: list[int]) -> list[Figure]:
    out: list[Figure] = []
    for c in levels:
        out += [
            Figure(f"W1 c={c} p50 ms", _sync(c, "p50"), False),
            Figure(f"W1 c={c} p99 ms", _sync(c, "p99"), False),
            Figure(f"W1 c={c} runs/s", _sync(c, "runs_per_s"), True),
        ]
    out += [
        Figure("W2 runs/s", _burst("runs_per_s"), True),
        Figure("W2 p50 ms (submit → completed)", _burst("p50"), False),
        Figure("W2 p99 ms (submit → completed)", _burst("p99"), False),
    ]
    return out


def _ok(value: bool | None) -> str:
    return "-" if value is None else ("met" if value else "**not met**")


def _finite(x: float | None) -> bool:
    return x is not None and not math.isnan(x)


def _within(empty: float | None, hist: float | None, higher_is_better: bool) -> bool | None:
    if not (_finite(empty) and _finite(hist)) or not empty:
        return None
    ratio = float(hist or 0) / float(empty)
    return ratio >= 1 - HISTORY_TOLERANCE if higher_is_better else ratio <= 1 + HISTORY_TOLERANCE


# -- tables ------------------------------------------------------------------------------------


def measurements_table(state: StateResult) -> list[str]:
    lines = [
        "| measurement | requests | failures | p50 ms | p99 ms | mean ms | max ms | runs/s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        f"| Kafka round trip (floor) | {state.floor.n} | 0 | {fmt(state.floor.p50)} | "
        f"{fmt(state.floor.p99)} | {fmt(state.floor.mean)} | {fmt(state.floor.max)} | |",
        f"| floor x {KAFKA_HOPS} hops | | | {fmt(state.hops_p50)} | "
        f"{fmt(state.floor.p99 * KAFKA_HOPS)} | | | |",
    ]
    for r in state.sync:
        s = r.summary
        note = f" (cut at the time budget: {r.requests} of {r.planned})" if r.cut_short else ""
        lines.append(
            f"| W1 sync, {r.clients} client{'s' if r.clients > 1 else ''}{note} | {r.requests} | "
            f"{len(r.failures)} | {fmt(s.p50)} | {fmt(s.p99)} | {fmt(s.mean)} | {fmt(s.max)} | "
            f"{fmt(r.runs_per_s)} |"
        )
    b = state.burst
    if b is not None:
        s = b.summary
        sub = Summary.of(b.submit_ms)
        lines += [
            f"| W2 burst: submit (`respond-async`, {b.submitters} clients) | "
            f"{len(b.submit_ms) + len(b.submit_failures)} | {len(b.submit_failures)} | "
            f"{fmt(sub.p50)} | {fmt(sub.p99)} | {fmt(sub.mean)} | {fmt(sub.max)} | "
            f"{fmt(len(b.submit_ms) / b.submit_wall_s if b.submit_wall_s else float('nan'))} |",
            f"| W2 burst: submit → completed | {b.planned} | {b.failure_count} | {fmt(s.p50)} | "
            f"{fmt(s.p99)} | {fmt(s.mean)} | {fmt(s.max)} | **{fmt(b.runs_per_s)}** |",
        ]
    return lines


def burst_note(b: BurstResult) -> str:
    parts = [
        f"W2: {b.completed} of {b.planned} runs completed {b.wall_s:.1f} s after the first "
        f"submission (all submitted within {b.submit_wall_s:.1f} s)",
    ]
    if b.failed:
        parts.append(f"{b.failed} ended failed/canceled")
    if len(b.submit_failures):
        parts.append(f"{len(b.submit_failures)} submissions refused")
    if b.incomplete:
        parts.append(
            "not finished when the bench stopped waiting (their status read just after): "
            + ", ".join(f"{n} {s}" for s, n in sorted(b.incomplete.items()))
        )
    if b.via_poll:
        parts.append(f"{b.via_poll} ends learned by polling (not from `{b.topic}`)")
    return "; ".join(parts) + "."


def phases_table(states: list[StateResult], levels: tuple[int, ...] = (1, 16)) -> list[str]:
    cols = [(f"{s.name} c={c}", r) for s in states for c in levels if (r := s.level(c)) is not None]
    if not cols or not any(r.phases.samples for _, r in cols):
        return ["(no phase data: the run resource's timestamps were missing)"]
    names: list[str] = []
    for _, r in cols:
        names += [n for n in r.phases.samples if n not in names]
    lines = [
        "| phase | " + " | ".join(c for c, _ in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for name in names:
        cells = [
            fmt(statistics.median(r.phases.samples[name])) if r.phases.samples.get(name) else "-"
            for _, r in cols
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def handlers_table(states: list[StateResult]) -> list[str] | None:
    cols = [(s.name, r) for s in states if (r := s.level(1)) is not None and r.handlers]
    if not cols:
        return None
    services = [n for _, r in cols for n in r.handlers]
    services = list(dict.fromkeys(services))
    lines = [
        "| service | " + " | ".join(f"{n} (ms per run)" for n, _ in cols) + " |",
        "|---|" + "---:|" * len(cols),
    ]
    for svc in services:
        lines.append(f"| {svc} | " + " | ".join(fmt(r.handlers.get(svc)) for _, r in cols) + " |")
    return lines


def ratios_table(states: list[StateResult], levels: list[int]) -> list[str]:
    empty = states[0]
    hist = states[1] if len(states) > 1 else None
    head = f"| figure | {empty.name} |"
    rule = "|---|---:|"
    if hist is not None:
        head += f" {hist.name} | {hist.name} / {empty.name} | within 20 % |"
        rule += "---:|---:|---|"
    lines = [head, rule]
    rows: list[tuple[str, float | None, float | None, bool | None, bool]] = []
    for s_fig in figures(levels):
        e, h = s_fig.get(empty), s_fig.get(hist) if hist else None
        rows.append((s_fig.name, e, h, _within(e, h, s_fig.higher_is_better), True))

    def floor_ratio(s: StateResult | None) -> float | None:
        r = s.level(1) if s else None
        return r.summary.p50 / s.hops_p50 if r and s and s.hops_p50 else None

    rows.insert(
        0,
        (
            f"W1 c=1 p50 / (floor p50 x {KAFKA_HOPS})",
            floor_ratio(empty),
            floor_ratio(hist),
            _within(floor_ratio(empty), floor_ratio(hist), False),
            True,
        ),
    )
    rows.append(
        (
            "Kafka floor p50 ms (noise reference)",
            empty.floor.p50,
            hist.floor.p50 if hist else None,
            None,
            False,
        )
    )
    for name, e, h, ok, counted in rows:
        digits = 2 if name.startswith("W1 c=1 p50 /") else 1
        line = f"| {name} | {fmt(e, digits)} |"
        if hist is not None:
            ratio = h / e if h is not None and e and _finite(e) and _finite(h) else None
            verdict = _ok(ok) if counted else "(not a target)"
            line += f" {fmt(h, digits)} | {fmt(ratio, 2)} | {verdict} |"
        lines.append(line)
    return lines


def targets(
    states: list[StateResult], levels: list[int], history_runs: int = 100_000
) -> list[tuple[str, str, str]]:
    """(target, value per state, verdict)."""
    out: list[tuple[str, str, str]] = []

    def per_state(get: Callable[[StateResult], float | None], digits: int = 1) -> str:
        return " / ".join(f"{fmt(get(s), digits)}" for s in states)

    def all_of(test: Callable[[StateResult], bool | None]) -> str:
        results = [test(s) for s in states]
        if any(r is None for r in results):
            return "-"
        return _ok(all(bool(r) for r in results))

    def c1_ratio(s: StateResult) -> float | None:
        r = s.level(1)
        return r.summary.p50 / s.hops_p50 if r and s.hops_p50 else None

    def check(
        get: Callable[[StateResult], float | None], ok: Callable[[float], bool]
    ) -> Callable[[StateResult], bool | None]:
        def test(s: StateResult) -> bool | None:
            v = get(s)
            return ok(v) if _finite(v) and v is not None else None

        return test

    c16_runs = _sync(16, "runs_per_s")
    c16_p99 = _sync(16, "p99")
    w2 = _burst("runs_per_s")
    out.append(
        (
            f"W1 c=1 p50 ≤ {FLOOR_RATIO_TARGET:g} x (floor p50 x {KAFKA_HOPS})",
            per_state(c1_ratio, 2) + " x",
            all_of(check(c1_ratio, lambda v: v <= FLOOR_RATIO_TARGET)),
        )
    )
    out.append(
        (
            f"W1 c=16 ≥ {C16_RUNS_TARGET:g} runs/s",
            per_state(c16_runs) + " runs/s",
            all_of(check(c16_runs, lambda v: v >= C16_RUNS_TARGET)),
        )
    )
    out.append(
        (
            f"W1 c=16 p99 ≤ {C16_P99_TARGET_MS / 1000:g} s",
            per_state(c16_p99, 0) + " ms",
            all_of(check(c16_p99, lambda v: v <= C16_P99_TARGET_MS)),
        )
    )
    out.append(
        (
            f"W2 ≥ {W2_RUNS_TARGET:g} runs/s",
            per_state(w2) + " runs/s",
            all_of(check(w2, lambda v: v >= W2_RUNS_TARGET)),
        )
    )
    if len(states) > 1:
        verdicts = [
            _within(f.get(states[0]), f.get(states[1]), f.higher_is_better) for f in figures(levels)
        ]
        known = [v for v in verdicts if v is not None]
        out.append(
            (
                f"with {history_runs:,} runs of history, every figure within 20 % of the "
                "empty database's",
                f"{sum(known)} of {len(known)} figures within",
                _ok(all(known)) if known else "-",
            )
        )
    out.append(
        (
            "no failed or unfinished runs",
            " / ".join(str(s.failures) for s in states) + " failures",
            _ok(all(s.failures == 0 for s in states)),
        )
    )
    return out


# -- the page ----------------------------------------------------------------------------------


def render(ctx: Context, states: list[StateResult], levels: list[int]) -> str:
    state_names = " / ".join(s.name for s in states)
    lines = [
        "# Performance",
        "",
        "What `make bench` (`bench/run.py`) measures, in one run, on the embedded stack:",
        "",
        "- **the Kafka floor**: one aiokafka round trip on the same broker (produce with",
        "  `acks=all`, idempotent, `linger_ms=0`, then consume), times the "
        f"{KAFKA_HOPS} Kafka hops a run",
        "  makes (`run.requested` ingress→orchestrator, `step.requested` orchestrator→executor,",
        "  `step.finished` executor→orchestrator, `run.events` orchestrator→ingress);",
        "- **W1**: synchronous runs of the smallest workflow (one `text.template` node),",
        "  `POST /v1/workflows/{id}/run` with `Prefer: wait=60`, each client on one persistent",
        f"  HTTP connection sending one request at a time, at {', '.join(map(str, levels))} "
        "clients;",
        "  latency is the client's wall time until the `200` with the completed run;",
        "- **W2**: a burst of runs submitted with `Prefer: respond-async` as fast as the",
        "  submitting clients go; runs/s = completed runs / (first submission → last",
        "  completion). Completions are read from the public `workflow.run.events.v1` topic",
        "  (a consumer of no group, from the end offsets taken before the burst);",
        "- each of these on an **empty** database, then again after loading a **history** of",
        "  finished runs of other workflows straight into it.",
        "",
        "## Latest run",
        "",
        f"- date: {ctx.date} (the whole bench took {ctx.duration_s / 60:.1f} min)",
        f"- machine: {ctx.machine}",
        "- servers: " + ", ".join(f"{n} = {v}" for n, v in ctx.servers),
        f"- Kafka: {ctx.partitions}",
        "- services: one process each, on the same machine as the client and the servers;",
        "  settings as the bench's services read them:",
    ]
    for svc, values in ctx.settings.items():
        text = ", ".join(f"`{k}={v}`" for k, v in values.items()) or "(defaults)"
        lines.append(f"  - {svc}: {text}")
    lines += [f"- bench: `{ctx.args}`"]
    if ctx.history is not None:
        lines += [f"- history: {ctx.history.describe()}"]
    if ctx.history_note:
        lines += [f"- history note: {ctx.history_note}"]
    lines += [""]

    lines += ["## Targets (issue 8)", "", f"| target | {state_names} | verdict |", "|---|---|---|"]
    history_runs = ctx.history.runs if ctx.history else 0
    lines += [f"| {t} | {v} | {ok} |" for t, v, ok in targets(states, levels, history_runs)]
    lines += [""]

    for state in states:
        lines += [f"## {state.name.capitalize()} database", ""]
        lines += measurements_table(state)
        if state.burst is not None:
            lines += ["", burst_note(state.burst)]
        failures = [f for r in state.sync for f in r.failures[:3]]
        if state.burst is not None:
            failures += state.burst.submit_failures[:3] + state.burst.failures[:3]
        if failures:
            lines += ["", "First failures:", ""] + [f"- `{f[:200]}`" for f in failures[:8]]
        if state.errors:
            lines += ["", "Not measured:", ""] + [f"- `{e[:300]}`" for e in state.errors]
        lines += [""]

    lines += ["## Ratios", ""]
    lines += ratios_table(states, levels)
    lines += [
        "",
        '"Within 20 %": a latency at most 1.2 x the empty database\'s, a rate at least',
        "0.8 x (better is always within). The floor ratio is the one figure comparable across",
        "machines; the Kafka floor itself only shows how noisy the machine was.",
        "",
        "## Where the time goes (medians, ms, from the run resource's timestamps)",
        "",
        "Consecutive phases of each W1 run, cut by the client's clock and the run resource's",
        "timestamps (different processes, same host clock, millisecond precision in MongoDB):",
        "`createdAt` (ingress stored the run), `startedAt` (the orchestrator handled",
        "`run.requested`), `steps[0].startedAt` (the executor began the step), `completedAt`",
        "(the orchestrator handled `step.finished`). Each Kafka hop includes the publishing",
        "side's MongoDB write (outbox) before it publishes.",
        "",
    ]
    lines += phases_table(states)
    handlers = handlers_table(states)
    lines += [""]
    if handlers is not None:
        lines += [
            "Handler time per run at 1 client (sum of FastStream `Received` → `Processed` in",
            "each service's log over the measured runs, divided by their number; ingress's is",
            "its Kafka consumer only, not its HTTP handling):",
            "",
            *handlers,
            "",
        ]
    else:
        lines += [
            "(No handler times: FastStream's `Received`/`Processed` line per message is logged",
            "at DEBUG since it cost more than many handlers; run the services with",
            "`LOG_LEVEL=DEBUG` to see them, at a cost in throughput.)",
            "",
        ]
    lines += [
        "## How to reproduce",
        "",
        "```",
        "make bench                      # = uv run python bench/run.py (writes this page)",
        "uv run python bench/run.py --quick --out /tmp/perf.md   # a smoke check, minutes",
        "uv run python bench/run.py --help                      # every size and budget",
        "```",
        "",
        "It brings the local stack up if needed, stops detached services (`make up`), starts its",
        "own four services on port 38200 (logs in `.stack/logs/bench/`) on a fresh database",
        "`bench_<hex>`, and at the end stops them and drops that database. The history is",
        "cloned from one of the bench's own finished runs (every document of the database that",
        "mentions it, except pending work such as timers), with new time-ordered run ids,",
        "times, workflows and tenants, and its input padded so a run document has the target",
        "size; timestamps inside the serialized run state keep the template's values.",
        "A W1 level stops starting requests after `--level-seconds`, and W2 stops waiting",
        "after `--w2-timeout`; a level cut short says so in its row.",
        "",
        "Absolute numbers are noisy on a shared machine (client, servers, Kafka, FerretDB and",
        "SeaweedFS all share the same cores); the same-run ratio against the Kafka floor is",
        "what compares across runs and machines. This page holds the latest figures only;",
        "[performance-notes.md](performance-notes.md) keeps what we learned.",
        "",
    ]
    return "\n".join(lines)


def console(states: list[StateResult], levels: list[int], history_runs: int = 0) -> str:
    lines: list[str] = []
    for state in states:
        lines += ["", f"== {state.name} database", *measurements_table(state)]
        if state.burst is not None:
            lines.append(burst_note(state.burst))
        lines += [f"NOT MEASURED: {e}" for e in state.errors]
    lines += ["", "== ratios", *ratios_table(states, levels), "", "== targets"]
    lines += [f"  {ok:<14} {t}: {v}" for t, v, ok in targets(states, levels, history_runs)]
    lines += ["", "== phases", *phases_table(states)]
    handlers = handlers_table(states)
    if handlers:
        lines += ["", "== handler ms per run (1 client)", *handlers]
    return "\n".join(lines)
