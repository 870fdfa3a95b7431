"""Detached server processes: start in a new session, find by pid file, stop, read their logs."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

MAX_LOG_BYTES = 5 * 1024 * 1024

_aborted = threading.Event()
_children: set[subprocess.Popen[bytes]] = set()
_children_lock = threading.Lock()


@dataclass(frozen=True)
class RunAs:
    """Another system user to run a command as (needs root): its ids and home directory."""

    name: str
    uid: int
    gid: int
    home: str

    def env(self) -> dict[str, str]:
        return {"HOME": self.home, "USER": self.name, "LOGNAME": self.name}


def reset_abort() -> None:
    _aborted.clear()


def aborted() -> bool:
    return _aborted.is_set()


def abort_all() -> None:
    """Interrupt: kill every build/download running under ``run_logged`` and stop waiting."""
    _aborted.set()
    with _children_lock:
        children = list(_children)
    for child in children:
        _signal_group(child.pid, signal.SIGKILL)


def port_in_use(host: str, port: int) -> bool:
    """True when something already listens on (or holds) ``host:port``."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return True
            raise
    return False


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    """True when a TCP connection to ``host:port`` succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def pid_alive(pid: int) -> bool:
    """True for a live process; a zombie (exited child not yet reaped) counts as dead."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    state = stat.rpartition(")")[2].split()[0] if ")" in stat else ""
    if state in ("Z", "X"):
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(pid, os.WNOHANG)
        return False
    return True


def cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def read_pid(pid_file: Path) -> int | None:
    try:
        return int(pid_file.read_text().strip())
    except (OSError, ValueError):
        return None


def read_pid_line(path: Path) -> int | None:
    """The pid on the first line of ``path`` (e.g. PostgreSQL's postmaster.pid)."""
    try:
        with path.open() as f:
            return int(f.readline().strip())
    except (OSError, ValueError):
        return None


def owned_pid(pid_file: Path, marker: str) -> int | None:
    """The pid in ``pid_file`` if that process is alive and its command line holds ``marker``."""
    pid = read_pid(pid_file)
    if pid is None or not pid_alive(pid):
        return None
    line = cmdline(pid)
    if line and marker not in line:
        return None  # the pid was reused by something else
    return pid


def rotate_log(log_file: Path) -> None:
    with contextlib.suppress(OSError):
        if log_file.stat().st_size > MAX_LOG_BYTES:
            log_file.replace(log_file.with_suffix(log_file.suffix + ".1"))


def _ends_unfinished(path: Path) -> bool:
    """True when the file's last line has no newline (a process killed mid-line)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() == 0:
                return False
            f.seek(-1, os.SEEK_END)
            return f.read(1) != b"\n"
    except OSError:
        return False


def _start_marker(cmd: Sequence[str], *, after_partial_line: bool = False) -> str:
    when = datetime.now(UTC).isoformat(timespec="milliseconds")
    message = f"starting {' '.join(cmd)}"
    line = {"time": when, "level": "INFO", "logger": "devstack", "message": message}
    return ("\n" if after_partial_line else "") + json.dumps(line) + "\n"


def spawn(
    cmd: Sequence[str],
    log_file: Path,
    pid_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    user: RunAs | None = None,
) -> int:
    """Start ``cmd`` detached (own session, stdin closed, output appended to ``log_file``).

    ``user``: run it as that system user (only root can).
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    rotate_log(log_file)
    full_env = _environment(env, user)
    with log_file.open("ab") as log:
        # One JSON line (the services' log format, bus.logs), so `jq` reads a service's
        # whole log; a server's log reads it as a plain marker of where a start begins.
        log.write(_start_marker(cmd, after_partial_line=_ends_unfinished(log_file)).encode())
        log.flush()
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=full_env,
            start_new_session=True,
            close_fds=True,
            user=user.uid if user else None,
            group=user.gid if user else None,
            extra_groups=[] if user else None,
        )
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    pid_file.write_text(f"{proc.pid}\n")
    # The server outlives us; forget the Popen so it is not waited for or warned about.
    proc.returncode = 0
    return proc.pid


def stop(
    pid: int, timeout: float, sig: signal.Signals = signal.SIGTERM, group: bool = True
) -> bool:
    """Send ``sig`` to the process group of ``pid`` (to ``pid`` alone unless ``group``), wait up
    to ``timeout`` s, then SIGKILL the group.

    Returns True when it stopped on ``sig``, False when it had to be killed.
    """
    if not pid_alive(pid):
        return True
    if group:
        _signal_group(pid, sig)
    else:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.1)
    _signal_group(pid, signal.SIGKILL)
    kill_deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < kill_deadline:
        time.sleep(0.1)
    return False


def _environment(env: Mapping[str, str] | None, user: RunAs | None) -> dict[str, str]:
    full_env = dict(os.environ)
    if user:
        full_env.update(user.env())
    if env:
        full_env.update(env)
    return full_env


def _signal_group(pid: int, sig: signal.Signals) -> None:
    try:
        os.killpg(pid, sig)
    except ProcessLookupError:
        return
    except PermissionError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


PORT_RACE_TRIES = 3
"""Starts of a server that exited because one of its ports was taken (`lost_a_port`)."""


def log_size(path: Path) -> int:
    """Where a server's output starts in its log (the log is appended to)."""
    try:
        return path.stat().st_size
    except OSError:
        return 0


def lost_a_port(pid: int, log: Path, since: int) -> bool:
    """Whether the server started as `pid` exited because an address was in use. Our ports
    lie in Linux's ephemeral range (32768-60999), so a passing outgoing connection can hold
    one of them for a moment (seen: SeaweedFS's filer gRPC port, the ingress's port): such a
    server is worth starting again."""
    if pid_alive(pid):
        return False
    try:
        with log.open("rb") as f:
            f.seek(since)
            written = f.read()
    except OSError:
        return False
    return b"address already in use" in written.lower()


def tail(path: Path, lines: int = 40) -> str:
    """The last ``lines`` lines of a text file ('' when it does not exist)."""
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - 256 * 1024))
            data = f.read()
    except OSError:
        return ""
    text = data.decode(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def run_logged(
    cmd: Sequence[str],
    log_file: Path,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
    user: RunAs | None = None,
) -> tuple[int, str]:
    """Run ``cmd`` to completion, appending its output to ``log_file``.

    Returns its exit code (124 on timeout) and the tail of what it printed.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    full_env = _environment(env, user)
    with log_file.open("ab") as log:
        log.write(f"\n=== devstack: running {' '.join(cmd)} ===\n".encode())
        log.flush()
        start = log.tell()
        proc = subprocess.Popen(
            list(cmd),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=full_env,
            start_new_session=True,
            user=user.uid if user else None,
            group=user.gid if user else None,
            extra_groups=[] if user else None,
        )
        with _children_lock:
            _children.add(proc)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            code = 124
        except BaseException:
            _signal_group(proc.pid, signal.SIGKILL)
            proc.wait()
            raise
        finally:
            with _children_lock:
                _children.discard(proc)
    with log_file.open("rb") as log:
        log.seek(start)
        output = log.read().decode(errors="replace")
    return code, "\n".join(output.splitlines()[-30:])
