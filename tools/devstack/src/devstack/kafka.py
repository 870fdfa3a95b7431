"""Apache Kafka 4.x from Maven Central jars: one KRaft node (broker + controller), or three
on loopback in the cluster profile (each a broker and a voter of a static controller quorum)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import shutil
import threading
import uuid
from pathlib import Path
from typing import Any

from bus.topics import topic_specs

from devstack import cache, process
from devstack.component import Component, Launch, Say
from devstack.paths import assets_dir
from devstack.settings import Settings

HEALTH_TOPIC = "devstack.healthcheck"
TOPIC_ALREADY_EXISTS = 36
JAVA_HINT = "a Java 17+ runtime (e.g. apt-get install openjdk-17-jre-headless)"
MAVEN_HINT = "Apache Maven 3.6+ (e.g. apt-get install maven)"

LOG4J2_PROPERTIES = """\
# Written by devstack: Kafka logs to stdout, which devstack appends to .stack/logs/kafka.log.
status = warn
appender.console.type = Console
appender.console.name = STDOUT
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = {level}
rootLogger.appenderRef.stdout.ref = STDOUT
logger.config.name = org.apache.kafka.common.config
logger.config.level = WARN
logger.state.name = state.change.logger
logger.state.level = WARN
"""


def server_properties(host: str, port: int, controller_port: int, log_dir: Path) -> dict[str, str]:
    """The configuration of a single-node KRaft cluster (broker and controller in one JVM)."""
    return {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"{host}:{controller_port}",
        **_node_properties(host, port, controller_port, log_dir),
        **_replication_properties(replicas=1, min_insync=1),
    }


def cluster_node_properties(
    host: str, node_id: int, ports: list[tuple[int, int]], log_dir: Path
) -> dict[str, str]:
    """Node `node_id` (1-based) of a combined cluster whose node n has broker and controller
    ports `ports[n - 1]`: every node is a voter of a static quorum
    (`controller.quorum.voters`), so each node's storage is formatted on its own, no
    `--standalone` bootstrap, and any two nodes keep the metadata quorum and the topics
    writable."""
    port, controller_port = ports[node_id - 1]
    voters = ",".join(f"{n}@{host}:{c}" for n, (_, c) in enumerate(ports, start=1))
    return {
        "process.roles": "broker,controller",
        "node.id": str(node_id),
        "controller.quorum.voters": voters,
        **_node_properties(host, port, controller_port, log_dir),
        **_replication_properties(replicas=len(ports), min_insync=len(ports) // 2 + 1),
    }


def _node_properties(host: str, port: int, controller_port: int, log_dir: Path) -> dict[str, str]:
    return {
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
    }


def _replication_properties(replicas: int, min_insync: int) -> dict[str, str]:
    """Defaults for topics and Kafka's own internal topics (consumer offsets, transactions,
    share groups): on every node, writable while `min_insync` replicas are in sync."""
    return {
        "default.replication.factor": str(replicas),
        "min.insync.replicas": str(min_insync),
        "offsets.topic.replication.factor": str(replicas),
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": str(replicas),
        "transaction.state.log.min.isr": str(min_insync),
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": str(replicas),
        "share.coordinator.state.topic.min.isr": str(min_insync),
        "share.coordinator.state.topic.num.partitions": "1",
    }


def render_properties(values: dict[str, str]) -> str:
    """Java ``.properties`` text (``\\``, ``=``, ``:`` and leading spaces escaped in values)."""

    def escape(text: str) -> str:
        out = text.replace("\\", "\\\\").replace("\n", "\\n")
        return out[:1].replace(" ", "\\ ") + out[1:] if out else out

    lines = ["# Written by devstack; regenerated at every start."]
    lines += [f"{key}={escape(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def new_cluster_id() -> str:
    """A Kafka cluster id: 16 random bytes, base64url without padding, not starting with '-'."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def kafka_version(libs: Path) -> str:
    for jar in libs.glob("kafka_2.13-*.jar"):
        match = re.fullmatch(r"kafka_2\.13-(.+)\.jar", jar.name)
        if match:
            return match.group(1)
    return "unknown"


_CLUSTER_ID_LOCK = threading.Lock()
"""The nodes of a cluster start in threads of one `up`: one of them makes the cluster id."""


def node_name(node_id: int, count: int) -> str:
    return f"kafka-{node_id}" if count > 1 else "kafka"


def nodes(settings: Settings) -> list[Kafka]:
    """The Kafka nodes of the settings' profile."""
    return [Kafka(settings, n) for n in range(1, settings.kafka_nodes + 1)]


