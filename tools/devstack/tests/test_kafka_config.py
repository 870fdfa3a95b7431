from __future__ import annotations

import base64
from pathlib import Path

from devstack.kafka import kafka_version, new_cluster_id, render_properties, server_properties


def test_server_properties_describe_one_kraft_node_on_loopback(tmp_path: Path) -> None:
    props = server_properties("127.0.0.1", 39092, 39093, tmp_path / "data")
    assert props["process.roles"] == "broker,controller"
    assert props["node.id"] == "1"
    assert props["controller.quorum.bootstrap.servers"] == "127.0.0.1:39093"
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:39092,CONTROLLER://127.0.0.1:39093"
    assert props["auto.create.topics.enable"] == "false"
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["log.dirs"] == str(tmp_path / "data")
    for topic in ("offsets.topic", "transaction.state.log", "share.coordinator.state.topic"):
        assert props[f"{topic}.replication.factor"] == "1"
    assert props["transaction.state.log.min.isr"] == "1"
    assert props["share.coordinator.state.topic.min.isr"] == "1"


def test_rendered_properties_are_one_key_per_line_with_escapes() -> None:
    text = render_properties({"a.b": "x", "path": "C:\\dir", "lead": " space"})
    lines = text.splitlines()
    assert lines[0].startswith("#")
    assert lines[1:] == ["a.b=x", "path=C:\\\\dir", "lead=\\ space"]


def test_cluster_ids_are_kafka_uuids() -> None:
    for _ in range(200):
        cid = new_cluster_id()
        assert len(cid) == 22
        assert not cid.startswith("-")
        assert len(base64.urlsafe_b64decode(cid + "==")) == 16


def test_kafka_version_comes_from_the_core_jar(tmp_path: Path) -> None:
    (tmp_path / "kafka-clients-4.1.1.jar").touch()
    assert kafka_version(tmp_path) == "unknown"
    (tmp_path / "kafka_2.13-4.1.1.jar").touch()
    assert kafka_version(tmp_path) == "4.1.1"
