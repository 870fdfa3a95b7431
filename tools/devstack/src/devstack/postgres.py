"""PostgreSQL from the system's packages (Debian's ``postgresql-15``): FerretDB's storage.

One ``postgres -D .stack/postgres/data`` process on 127.0.0.1 (trust authentication, loopback
only), run as the ``postgres`` system user when we are root. Its settings are passed with ``-c``
at every start, so changing them here takes effect at the next start.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

from devstack import process
from devstack.component import Component, Launch, Say

PG_HINT = "the PostgreSQL 15+ server (apt-get install postgresql)"
#: the database superuser created by initdb (trust authentication on loopback)
SUPERUSER = "postgres"
#: the system user the server runs as when devstack runs as root (postgres refuses root)
SYSTEM_USER = "postgres"
#: a unix socket path longer than this does not fit in sockaddr_un (108 bytes with the NUL)
MAX_SOCKET_PATH = 107
#: the leading dirs of Debian's per-version server binaries
DEBIAN_BINDIRS = "/usr/lib/postgresql/*/bin"


def pick_bindir(pg_config_bindir: str | None, candidates: Iterable[Path]) -> Path | None:
    """The first directory holding the server (``postgres`` and ``initdb``): ``pg_config``'s
    answer first, then the candidates, newest major version first."""

    def major(path: Path) -> tuple[int, str]:
        match = re.search(r"/(\d+)/bin/?$", str(path))
        return (int(match.group(1)) if match else -1, str(path))

    ordered = [Path(pg_config_bindir)] if pg_config_bindir else []
    ordered += sorted(candidates, key=major, reverse=True)
    for path in ordered:
        if (path / "postgres").is_file() and (path / "initdb").is_file():
            return path
    return None


def find_bindir() -> Path | None:
    """Where ``postgres``, ``initdb`` and ``psql`` are: ``pg_config --bindir``, then
    /usr/lib/postgresql/<major>/bin, then the directory of a ``postgres`` on the PATH."""
    answer: str | None = None
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
            )
            answer = out.stdout.strip() or None
    candidates = [Path(p) for p in sorted(Path("/").glob(DEBIAN_BINDIRS.lstrip("/")))]
    on_path = shutil.which("postgres")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    return pick_bindir(answer, candidates)


def socket_dir_fits(socket_dir: Path, port: int) -> bool:
    return len(str(socket_dir / f".s.PGSQL.{port}")) <= MAX_SOCKET_PATH


def server_settings(host: str, port: int, socket_dir: Path | None) -> dict[str, str]:
    """The ``-c`` settings of a dev server: durable (a kill -9 loses no committed write), sized
    for FerretDB's connection pool, planned so FerretDB's parameterised filters use indexes."""
    return {
        "listen_addresses": host,
        "port": str(port),
        # '' = no unix socket (when the path would be too long); TCP on loopback is what we use
        "unix_socket_directories": str(socket_dir) if socket_dir else "",
        "max_connections": "200",
        "superuser_reserved_connections": "5",
        "shared_buffers": "256MB",
        "work_mem": "16MB",
        "maintenance_work_mem": "128MB",
        "fsync": "on",
        "synchronous_commit": "on",
        "full_page_writes": "on",
        "max_wal_size": "1GB",
        # FerretDB prepares `_jsonb->$1 @> $2`; only a custom plan (with the field name known)
        # can match an index on `_jsonb->'field'`, so never let a cached generic plan win.
        "plan_cache_mode": "force_custom_plan",
        "random_page_cost": "1.1",
        "jit": "off",
        "timezone": "UTC",
        "log_timezone": "UTC",
        "log_line_prefix": "%m [%p] %q%a ",
        "log_min_duration_statement": "1000",
    }


def postgres_command(bindir: Path, pgdata: Path, settings: dict[str, str]) -> list[str]:
    cmd = [str(bindir / "postgres"), "-D", str(pgdata)]
    for key, value in settings.items():
        cmd += ["-c", f"{key}={value}"]
    return cmd


def leftover_pids(pgdata: Path) -> list[int]:
    """Processes whose working directory is ``pgdata``: backends orphaned by a postmaster that
    was killed with SIGKILL (they hold its shared memory, so a new postmaster refuses to start)."""
    target = str(pgdata.resolve())
    found: list[int] = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(entry / "cwd") == target:
                found.append(int(entry.name))
    return found


def unreachable_ancestor(path: Path, uid: int, gid: int) -> Path | None:
    """The first directory above ``path`` that user ``uid`` (group ``gid``) may not enter."""
    for ancestor in reversed(path.absolute().parents):
        try:
            st = ancestor.stat()
        except OSError:
            return ancestor
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return ancestor
    return None


def others_can_enter(path: Path) -> bool:
    """Whether a user who owns none of them may enter every existing folder above `path`
    (folders still to be made are made by us, enterable)."""
    return all(os.stat(a).st_mode & stat.S_IXOTH for a in path.absolute().parents if a.exists())


def outside_data_dir(state_dir: Path, name: str) -> Path:
    """A data folder for `state_dir`'s server that any user can reach (see `data_dir`)."""
    key = hashlib.sha256(str(state_dir.absolute()).encode()).hexdigest()[:12]
    return Path("/var/tmp") / f"workflow-devstack-{key}" / name