class Kafka(Component):
    """One KRaft node: `kafka` (state in .stack/kafka/) in the default profile, `kafka-<n>`
    (.stack/kafka-<n>/, its own ports) in the cluster profile."""

    probe_timeout = 15.0

    def __init__(self, settings: Settings, node_id: int = 1) -> None:
        super().__init__(settings)
        self.node_id = node_id
        self.clustered = settings.kafka_nodes > 1
        self.name = node_name(node_id, settings.kafka_nodes)

    @property
    def port(self) -> int:
        return self.settings.kafka_node_ports(self.node_id)[0]

    def ports(self) -> list[int]:
        return list(self.settings.kafka_node_ports(self.node_id))

    @property
    def bootstrap(self) -> str:
        """This node only: a probe checks this node, not whichever answers first."""
        return f"{self.settings.host}:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "data"

    @property
    def marker(self) -> str:
        return str(self.data_dir / "server.properties")

    def properties(self) -> dict[str, str]:
        host = self.settings.host
        if not self.clustered:
            return server_properties(host, self.port, self.ports()[1], self.log_dir)
        ports = [self.settings.kafka_node_ports(n) for n in range(1, self.settings.kafka_nodes + 1)]
        return cluster_node_properties(host, self.node_id, ports, self.log_dir)

    # -- provisioning --------------------------------------------------------------------------
    def libs_dir(self, say: Say) -> Path:
        pom = assets_dir() / "kafka" / "pom.xml"
        target = self.settings.cache_dir / "kafka" / cache.content_key(pom) / "libs"
        if target.is_dir():
            return target
        mvn = self.need_tool("mvn", MAVEN_HINT)
        say(f"{self.name}: resolving Kafka jars from Maven Central (first run only)")

        def build(tmp: Path) -> None:
            shutil.copy2(pom, tmp / "pom.xml")
            libs = tmp / "libs"
            code, output = process.run_logged(
                [
                    mvn,
                    "-q",
                    "-B",
                    "-f",
                    str(tmp / "pom.xml"),
                    f"-Dmaven.repo.local={self.settings.cache_dir / 'maven'}",
                    "dependency:copy-dependencies",
                    f"-DoutputDirectory={libs}",
                    "-DincludeScope=runtime",
                ],
                self.log_file,
                timeout=1800,
            )
            if code != 0:
                raise self.fail(f"resolving the Kafka jars with Maven failed (exit {code})", output)
            if not list(libs.glob("kafka_2.13-*.jar")):
                raise self.fail("Maven finished but no kafka_2.13 jar was resolved", output)
            shutil.rmtree(tmp / "target", ignore_errors=True)

        cache.provision(target.parent, build)
        return target

    def java_cmd(
        self, java: str, libs: Path, log4j: Path, extra: list[str] | None = None
    ) -> list[str]:
        # C1 only and the serial GC: a dev broker starts ~2x faster on small machines.
        return [
            java,
            "-Xmx512m",
            "-Xms256m",
            "-XX:TieredStopAtLevel=1",
            "-XX:+UseSerialGC",
            "-XX:+ExitOnOutOfMemoryError",
            "-Djava.awt.headless=true",
            *(extra or []),
            f"-Dlog4j2.configurationFile={log4j}",
            "-cp",
            f"{libs}/*",
        ]

    def class_data_sharing(self, java: str, libs: Path) -> list[str]:
        """Reuse an AppCDS archive of Kafka's classes, or record one when this broker exits.

        The archive lives in the state dir, keyed by the JVM and the jar set; a stale or broken
        one is ignored by the JVM (``-Xshare:auto``).
        """
        jvm = Path(java).resolve()
        key = hashlib.sha256(f"{jvm}:{jvm.stat().st_mtime_ns}:{libs}".encode()).hexdigest()[:12]
        archive = self.data_dir / f"classes-{key}.jsa"
        for old in self.data_dir.glob("classes-*.jsa"):
            if old != archive:
                old.unlink(missing_ok=True)
        if archive.is_file() and archive.stat().st_size > 0:
            return [f"-XX:SharedArchiveFile={archive}", "-Xshare:auto"]
        return [f"-XX:ArchiveClassesAtExit={archive}"]

    @property
    def cluster_id_file(self) -> Path:
        if self.clustered:  # one id for every node, beside their folders
            return self.settings.state_dir / "kafka-cluster.id"
        return self.data_dir / "cluster.id"

    def cluster_id(self) -> str:
        with _CLUSTER_ID_LOCK:
            id_file = self.cluster_id_file
            try:
                existing = id_file.read_text().strip()
            except FileNotFoundError:
                existing = ""
            if not existing:
                meta = self.log_dir / "meta.properties"
                if meta.exists():  # state from an earlier run whose id file went missing
                    for line in meta.read_text().splitlines():
                        if line.startswith("cluster.id="):
                            existing = line.split("=", 1)[1].strip()
                existing = existing or new_cluster_id()
                id_file.parent.mkdir(parents=True, exist_ok=True)
                id_file.write_text(existing + "\n")
            return existing

    def launch(self, say: Say) -> Launch:
        java = self.need_tool("java", JAVA_HINT)
        libs = self.libs_dir(say)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        props.write_text(render_properties(self.properties()))
        log4j = self.data_dir / "log4j2.properties"
        log4j.write_text(LOG4J2_PROPERTIES.format(level="INFO"))
        tool_log4j = self.data_dir / "log4j2-tools.properties"
        tool_log4j.write_text(LOG4J2_PROPERTIES.format(level="WARN"))
        cluster_id = self.cluster_id()
        if not (self.log_dir / "meta.properties").exists():
            say(f"{self.name}: formatting storage (cluster id {cluster_id})")
            # A single node bootstraps a dynamic quorum of itself (`--standalone`); a cluster
            # node's static voters are in its properties.
            standalone = [] if self.clustered else ["--standalone"]
            code, output = process.run_logged(
                [
                    *self.java_cmd(java, libs, tool_log4j),
                    "kafka.tools.StorageTool",
                    "format",
                    *standalone,
                    "--ignore-formatted",
                    "-t",
                    cluster_id,
                    "-c",
                    str(props),
                ],
                self.log_file,
                timeout=300,
            )
            if code != 0:
                raise self.fail(f"formatting the storage failed (exit {code})", output)
        return Launch(
            cmd=[
                *self.java_cmd(java, libs, log4j, self.class_data_sharing(java, libs)),
                "kafka.Kafka",
                str(props),
            ],
            env={},
            backend="kafka",
            version=f"Apache Kafka {kafka_version(libs)}",
        )

    # -- health --------------------------------------------------------------------------------
    def probe(self, timeout: float) -> str:
        asyncio.run(asyncio.wait_for(self._round_trip(int(timeout * 1000)), timeout))
        return self.read_meta().get("version", "Apache Kafka")

    async def _round_trip(self, request_timeout_ms: int) -> None:
        """Metadata fetch (this node among the live brokers), then an idempotent acks=all
        produce and a consume of that record. In a cluster the health topic has a replica on
        every node, so the first probe to pass is also the one that sees the cluster formed."""
        from aiokafka import (
            AIOKafkaConsumer,
            AIOKafkaProducer,
            TopicPartition,
        )
        from aiokafka.admin import AIOKafkaAdminClient

        ms = max(request_timeout_ms, 1000)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=ms)
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
            live = {int(b["node_id"]) for b in cluster.get("brokers", [])}
            if self.node_id not in live:
                raise RuntimeError(f"node {self.node_id} is not among the live brokers {live}")
            if HEALTH_TOPIC not in await admin.list_topics():
                await _create(admin, [_new_topic(self.settings, HEALTH_TOPIC, 1)])
        finally:
            await admin.close()
        nonce = uuid.uuid4().hex.encode()
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            acks="all",
            enable_idempotence=True,
            request_timeout_ms=ms,
        )
        await producer.start()
        try:
            sent = await producer.send_and_wait(HEALTH_TOPIC, nonce, partition=0)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, enable_auto_commit=False, request_timeout_ms=ms
        )
        await consumer.start()
        try:
            tp = TopicPartition(HEALTH_TOPIC, 0)
            consumer.assign([tp])
            consumer.seek(tp, sent.offset)
            record = await consumer.getone()
            if record.value != nonce:
                raise RuntimeError("consumed a different record than the one produced")
        finally:
            await consumer.stop()

    def after_healthy(self, say: Say) -> None:
        if self.node_id != 1:  # the topics are the cluster's: node 1 creates them
            return
        created = asyncio.run(ensure_topics(self.settings, self.settings.partitions))
        if created:
            say(
                f"{self.name}: created topics {', '.join(created)} "
                f"({self.settings.partitions} partitions, replication factor "
                f"{self.settings.replication_factor}, min.insync.replicas "
                f"{self.settings.min_insync_replicas})"
            )


