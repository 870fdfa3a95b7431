"""A history of finished runs of other workflows, loaded straight into the bench's database.

The storage's document shapes are being redesigned, so nothing here knows them. A real run of
the bench's workflow, made with a marker string as its input, is the template: every document
of the bench database that mentions its run id (the run itself, its revisions, whatever the
storage keeps per run) is cloned, with the run id, workflow, tenant and times replaced and the
marker replaced by text long enough that a run document reaches the target size. Collections
that hold pending work (timers, schedules, claims, outboxes, leases, queues, locks) are never
cloned: a finished run has nothing pending, and clones there would be work for the services.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import bson
from common import log
from pymongo import MongoClient
from pymongo.database import Database

Document = dict[str, Any]
PENDING_WORK = ("timer", "schedule", "claim", "outbox", "lease", "queue", "lock", "idempot")
OTHER_TENANT = "bench-other"
RUNS = "runs"
PROMPT_TEXT = (
    "studio portrait warm light soft shadow product shot white background linen texture "
    "golden hour street scene wide angle close up macro lens bokeh film grain pastel colour "
    "palette moody cinematic contrast overhead flat lay ceramic mug morning coffee steam "
    "mountain lake reflection aerial view forest path autumn leaves minimal poster typography "
    "bold headline vintage style watercolor illustration isometric city night neon rain "
    "reflections fashion editorial model pose denim jacket sneakers catalogue packshot "
    "high resolution sharp focus natural skin tones rim light backdrop seamless paper"
)
WORDS = tuple(PROMPT_TEXT.split())


def workflow_of(i: int, workflows: int) -> str:
    return f"history-wf-{i % workflows:02d}"


def tenant_of(i: int, bench_tenant: str) -> str:
    """Half the history is the bench tenant's, half another tenant's."""
    return bench_tenant if i % 2 == 0 else OTHER_TENANT


def owners(count: int, workflows: int, bench_tenant: str) -> set[tuple[str, str]]:
    """(tenant, workflow) of every history run: the workflows to register first, so the
    history's runs can be read (a run is rendered with its workflow's definition)."""
    return {
        (tenant_of(i, bench_tenant), workflow_of(i, workflows))
        for i in range(min(count, 2 * workflows))
    }


def new_run_id(created: datetime) -> str:
    """A run id that sorts at `created`, made the way ingress makes them."""
    ms = int(created.timestamp() * 1000)
    try:
        from storage.ids import time_ordered_id

        return time_ordered_id("run", now_ms=ms)
    except (ImportError, TypeError):  # pragma: no cover - the storage is being redesigned
        return f"run_{ms:012x}{secrets.token_hex(8)}"


@dataclass
class Template:
    run_id: str
    marker: str
    tenant: str
    workflow_id: str
    created_at: datetime
    docs: dict[str, list[Document]]
    """Collection → the documents that mention the template run (the run's under `runs`)."""
    skipped: dict[str, int] = field(default_factory=dict)
    """Pending-work collections that mention the run, not cloned."""
    marker_count: int = 0
    run_doc_bytes: int = 0


def find_template(
    client: MongoClient[Document], database: str, run_id: str, marker: str, tenant: str, wf: str
) -> Template:
    db = client[database]
    needle = run_id.encode()
    docs: dict[str, list[Document]] = {}
    skipped: dict[str, int] = {}
    for name in sorted(db.list_collection_names()):
        if name.startswith("system."):
            continue
        found = [d for d in db[name].find({}) if needle in bson.encode(d)]
        if not found:
            continue
        if any(word in name.lower() for word in PENDING_WORK):
            skipped[name] = len(found)
        else:
            docs[name] = found
    runs = [d for d in docs.get(RUNS, []) if d.get("_id") == run_id]
    if not runs:
        raise RuntimeError(f"no document {run_id!r} in {database}.{RUNS}; cannot build history")
    run = runs[0]
    created = run.get("createdAt")
    if not isinstance(created, datetime):
        created = datetime.now(UTC)
    encoded = bson.encode(run)
    return Template(
        run_id=run_id,
        marker=marker,
        tenant=tenant,
        workflow_id=wf,
        created_at=created.replace(tzinfo=UTC) if created.tzinfo is None else created,
        docs=docs,
        skipped=skipped,
        marker_count=encoded.count(marker.encode()),
        run_doc_bytes=len(encoded),
    )


def _paddings(length: int, count: int, rng: random.Random) -> list[str]:
    """`count` different texts of `length` characters, words like a prompt's (compressible
    about as much as real text, and never escaped in JSON)."""
    out = []
    for _ in range(count):
        words: list[str] = []
        size = 0
        while size < length:
            word = rng.choice(WORDS)
            words.append(word)
            size += len(word) + 1
        out.append(" ".join(words)[:length])
    return out


def _rewrite(value: Any, swap: Callable[[str], str], shift: timedelta) -> Any:
    if isinstance(value, str):
        return swap(value)
    if isinstance(value, datetime):
        return value + shift
    if isinstance(value, dict):
        return {k: _rewrite(v, swap, shift) for k, v in value.items()}
    if isinstance(value, list):
        return [_rewrite(v, swap, shift) for v in value]
    return value


@dataclass
class LoadReport:
    runs: int
    docs: dict[str, int]
    bytes: dict[str, int]
    seconds: float
    workflows: int
    tenants: dict[str, int]
    run_doc_bytes_min: int
    run_doc_bytes_max: int
    template_run_doc_bytes: int
    skipped: dict[str, int]
    days: int
    writers: int

    @property
    def run_doc_bytes_avg(self) -> float:
        return self.bytes.get(RUNS, 0) / max(1, self.docs.get(RUNS, 0))

    def describe(self) -> str:
        parts = [
            f"{self.docs.get(name, 0):,} `{name}` documents "
            f"(avg {self.bytes[name] / max(1, self.docs[name]) / 1024:.1f} KB)"
            for name in self.docs
        ]
        tenants = ", ".join(f"{n:,} of tenant `{t}`" for t, n in self.tenants.items())
        text = (
            f"{self.runs:,} finished (completed) runs of {self.workflows} other workflows "
            f"(registered through the API first; {tenants}), created over the past "
            f"{self.days} days: "
            + "; ".join(parts)
            + f"; {sum(self.bytes.values()) / 1024 / 1024:.0f} MB of BSON, loaded in "
            f"{self.seconds:.1f} s ({sum(self.docs.values()) / max(self.seconds, 1e-9):,.0f} "
            "documents/s, `insert_many(ordered=False)` in batches of 1,000 runs' documents, "
            f"{self.writers} writer threads)"
        )
        if self.skipped:
            text += "; not cloned (pending work): " + ", ".join(
                f"`{n}` ({c})" for n, c in self.skipped.items()
            )
        return text


def _clones(
    template: Template,
    count: int,
    *,
    pad_to: int,
    workflows: int,
    days: int,
    rng: random.Random,
    collections: list[str],
) -> Iterator[tuple[dict[str, list[Document]], str]]:
    """Per history run, its documents by collection, and its tenant."""
    extra = 0
    if template.marker_count:
        extra = max(0, (pad_to - template.run_doc_bytes) // template.marker_count)
    pads = _paddings(len(template.marker) + extra, 256, rng)
    now = datetime.now(UTC)
    quoted_tenant = f'"{template.tenant}"'
    for i in range(count):
        created = now - timedelta(seconds=rng.uniform(60, days * 86400))
        run_id = new_run_id(created)
        tenant = tenant_of(i, template.tenant)
        workflow = workflow_of(i, workflows)
        pad = pads[i % len(pads)]
        trace = secrets.token_hex(16)

        def swap(
            s: str,
            run_id: str = run_id,
            tenant: str = tenant,
            wf: str = workflow,
            pad: str = pad,
            trace: str = trace,
        ) -> str:
            if s == template.tenant:
                return tenant
            if len(s) == 32 and all(c in "0123456789abcdef" for c in s):
                return trace  # a trace id would otherwise be shared by every clone
            s = s.replace(template.run_id, run_id)
            s = s.replace(template.marker, pad)
            s = s.replace(template.workflow_id, wf)
            return s.replace(quoted_tenant, f'"{tenant}"')

        shift = created - template.created_at
        docs = {
            name: [_rewrite(d, swap, shift) for d in template.docs[name]] for name in collections
        }
        yield docs, tenant


def load(
    client: MongoClient[Document],
    database: str,
    template: Template,
    count: int,
    *,
    pad_to: int = 5000,
    workflows: int = 20,
    days: int = 30,
    runs_only: bool = False,
    batch: int = 1000,
    writers: int = 2,
    seed: int = 8,
) -> LoadReport:
    db: Database[Document] = client[database]
    collections = [RUNS] if runs_only else list(template.docs)
    rng = random.Random(seed)
    docs = dict.fromkeys(collections, 0)
    sizes = dict.fromkeys(collections, 0)
    tenants: dict[str, int] = {}
    run_min, run_max = 1 << 30, 0
    pending: dict[str, list[Document]] = {name: [] for name in collections}
    started = time.perf_counter()
    last_log = started

    pool = ThreadPoolExecutor(max_workers=max(1, writers), thread_name_prefix="history")
    in_flight: list[Future[Any]] = []

    def flush() -> None:
        for name, items in pending.items():
            if items:
                in_flight.append(pool.submit(db[name].insert_many, list(items), ordered=False))
                items.clear()
        # Bounded: at most two rounds of batches queued behind the writers.
        while len(in_flight) > 2 * max(1, writers) * len(pending):
            in_flight.pop(0).result()

    try:
        for i, (clone, tenant) in enumerate(
            _clones(
                template,
                count,
                pad_to=pad_to,
                workflows=workflows,
                days=days,
                rng=rng,
                collections=collections,
            ),
            start=1,
        ):
            tenants[tenant] = tenants.get(tenant, 0) + 1
            for name, items in clone.items():
                for d in items:
                    size = len(bson.encode(d))
                    sizes[name] += size
                    docs[name] += 1
                    if name == RUNS:
                        run_min, run_max = min(run_min, size), max(run_max, size)
                pending[name].extend(items)
            if i % batch == 0:
                flush()
                now = time.perf_counter()
                if now - last_log > 15:
                    log(f"history: {i:,}/{count:,} runs loaded ({now - started:.0f} s)")
                    last_log = now
        flush()
        for future in in_flight:
            future.result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    seconds = time.perf_counter() - started
    return LoadReport(
        runs=count,
        docs=docs,
        bytes=sizes,
        seconds=seconds,
        workflows=workflows,
        tenants=tenants,
        run_doc_bytes_min=run_min if count else 0,
        run_doc_bytes_max=run_max,
        template_run_doc_bytes=template.run_doc_bytes,
        skipped=template.skipped,
        days=days,
        writers=writers,
    )
