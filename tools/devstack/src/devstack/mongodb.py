"""MongoDB: a ``mongod`` on the PATH, else FerretDB on PostgreSQL, built from our assets.

FerretDB needs the ``postgres`` component healthy first; before it starts, its database is
created if missing and the GIN-twin event trigger (``assets/ferretdb/gin_twins.sql``) is
installed, so that FerretDB's pushed-down equality filters are served by indexes.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from devstack import cache, process
from devstack.component import Component, Launch, Say
from devstack.paths import assets_dir
from devstack.postgres import Postgres

GO_HINT = "Go 1.24+ (https://go.dev/dl/, or apt-get install golang) -- or put mongod on the PATH"
FERRETDB_SOURCES = ("main.go", "go.mod", "go.sum")
FERRETDB_BINARY = "ferretdb-embedded"
#: the PostgreSQL database FerretDB keeps every MongoDB database in (one schema each)
FERRETDB_DATABASE = "ferretdb"
#: pgx pool of FerretDB: an open cursor holds a connection until it is exhausted or closed, and
#: the services keep many clients; PostgreSQL's max_connections (200) leaves room for the rest.
FERRETDB_POOL_MAX_CONNS = 150
GIN_TWINS_SQL = "gin_twins.sql"


def ferretdb_command(binary: Path, listen: str, postgresql_url: str) -> list[str]:
    return [str(binary), "-listen", listen, "-postgresql-url", postgresql_url]


def ferretdb_postgresql_url(base_url: str, pool_max_conns: int = FERRETDB_POOL_MAX_CONNS) -> str:
    """FerretDB's PostgreSQL URL: ``base_url`` plus the pgx pool size."""
    return f"{base_url}?pool_max_conns={pool_max_conns}"


def server_version(build_info: dict[str, Any], ferretdb: str | None = None) -> str:
    """``MongoDB 7.0.x`` or ``MongoDB 7.0.x (FerretDB v1.24.2)`` from a buildInfo reply.

    An embedded FerretDB reports its own version as "unknown"; ``ferretdb`` fills it in.
    """
    version = f"MongoDB {build_info.get('version', '?')}"
    ferret = str(build_info.get("ferretdbVersion") or "")
    if not ferret or ferret == "unknown":
        ferret = ferretdb or ""
    return f"{version} (FerretDB {ferret})" if ferret else version


def ferretdb_version(go_mod: str) -> str:
    """The FerretDB module version required by our ``go.mod`` (e.g. ``v1.24.2``)."""
    match = re.search(r"github\.com/FerretDB/FerretDB\s+(v\S+)", go_mod)
    return match.group(1) if match else "unknown"


class MongoDB(Component):
    name = "mongodb"

    @property
    def port(self) -> int:
        return self.settings.mongodb_port

    def ports(self) -> list[int]:
        return [self.port]

    @property
    def url(self) -> str:
        return f"mongodb://{self.settings.host}:{self.port}"

    @property
    def listen(self) -> str:
        return f"{self.settings.host}:{self.port}"

    def backend(self) -> str:
        choice = self.settings.mongodb_backend
        if choice == "auto":
            return "mongod" if shutil.which("mongod") else "ferretdb"
        return choice

    @property
    def marker(self) -> str:
        if self.read_meta().get("backend") == "mongod":
            return str(self.data_dir)
        return f"{FERRETDB_BINARY} -listen {self.listen}"

    def dependencies(self) -> tuple[str, ...]:
        return ("postgres",) if self.backend() == "ferretdb" else ()

    def outdated(self, pid: int) -> str | None:
        line = process.cmdline(pid)
        if FERRETDB_BINARY in line and "-postgresql-url" not in line:
            return "FerretDB on SQLite is replaced by FerretDB on PostgreSQL"
        return None

    def launch(self, say: Say) -> Launch:
        if self.backend() == "mongod":
            db_dir = self.data_dir / "db"
            db_dir.mkdir(parents=True, exist_ok=True)
            mongod = self.need_tool(
                "mongod", "MongoDB (mongod), or use DEVSTACK_MONGODB_BACKEND=auto"
            )
            cmd = [
                mongod,
                "--dbpath",
                str(db_dir),
                "--port",
                str(self.port),
                "--bind_ip",
                self.settings.host,
            ]
            return Launch(cmd=cmd, env={}, backend="mongod", version="mongod")
        binary = self.ferretdb_binary(say)
        postgres = Postgres(self.settings)
        self.prepare_postgres(postgres, say)
        cmd = ferretdb_command(
            binary, self.listen, ferretdb_postgresql_url(postgres.url(FERRETDB_DATABASE))
        )
        go_mod = (assets_dir() / "ferretdb" / "go.mod").read_text()
        return Launch(cmd, {}, "ferretdb", f"FerretDB {ferretdb_version(go_mod)}")

    def prepare_postgres(self, postgres: Postgres, say: Say) -> None:
        """FerretDB's database (created if missing) with the GIN-twin trigger installed."""
        try:
            if postgres.ensure_database(FERRETDB_DATABASE):
                say(f"{self.name}: created PostgreSQL database {FERRETDB_DATABASE}")
            postgres.psql(
                database=FERRETDB_DATABASE,
                file=assets_dir() / "ferretdb" / GIN_TWINS_SQL,
                timeout=600,
            )
        except RuntimeError as exc:
            raise self.fail(f"preparing PostgreSQL for FerretDB failed: {exc}") from exc

    def ferretdb_binary(self, say: Say) -> Path:
        sources = [assets_dir() / "ferretdb" / name for name in FERRETDB_SOURCES]
        target = self.settings.cache_dir / "ferretdb" / cache.content_key(*sources)
        binary = target / FERRETDB_BINARY
        if binary.exists():
            return binary
        go = self.need_tool("go", GO_HINT)
        say(f"{self.name}: building FerretDB with Go (first run only, a few minutes)")
        go_cache = self.settings.cache_dir / "go"
        env = {
            "GOMODCACHE": str(go_cache / "mod"),
            "GOCACHE": str(go_cache / "build"),
            "GOFLAGS": "-mod=readonly -buildvcs=false",
            "GOTOOLCHAIN": "local",
            "CGO_ENABLED": "0",
            "GOPATH": str(go_cache / "path"),
        }

        def build(tmp: Path) -> None:
            src = tmp / "src"
            src.mkdir()
            for path in sources:
                shutil.copy2(path, src / path.name)
            code, output = process.run_logged(
                [go, "build", "-trimpath", "-o", str(tmp / FERRETDB_BINARY), "."],
                self.log_file,
                env=env,
                cwd=src,
                timeout=3600,
            )
            if code != 0:
                raise self.fail(f"building FerretDB failed (exit {code})", output)
            shutil.rmtree(src, ignore_errors=True)
            os.chmod(tmp / FERRETDB_BINARY, 0o755)

        cache.provision(target, build)
        return binary

    def probe(self, timeout: float) -> str:
        from pymongo import MongoClient

        ms = max(int(timeout * 1000), 500)
        client: MongoClient[dict[str, Any]] = MongoClient(
            self.url,
            serverSelectionTimeoutMS=ms,
            connectTimeoutMS=ms,
            socketTimeoutMS=ms,
            directConnection=True,
        )
        try:
            client.admin.command("ping")
            info: dict[str, Any] = client.admin.command("buildInfo")
        finally:
            client.close()
        meta = self.read_meta()
        ferret = meta.get("version", "").removeprefix("FerretDB ")
        return server_version(info, ferret if meta.get("backend") == "ferretdb" else None)
