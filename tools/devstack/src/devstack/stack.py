"""The whole stack: bring every component up concurrently, stop them, report their status."""

from __future__ import annotations

import dataclasses
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

from devstack import envfile, kafka, process
from devstack.cache import file_lock
from devstack.component import Component, Say, Status
from devstack.errors import DevstackError, StackError
from devstack.mongodb import MongoDB
from devstack.postgres import Postgres
from devstack.s3 import S3
from devstack.settings import CLUSTER_KAFKA_NODES, PROFILES, Settings


def components(settings: Settings) -> list[Component]:
    """Every server of the stack; PostgreSQL only while something needs it (FerretDB) or it
    still runs (so that ``down`` stops it after a switch to ``mongod``). Kafka nodes of the
    other profile are listed while they run, so that ``down`` and ``status`` see them."""
    comps: list[Component] = [*kafka.nodes(settings), Postgres(settings), MongoDB(settings)]
    comps.append(S3(settings))
    needed = {dep for comp in comps for dep in comp.dependencies()}
    return [
        c
        for c in comps
        if not isinstance(c, Postgres) or c.name in needed or c.running_pid() is not None
    ] + [c for c in other_profile_nodes(settings) if c.running_pid() is not None]


def other_profile_nodes(settings: Settings) -> list[Component]:
    """The Kafka nodes of the profiles not chosen (they share the first node's ports)."""
    return [
        node
        for profile in PROFILES
        if profile != settings.profile
        for node in kafka.nodes(dataclasses.replace(settings, profile=profile))
    ]


def component_names(settings: Settings | None = None) -> list[str]:
    """The servers of the profile of `settings` (every server of every profile: None)."""
    counts = [1, CLUSTER_KAFKA_NODES] if settings is None else [settings.kafka_nodes]
    names = [kafka.node_name(n, count) for count in counts for n in range(1, count + 1)]
    return [*names, "postgres", "mongodb", "s3"]


def stop_waves(comps: list[Component]) -> list[list[Component]]:
    """``comps`` in groups to stop one after another: a component before what it depends on."""
    left = list(comps)
    waves: list[list[Component]] = []
    while left:
        needed = {dep for c in left for dep in c.dependencies()}
        wave = [c for c in left if c.name not in needed] or list(left)  # a cycle: all at once
        waves.append(wave)
        left = [c for c in left if c not in wave]
    return waves


def endpoint_values(settings: Settings) -> dict[str, str]:
    """What ``.stack/env`` says about the stack (in the file's order)."""
    host = settings.host
    s3 = f"http://{host}:{settings.s3_port}"
    return {
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap,
        "MONGODB_URL": f"mongodb://{host}:{settings.mongodb_port}",
        "MONGODB_DATABASE": settings.database,
        "S3_ENDPOINT": s3,
        "S3_PUBLIC_ENDPOINT": s3,
        "S3_ACCESS_KEY": settings.access_key,
        "S3_SECRET_KEY": settings.secret_key,
        "S3_REGION": settings.region,
        "S3_OUTPUTS_BUCKET": settings.outputs_bucket,
        "S3_UPLOADS_BUCKET": settings.uploads_bucket,
    }


def _locked_say(say: Say) -> Say:
    lock = threading.Lock()

    def locked(message: str) -> None:
        with lock:
            say(message)

    return locked


def _ensure(component: Component, say: Say) -> Status:
    try:
        return component.ensure(say)
    except DevstackError:
        raise
    except Exception as exc:
        raise component.fail(f"{type(exc).__name__}: {exc}") from exc


class _Gates:
    """Lets a component wait until the components it depends on are healthy (or have failed)."""

    def __init__(self, comps: list[Component]) -> None:
        self.done = {c.name: threading.Event() for c in comps}
        self.healthy: set[str] = set()

    def run(self, component: Component, say: Say) -> Status:
        try:
            for dep in component.dependencies():
                gate = self.done.get(dep)
                if gate is None:
                    continue
                while not gate.wait(0.2):
                    if process.aborted():
                        raise component.fail("interrupted")
                if dep not in self.healthy:
                    raise component.fail(f"not started: {dep} is not healthy")
            status = _ensure(component, say)
            self.healthy.add(component.name)
            return status
        finally:
            self.done[component.name].set()


def up(settings: Settings, say: Say = print) -> list[Status]:
    """Start whatever is not running and healthy, create topics and buckets, write the env file.

    Raises StackError naming each component that failed.
    """
    started = time.monotonic()
    say = _locked_say(say)
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    with file_lock(settings.state_dir / ".lock"):
        for node in other_profile_nodes(settings):
            if node.running_pid() is not None:
                say(f"{node.name}: stopping it for the {settings.profile} profile")
                node.stop(say)
        comps = components(settings)
        process.reset_abort()
        gates = _Gates(comps)
        pool = ThreadPoolExecutor(max_workers=len(comps))
        futures = [pool.submit(gates.run, c, say) for c in comps]
        try:
            wait(futures)
        except BaseException:
            # Ctrl-C / SIGTERM: kill running downloads and builds so their temp dirs are removed.
            process.abort_all()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown()
        errors: list[DevstackError] = []
        statuses: list[Status] = []
        for future in futures:
            exc = future.exception()
            if isinstance(exc, DevstackError):
                errors.append(exc)
            elif exc is not None:
                raise exc
            else:
                statuses.append(future.result())
        if errors:
            raise StackError(errors)
        envfile.write_env(settings.env_file, endpoint_values(settings))
    say(f"up: all healthy, endpoints in {settings.env_file} [{time.monotonic() - started:.1f}s]")
    return statuses


def down(settings: Settings, purge: bool = False, say: Say = print) -> None:
    say = _locked_say(say)
    with file_lock(settings.state_dir / ".lock"):
        comps = components(settings)
        with ThreadPoolExecutor(max_workers=len(comps)) as pool:
            for wave in stop_waves(comps):
                for future in [pool.submit(c.stop, say) for c in wave]:
                    future.result()
        if purge:
            for comp in comps:
                comp.purge()
            say(f"down: removed the data of {', '.join(c.name for c in comps)}")


def status(settings: Settings) -> list[Status]:
    comps = components(settings)
    with ThreadPoolExecutor(max_workers=len(comps)) as pool:
        return list(pool.map(lambda c: c.status(), comps))