class Postgres(Component):
    name = "postgres"
    # SIGINT is PostgreSQL's "fast" shutdown (disconnect clients, checkpoint, exit); SIGTERM
    # would wait for FerretDB's pooled connections to go away by themselves.
    stop_signal = signal.SIGINT
    stop_group = False

    @property
    def port(self) -> int:
        return self.settings.postgres_port

    def ports(self) -> list[int]:
        return [self.port]

    @property
    def data_dir(self) -> Path:
        """Under the state folder like every server's, unless we run PostgreSQL as the
        `postgres` user (as root) and that user could not reach it there (a checkout under
        `/root`, mode 700): then a folder of its own under /var/tmp, named after the state
        folder, so `make test` works from any checkout."""
        own = self.settings.state_dir / self.name
        if os.geteuid() != 0 or others_can_enter(own):
            return own
        return outside_data_dir(self.settings.state_dir, self.name)

    def purge(self) -> None:
        super().purge()
        outside = outside_data_dir(self.settings.state_dir, self.name).parent
        with contextlib.suppress(OSError):
            outside.rmdir()  # the folder made for an unreachable checkout, once empty

    @property
    def pgdata(self) -> Path:
        return self.data_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.data_dir / "run"

    @property
    def marker(self) -> str:
        return f"-D {self.pgdata}"

    def url(self, database: str) -> str:
        return f"postgres://{SUPERUSER}@{self.settings.host}:{self.port}/{database}"

    @functools.cached_property
    def bindir(self) -> Path:
        found = find_bindir()
        if found is None:
            raise self.fail(f"PostgreSQL server binaries not found; install {PG_HINT}")
        return found

    # -- the system user -----------------------------------------------------------------------
    def run_as(self) -> process.RunAs | None:
        """The ``postgres`` system user when we are root (created if missing), else None."""
        if os.geteuid() != 0:
            return None
        try:
            entry = pwd.getpwnam(SYSTEM_USER)
        except KeyError:
            useradd = self.need_tool("useradd", "the passwd package (useradd)")
            code, output = process.run_logged(
                [
                    useradd,
                    "--system",
                    "--user-group",
                    "--no-create-home",
                    "--home-dir",
                    "/var/lib/postgresql",
                    "--shell",
                    "/usr/sbin/nologin",
                    SYSTEM_USER,
                ],
                self.log_file,
                timeout=60,
            )
            if code != 0:
                raise self.fail(f"creating the system user {SYSTEM_USER} failed", output) from None
            entry = pwd.getpwnam(SYSTEM_USER)
        return process.RunAs(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir or "/")

    def _own(self, path: Path, user: process.RunAs | None) -> None:
        """Make ``path`` (recursively) belong to ``user`` if it does not already."""
        if user is None or path.stat().st_uid == user.uid:
            return
        for root, dirs, files in os.walk(path):
            for name in [*dirs, *files]:
                os.chown(os.path.join(root, name), user.uid, user.gid, follow_symlinks=False)
        os.chown(path, user.uid, user.gid)

    # -- provisioning --------------------------------------------------------------------------
    def launch(self, say: Say) -> Launch:
        bindir = self.bindir
        user = self.run_as()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if user is not None:
            blocked = unreachable_ancestor(self.data_dir, user.uid, user.gid)
            if blocked is not None:
                raise self.fail(
                    f"the {user.name} user cannot enter {blocked}, so it cannot reach "
                    f"{self.data_dir}; run `chmod o+x {blocked}` or set DEVSTACK_STATE_DIR "
                    "to a directory it can reach"
                )
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(exist_ok=True)
        self._own(self.data_dir, user)
        if not (self.pgdata / "PG_VERSION").is_file():
            self._initdb(bindir, user, say)
        self._reap_leftovers(say)
        self._drop_stale_lock(say)
        socket_dir = self.socket_dir if socket_dir_fits(self.socket_dir, self.port) else None
        cmd = postgres_command(
            bindir, self.pgdata, server_settings(self.settings.host, self.port, socket_dir)
        )
        return Launch(cmd, {}, "postgresql", _server_version(bindir))

    def spawn(self, launch: Launch) -> int:
        return process.spawn(
            launch.cmd, self.log_file, self.pid_file, launch.env, self.pgdata, self.run_as()
        )

    def _initdb(self, bindir: Path, user: process.RunAs | None, say: Say) -> None:
        """initdb into a temporary directory renamed into place, so an interrupted run leaves
        nothing that looks like a cluster."""
        say(f"{self.name}: creating the database cluster (initdb)")
        tmp = self.data_dir / "data.initdb-tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        code, output = process.run_logged(
            [
                str(bindir / "initdb"),
                "-D",
                str(tmp),
                "-A",
                "trust",
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-instructions",
            ],
            self.log_file,
            cwd=self.data_dir,
            timeout=300,
            user=user,
        )
        if code != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            raise self.fail(f"initdb failed (exit {code})", output)
        shutil.rmtree(self.pgdata, ignore_errors=True)
        os.rename(tmp, self.pgdata)

    def _reap_leftovers(self, say: Say) -> None:
        pids = leftover_pids(self.pgdata)
        if not pids:
            return
        say(f"{self.name}: killing {len(pids)} leftover process(es) of a killed server")
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while any(process.pid_alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)

    def _drop_stale_lock(self, say: Say) -> None:
        """Remove ``postmaster.pid`` when its process is gone or a zombie. PostgreSQL removes a
        stale one itself, but counts a zombie as alive -- and a server killed with SIGKILL stays
        a zombie where PID 1 does not reap orphans (some containers and VMs)."""
        lock = self.pgdata / "postmaster.pid"
        pid = process.read_pid_line(lock)
        if pid is not None and not process.pid_alive(pid):
            lock.unlink(missing_ok=True)
            say(f"{self.name}: removed the lock file of a server that is gone (pid {pid})")

    # -- clients -------------------------------------------------------------------------------
    def psql_cmd(self, database: str) -> list[str]:
        return [
            str(self.bindir / "psql"),
            "-X",
            "-w",
            "-q",
            "-A",
            "-t",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            self.settings.host,
            "-p",
            str(self.port),
            "-U",
            SUPERUSER,
            "-d",
            database,
        ]

    def psql(
        self,
        sql: str = "",
        database: str = "postgres",
        timeout: float = 30.0,
        file: Path | None = None,
    ) -> str:
        """Run ``sql`` (or the script ``file``, in one transaction) with psql; return its output
        (unaligned, tuples only). Raises RuntimeError with psql's message when it fails."""
        cmd = self.psql_cmd(database)
        cmd += ["-1", "-f", str(file)] if file else ["-c", sql]
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env["PGCONNECT_TIMEOUT"] = str(max(int(timeout), 2))
        try:
            out = subprocess.run(
                cmd, capture_output=True, text=True, timeout=timeout, env=env, check=False
            )
        except subprocess.TimeoutExpired:
            raise RuntimeError(f"psql did not answer within {timeout:.0f} s") from None
        if out.returncode != 0:
            raise RuntimeError(out.stderr.strip() or f"psql exited with {out.returncode}")
        return out.stdout.strip()

    def ensure_database(self, name: str) -> bool:
        """Create the database ``name`` if it does not exist; True when it was created."""
        literal = name.replace("'", "''")
        if self.psql(f"SELECT 1 FROM pg_database WHERE datname = '{literal}'"):
            return False
        identifier = name.replace('"', '""')
        self.psql(f'CREATE DATABASE "{identifier}"')
        return True

    # -- health --------------------------------------------------------------------------------
    def probe(self, timeout: float) -> str:
        version = self.psql("SHOW server_version", timeout=timeout)
        return f"PostgreSQL {version.split()[0]}" if version else "PostgreSQL"


def _server_version(bindir: Path) -> str:
    """``PostgreSQL 15.18`` from ``postgres --version``."""
    try:
        out = subprocess.run(
            [str(bindir / "postgres"), "--version"],
            capture_output=True,
            text=True,
            timeout=20,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return "PostgreSQL"
    match = re.search(r"\(PostgreSQL\)\s+(\S+)", out)
    return f"PostgreSQL {match.group(1)}" if match else "PostgreSQL"
