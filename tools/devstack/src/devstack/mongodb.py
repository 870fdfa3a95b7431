"""MongoDB: a ``mongod`` on the PATH, else FerretDB (SQLite backend) built from our assets."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from devstack import cache, process
from devstack.component import Component, Launch, Say
from devstack.paths import assets_dir

GO_HINT = "Go 1.24+ (https://go.dev/dl/, or apt-get install golang) -- or put mongod on the PATH"
FERRETDB_SOURCES = ("main.go", "go.mod", "go.sum")
FERRETDB_BINARY = "ferretdb-embedded"


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

    def backend(self) -> str:
        choice = self.settings.mongodb_backend
        if choice == "auto":
            return "mongod" if shutil.which("mongod") else "ferretdb"
        return choice

    def launch(self, say: Say) -> Launch:
        db_dir = self.data_dir / "db"
        db_dir.mkdir(parents=True, exist_ok=True)
        if self.backend() == "mongod":
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
        cmd = [str(binary), "-listen", f"{self.settings.host}:{self.port}", "-dir", str(db_dir)]
        go_mod = (assets_dir() / "ferretdb" / "go.mod").read_text()
        return Launch(cmd, {}, "ferretdb", f"FerretDB {ferretdb_version(go_mod)}")

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