async def ensure_topics(settings: Settings, partitions: int, prefix: str = "") -> list[str]:
    """Create the registry's topics (named with `prefix`) that do not exist yet, replicated as
    the profile says; return the names created."""
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    specs = topic_specs(
        partitions,
        prefix,
        replication_factor=settings.replication_factor,
        min_insync_replicas=settings.min_insync_replicas,
    )
    admin = AIOKafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=30000
    )
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(spec.name, spec.partitions, spec.replication_factor, topic_configs=spec.config)
            for spec in specs
            if spec.name not in existing
        ]
        if missing:
            await _create(admin, missing)
        return [t.name for t in missing]
    finally:
        await admin.close()


def _new_topic(settings: Settings, name: str, partitions: int) -> Any:
    """A topic outside the registry (the health check's), replicated like the registry's."""
    from aiokafka.admin import NewTopic

    config = {"min.insync.replicas": str(settings.min_insync_replicas)}
    return NewTopic(name, partitions, settings.replication_factor, topic_configs=config)


async def _create(admin: Any, topics: list[Any]) -> None:
    response = await admin.create_topics(topics)
    for error in response.topic_errors:
        name, code = error[0], error[1]
        if code not in (0, TOPIC_ALREADY_EXISTS):
            message = error[2] if len(error) > 2 else ""
            raise RuntimeError(f"creating topic {name} failed: error {code} {message}")
