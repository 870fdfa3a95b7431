"""Ports, credentials and timeouts of the local stack, read from ``DEVSTACK_*`` variables."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from devstack.paths import cache_dir, state_dir

HOST = "127.0.0.1"
ACCESS_KEY = "devstack"
SECRET_KEY = "devstack-secret-key"  # dev only
REGION = "us-east-1"
DATABASE = "workflow"
OUTPUTS_BUCKET = "workflow-outputs"
UPLOADS_BUCKET = "workflow-uploads"

PROFILES = ("default", "cluster")
"""`DEVSTACK_PROFILE`: `default` is one Kafka node and one process of each service (fast);
`cluster` is three Kafka nodes (topics replicated 3 times, `min.insync.replicas` 2) and several
processes of each service behind a load balancer (README: Scale-out)."""
SERVICES = ("ingress", "orchestrator", "executor", "notifier")
CLUSTER_KAFKA_NODES = 3
CLUSTER_REPLICAS: dict[str, int] = {"ingress": 2, "orchestrator": 3, "executor": 3, "notifier": 2}
MAX_REPLICAS = 8
"""Replica n of a worker listens on its base port + 10 * (n - 1), an ingress replica behind the
load balancer on the API port + 10 * n (devstack.apps): eight fit between the stack's ports
(38000-38083) and the end-to-end tests' (38100-38183; 38190 is another test's)."""


@dataclass(frozen=True)
class Settings:
    state_dir: Path
    cache_dir: Path
    kafka_port: int = 39092
    kafka_controller_port: int = 39093
    mongodb_port: int = 37017
    postgres_port: int = 37432
    s3_port: int = 38333
    partitions: int = 6
    health_timeout: float = 120.0
    stop_timeout: float = 30.0
    mongodb_backend: str = "auto"  # auto | mongod | ferretdb
    s3_backend: str = "auto"  # auto | minio | seaweedfs
    host: str = HOST
    access_key: str = ACCESS_KEY
    secret_key: str = SECRET_KEY
    region: str = REGION
    database: str = DATABASE
    outputs_bucket: str = OUTPUTS_BUCKET
    uploads_bucket: str = UPLOADS_BUCKET
    profile: str = "default"
    replicas: Mapping[str, int] = field(default_factory=lambda: dict.fromkeys(SERVICES, 1))

    @property
    def kafka_nodes(self) -> int:
        """Kafka KRaft nodes (each a broker and a controller): 1, or 3 in the cluster profile."""
        return CLUSTER_KAFKA_NODES if self.profile == "cluster" else 1

    @property
    def replication_factor(self) -> int:
        """Replicas of every topic: one on each node."""
        return self.kafka_nodes

    @property
    def min_insync_replicas(self) -> int:
        """In-sync replicas an `acks=all` write needs: a majority, so one node may be down."""
        return self.kafka_nodes // 2 + 1

    def kafka_node_ports(self, node_id: int) -> tuple[int, int]:
        """Broker and controller port of node `node_id` (1-based): the next pair per node."""
        step = 2 * (node_id - 1)
        return self.kafka_port + step, self.kafka_controller_port + step

    @property
    def kafka_bootstrap(self) -> str:
        """Every node's broker address, for `KAFKA_BOOTSTRAP_SERVERS`."""
        return ",".join(
            f"{self.host}:{self.kafka_node_ports(n)[0]}" for n in range(1, self.kafka_nodes + 1)
        )

    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def env_file(self) -> Path:
        return self.state_dir / "env"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        kafka_port = _int(env, "DEVSTACK_KAFKA_PORT", 39092)
        profile = _choice(env, "DEVSTACK_PROFILE", PROFILES, default="default")
        return cls(
            state_dir=state_dir(),
            cache_dir=cache_dir(),
            kafka_port=kafka_port,
            kafka_controller_port=_int(env, "DEVSTACK_KAFKA_CONTROLLER_PORT", kafka_port + 1),
            mongodb_port=_int(env, "DEVSTACK_MONGODB_PORT", 37017),
            postgres_port=_int(env, "DEVSTACK_POSTGRES_PORT", 37432),
            s3_port=_int(env, "DEVSTACK_S3_PORT", 38333),
            partitions=_int(env, "DEVSTACK_KAFKA_PARTITIONS", 6),
            health_timeout=float(_int(env, "DEVSTACK_HEALTH_TIMEOUT", 120)),
            stop_timeout=float(_int(env, "DEVSTACK_STOP_TIMEOUT", 30)),
            mongodb_backend=_choice(env, "DEVSTACK_MONGODB_BACKEND", ("mongod", "ferretdb")),
            s3_backend=_choice(env, "DEVSTACK_S3_BACKEND", ("minio", "seaweedfs")),
            profile=profile,
            replicas=_replicas(env, "DEVSTACK_REPLICAS", profile),
        )


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value}")
    return value


def _choice(
    env: Mapping[str, str], name: str, choices: tuple[str, ...], default: str = "auto"
) -> str:
    raw = env.get(name, "").strip().lower() or default
    allowed = choices if default in choices else (default, *choices)
    if raw not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {raw!r}")
    return raw


def _replicas(env: Mapping[str, str], name: str, profile: str) -> dict[str, int]:
    """Processes per service: the profile's counts (one each; `CLUSTER_REPLICAS` in the
    cluster profile), changed by `name`, e.g. `orchestrator=3,executor=3,ingress=2`."""
    counts = dict(CLUSTER_REPLICAS) if profile == "cluster" else dict.fromkeys(SERVICES, 1)
    for item in filter(None, (part.strip() for part in env.get(name, "").split(","))):
        service, _, raw = item.partition("=")
        service = service.strip().lower()
        if service not in SERVICES:
            raise ValueError(f"{name}: unknown service {service!r} (one of {', '.join(SERVICES)})")
        try:
            count = int(raw)
        except ValueError:
            raise ValueError(f"{name}: {service} needs a count, e.g. {service}=2") from None
        if not 1 <= count <= MAX_REPLICAS:
            raise ValueError(f"{name}: {service}={count} is not between 1 and {MAX_REPLICAS}")
        counts[service] = count
    return counts
