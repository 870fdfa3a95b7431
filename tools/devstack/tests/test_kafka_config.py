from __future__ import annotations

import base64
from pathlib import Path

from devstack.kafka import (
    cluster_node_properties,
    kafka_version,
    new_cluster_id,
    nodes,
    render_properties,
    server_properties,
)
from devstack.settings import Settings


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


def test_cluster_nodes_are_voters_of_one_static_quorum_with_their_own_ports(
    tmp_path: Path,
) -> None:
    ports = [(39092, 39093), (39094, 39095), (39096, 39097)]
    props = [cluster_node_properties("127.0.0.1", n, ports, tmp_path / f"{n}") for n in (1, 2, 3)]
    voters = "1@127.0.0.1:39093,2@127.0.0.1:39095,3@127.0.0.1:39097"
    assert {p["controller.quorum.voters"] for p in props} == {voters}
    assert [p["node.id"] for p in props] == ["1", "2", "3"]
    assert props[1]["listeners"] == "PLAINTEXT://127.0.0.1:39094,CONTROLLER://127.0.0.1:39095"
    assert len({p["log.dirs"] for p in props}) == 3
    for p in props:
        assert "controller.quorum.bootstrap.servers" not in p
        assert p["default.replication.factor"] == "3"
        assert p["min.insync.replicas"] == "2"
        for topic in ("offsets.topic", "transaction.state.log", "share.coordinator.state.topic"):
            assert p[f"{topic}.replication.factor"] == "3"
        assert p["transaction.state.log.min.isr"] == "2"


def test_the_cluster_profile_has_three_nodes_on_successive_port_pairs() -> None:
    settings = Settings.from_env({"DEVSTACK_PROFILE": "cluster"})
    assert [node.name for node in nodes(settings)] == ["kafka-1", "kafka-2", "kafka-3"]
    assert [node.ports() for node in nodes(settings)] == [
        [39092, 39093],
        [39094, 39095],
        [39096, 39097],
    ]
    assert settings.kafka_bootstrap == "127.0.0.1:39092,127.0.0.1:39094,127.0.0.1:39096"
    assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2)
    default = Settings.from_env({})
    assert [node.name for node in nodes(default)] == ["kafka"]
    assert default.kafka_bootstrap == "127.0.0.1:39092"
    assert (default.replication_factor, default.min_insync_replicas) == (1, 1)
