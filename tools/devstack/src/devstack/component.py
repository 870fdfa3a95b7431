"""What every server of the stack does: provision, start detached, wait for health, stop."""

from __future__ import annotations

import json
import shutil
import signal
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from devstack import process
from devstack.errors import DevstackError
from devstack.settings import Settings

Say = Callable[[str], None]


@dataclass(frozen=True)
class Launch:
    """How to run a server: its command line, extra environment and working directory."""

    cmd: list[str]
    env: dict[str, str]
    backend: str
    version: str


@dataclass(frozen=True)
class Status:
    name: str
    healthy: bool
    pid: int | None
    port: int
    backend: str
    version: str
    detail: str = ""


class Component(ABC):
    name: str
    #: how long one health probe may take when the server is expected to be up already
    probe_timeout: float = 10.0
    #: how ``stop`` asks the server to shut down: this signal, to its whole process group or not
    stop_signal: signal.Signals = signal.SIGTERM
    stop_group: bool = True

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    # -- locations -----------------------------------------------------------------------------
    @property
    def data_dir(self) -> Path:
        return self.settings.state_dir / self.name

    @property
    def log_file(self) -> Path:
        return self.settings.logs_dir / f"{self.name}.log"

    @property
    def pid_file(self) -> Path:
        return self.settings.state_dir / f"{self.name}.pid"

    @property
    def meta_file(self) -> Path:
        return self.settings.state_dir / f"{self.name}.json"

    @property
    def marker(self) -> str:
        """A string found in the command line of every server process we started."""
        return str(self.data_dir)

    # -- what each server defines --------------------------------------------------------------
    @property
    @abstractmethod
    def port(self) -> int: ...

    @abstractmethod
    def ports(self) -> list[int]:
        """Every TCP port the server binds (checked for foreign listeners before starting)."""

    @abstractmethod
    def launch(self, say: Say) -> Launch:
        """Provision what the server needs (cached), prepare its state, return how to run it."""

    @abstractmethod
    def probe(self, timeout: float) -> str:
        """Check real health once; return the server's version, raise when unhealthy."""

    def after_healthy(self, say: Say) -> None:  # noqa: B027 - optional hook
        """Create what the stack expects to exist (topics, buckets)."""

    def spawn(self, launch: Launch) -> int:
        """Start the server detached; return its pid (written to the pid file)."""
        return process.spawn(launch.cmd, self.log_file, self.pid_file, launch.env)

    def dependencies(self) -> tuple[str, ...]:
        """Names of the components that must be healthy before this one starts (and that are
        stopped only after it)."""
        return ()

    def outdated(self, pid: int) -> str | None:
        """Why the running server ``pid`` must be restarted (changed set-up), else None."""
        return None

    # -- shared behaviour ----------------------------------------------------------------------
    def fail(self, reason: str, detail: str = "") -> DevstackError:
        return DevstackError(self.name, reason, self.log_file, detail)

    def need_tool(self, tool: str, install_hint: str) -> str:
        path = shutil.which(tool)
        if path is None:
            raise self.fail(f"{tool} not found on PATH; install {install_hint}")
        return path

    def running_pid(self) -> int | None:
        return process.owned_pid(self.pid_file, self.marker)

    def read_meta(self) -> dict[str, str]:
        try:
            data = json.loads(self.meta_file.read_text())
        except (OSError, ValueError):
            return {}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def ensure(self, say: Say) -> Status:
        """Leave a healthy server alone; otherwise start it and wait until it is healthy."""
        started = time.monotonic()
        pid = self.running_pid()
        reason = self.outdated(pid) if pid is not None else None
        if reason is not None:
            say(f"{self.name}: restarting ({reason})")
            self.stop(say)
            pid = None
        if pid is not None:
            try:
                version = self.probe(self.probe_timeout)
            except Exception:
                pass
            else:
                self.after_healthy(say)
                say(
                    f"{self.name}: already up (pid {pid}, {version}) "
                    f"[{time.monotonic() - started:.1f}s]"
                )
                return self._status(pid, version)
            say(f"{self.name}: running (pid {pid}) but not healthy yet; waiting")
        else:
            busy = [p for p in self.ports() if process.port_in_use(self.settings.host, p)]
            if busy:
                raise self.fail(
                    f"port {', '.join(map(str, busy))} already in use by a foreign process "
                    f"(stop it, or choose other ports with DEVSTACK_{self.name.upper()}_PORT)"
                )
            return self._start(say, started)
        version = self.wait_healthy(pid, time.monotonic() + self.settings.health_timeout)
        healthy_at = time.monotonic()
        self.after_healthy(say)
        say(f"{self.name}: healthy ({version}) [{healthy_at - started:.1f}s]")
        return self._status(pid, version)

    def _start(self, say: Say, started: float) -> Status:
        """Start the server and wait until it is healthy; one that exits because a passing
        connection held one of its ports is started again (`process.lost_a_port`)."""
        for attempt in range(1, process.PORT_RACE_TRIES + 1):
            launch = self.launch(say)
            if process.aborted():
                raise self.fail("interrupted")
            provisioned = time.monotonic()
            log_start = process.log_size(self.log_file)
            pid = self.spawn(launch)
            self.meta_file.write_text(
                json.dumps({"backend": launch.backend, "version": launch.version, "pid": pid})
            )
            say(
                f"{self.name}: started {launch.backend} (pid {pid}) "
                f"[prepare {provisioned - started:.1f}s]"
            )
            try:
                version = self.wait_healthy(pid, time.monotonic() + self.settings.health_timeout)
            except DevstackError:
                if attempt == process.PORT_RACE_TRIES or not process.lost_a_port(
                    pid, self.log_file, log_start
                ):
                    raise
                say(f"{self.name}: a port was taken by a passing connection; starting again")
                time.sleep(attempt)
                continue
            break
        healthy_at = time.monotonic()
        self.after_healthy(say)
        say(f"{self.name}: healthy ({version}) [{healthy_at - started:.1f}s]")
        return self._status(pid, version)

    def wait_healthy(self, pid: int, deadline: float) -> str:
        last_error = "no answer"
        while True:
            if process.aborted():
                raise self.fail("interrupted while waiting for health")
            if not process.pid_alive(pid):
                raise self.fail("server exited during start", process.tail(self.log_file))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise self.fail(
                    f"not healthy within {self.settings.health_timeout:.0f} s "
                    f"(last error: {last_error})",
                    process.tail(self.log_file),
                )
            if process.port_open(self.settings.host, self.port):
                try:
                    return self.probe(min(self.probe_timeout, max(remaining, 1.0)))
                except Exception as exc:
                    last_error = f"{type(exc).__name__}: {exc}".strip()[:300]
            time.sleep(0.3)

    def status(self) -> Status:
        pid = self.running_pid()
        meta = self.read_meta()
        if pid is None:
            return Status(
                self.name, False, None, self.port, meta.get("backend", "-"), "-", "not running"
            )
        try:
            version = self.probe(5.0)
        except Exception as exc:
            return Status(
                self.name,
                False,
                pid,
                self.port,
                meta.get("backend", "-"),
                "-",
                f"unhealthy: {type(exc).__name__}: {exc}"[:300],
            )
        return self._status(pid, version)

    def stop(self, say: Say) -> None:
        pid = self.running_pid()
        if pid is None:
            say(f"{self.name}: not running")
        else:
            started = time.monotonic()
            graceful = process.stop(
                pid, self.settings.stop_timeout, self.stop_signal, self.stop_group
            )
            how = "stopped" if graceful else f"killed after {self.stop_signal.name} timeout"
            say(f"{self.name}: {how} (pid {pid}) [{time.monotonic() - started:.1f}s]")
        self.pid_file.unlink(missing_ok=True)

    def purge(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        for path in (self.pid_file, self.meta_file, self.log_file):
            path.unlink(missing_ok=True)

    def _status(self, pid: int, version: str) -> Status:
        return Status(
            self.name, True, pid, self.port, self.read_meta().get("backend", "-"), version
        )
