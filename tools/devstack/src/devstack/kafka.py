"""Apache Kafka 4.x as one KRaft node (broker + controller) from Maven Central jars."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import shutil
import uuid
from pathlib import Path
from typing import Any

from bus.topics import topic_specs

from devstack import cache, process
from devstack.component import Component, Launch, Say
from devstack.paths import assets_dir

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
        "listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "default.replication.factor": "1",
        "min.insync.replicas": "1",
        "auto.create.topics.enable": "false",
        "group.initial.rebalance.delay.ms": "0",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
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


class Kafka(Component):
    name = "kafka"
    probe_timeout = 15.0

    @property
    def port(self) -> int:
        return self.settings.kafka_port

    def ports(self) -> list[int]:
        return [self.settings.kafka_port, self.settings.kafka_controller_port]

    @property
    def bootstrap(self) -> str:
        return f"{self.settings.host}:{self.port}"

    @property
    def log_dir(self) -> Path:
        return self.data_dir / "data"

    @property
    def marker(self) -> str:
        return str(self.data_dir / "server.properties")

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

    def cluster_id(self) -> str:
        id_file = self.data_dir / "cluster.id"
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
            id_file.write_text(existing + "\n")
        return existing

    def launch(self, say: Say) -> Launch:
        java = self.need_tool("java", JAVA_HINT)
        libs = self.libs_dir(say)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        props = self.data_dir / "server.properties"
        props.write_text(
            render_properties(
                server_properties(
                    self.settings.host, self.port, self.settings.kafka_controller_port, self.log_dir
                )
            )
        )
        log4j = self.data_dir / "log4j2.properties"
        log4j.write_text(LOG4J2_PROPERTIES.format(level="INFO"))
        tool_log4j = self.data_dir / "log4j2-tools.properties"
        tool_log4j.write_text(LOG4J2_PROPERTIES.format(level="WARN"))
        cluster_id = self.cluster_id()
        if not (self.log_dir / "meta.properties").exists():
            say(f"{self.name}: formatting storage (cluster id {cluster_id})")
            code, output = process.run_logged(
                [
                    *self.java_cmd(java, libs, tool_log4j),
                    "kafka.tools.StorageTool",
                    "format",
                    "--standalone",
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
        """Metadata fetch, then an idempotent acks=all produce and a consume of that record."""
        from aiokafka import (
            AIOKafkaConsumer,
            AIOKafkaProducer,
            TopicPartition,
        )
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        ms = max(request_timeout_ms, 1000)
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=ms)
        await admin.start()
        try:
            cluster = await admin.describe_cluster()
            if not cluster.get("brokers"):
                raise RuntimeError("metadata lists no broker")
            if HEALTH_TOPIC not in await admin.list_topics():
                await _create(admin, [NewTopic(HEALTH_TOPIC, 1, 1)])
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
        created = asyncio.run(self.ensure_topics(self.settings.partitions))
        if created:
            say(
                f"{self.name}: created topics {', '.join(created)} "
                f"({self.settings.partitions} partitions)"
            )

    async def ensure_topics(self, partitions: int, prefix: str = "") -> list[str]:
        """Create the registry's topics (named with `prefix`) that do not exist yet; return
        the names created."""
        from aiokafka.admin import AIOKafkaAdminClient, NewTopic

        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap, request_timeout_ms=30000)
        await admin.start()
        try:
            existing = set(await admin.list_topics())
            missing = [
                NewTopic(spec.name, spec.partitions, 1, topic_configs=dict(spec.config))
                for spec in topic_specs(partitions, prefix)
                if spec.name not in existing
            ]
            if missing:
                await _create(admin, missing)
            return [t.name for t in missing]
        finally:
            await admin.close()


async def _create(admin: Any, topics: list[Any]) -> None:
    response = await admin.create_topics(topics)
    for error in response.topic_errors:
        name, code = error[0], error[1]
        if code not in (0, TOPIC_ALREADY_EXISTS):
            message = error[2] if len(error) > 2 else ""
            raise RuntimeError(f"creating topic {name} failed: error {code} {message}")
