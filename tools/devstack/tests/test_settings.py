from __future__ import annotations

from pathlib import Path

import pytest
from devstack.errors import DevstackError
from devstack.mongodb import ferretdb_version, server_version
from devstack.s3 import weed_command, weed_ports
from devstack.settings import SERVICES, Settings

SEAWEEDFS_DEFAULT_PORTS = {
    6060, 7333, 8080, 8181, 8333, 8888, 9101, 9333, 9340,
    18080, 18333, 18888, 19333, 19340, 23646, 33646,
}  # fmt: skip


def test_ports_default_and_follow_the_environment() -> None:
    default = Settings.from_env({})
    assert (default.kafka_port, default.kafka_controller_port) == (39092, 39093)
    assert (default.mongodb_port, default.s3_port, default.partitions) == (37017, 38333, 6)
    custom = Settings.from_env({"DEVSTACK_KAFKA_PORT": "40000", "DEVSTACK_KAFKA_PARTITIONS": "3"})
    assert (custom.kafka_port, custom.kafka_controller_port, custom.partitions) == (40000, 40001, 3)


@pytest.mark.parametrize(
    ("name", "value"),
    [("DEVSTACK_S3_PORT", "abc"), ("DEVSTACK_S3_PORT", "-1"), ("DEVSTACK_S3_BACKEND", "ceph")],
)
def test_bad_settings_are_rejected_with_the_variable_named(name: str, value: str) -> None:
    with pytest.raises(ValueError, match=name):
        Settings.from_env({name: value})


def test_every_weed_port_is_set_explicitly_and_none_is_a_seaweedfs_default(tmp_path: Path) -> None:
    ports = weed_ports(38333)
    assert ports["s3"] == 38333
    assert len(set(ports.values())) == len(ports)
    assert not set(ports.values()) & SEAWEEDFS_DEFAULT_PORTS
    for name in ("s3", "master", "volume", "filer", "admin"):
        assert ports[f"{name}.grpc"] == ports[name] + 10000
    cmd = " ".join(weed_command("weed", tmp_path, "127.0.0.1", 38333))
    for flag in ("-webdav=false", "-admin.ui=false", "-s3.port.iceberg=0", "-s3.port.lance=0"):
        assert flag in cmd
    for port in ports.values():
        assert f"={port}" in cmd


def test_ferretdb_reports_its_version_from_our_go_mod() -> None:
    assert ferretdb_version("require github.com/FerretDB/FerretDB v1.24.2\n") == "v1.24.2"
    info = {"version": "7.0.42", "ferretdbVersion": "unknown"}
    assert server_version(info, "v1.24.2") == "MongoDB 7.0.42 (FerretDB v1.24.2)"
    assert server_version({"version": "8.0.4"}) == "MongoDB 8.0.4"


def test_errors_name_the_component_the_reason_and_the_log(tmp_path: Path) -> None:
    log = tmp_path / "kafka.log"
    error = DevstackError("kafka", "port 39092 already in use", log, "line 1\nline 2")
    assert str(error).splitlines() == [
        f"kafka: port 39092 already in use (log: {log})",
        "    line 1",
        "    line 2",
    ]


def test_replicas_are_one_each_by_default_more_in_the_cluster_profile_and_follow_the_variable() -> (
    None
):
    assert dict(Settings.from_env({}).replicas) == dict.fromkeys(SERVICES, 1)
    cluster = Settings.from_env({"DEVSTACK_PROFILE": "cluster"})
    assert dict(cluster.replicas) == {
        "ingress": 2,
        "orchestrator": 3,
        "executor": 3,
        "notifier": 2,
    }
    custom = Settings.from_env({"DEVSTACK_REPLICAS": " orchestrator=3, ingress=2 ,"})
    assert dict(custom.replicas) == {
        "ingress": 2,
        "orchestrator": 3,
        "executor": 1,
        "notifier": 1,
    }


@pytest.mark.parametrize(
    "value", ["gateway=2", "orchestrator", "orchestrator=two", "executor=0", "executor=9"]
)
def test_bad_replica_counts_are_rejected_naming_the_variable(value: str) -> None:
    with pytest.raises(ValueError, match="DEVSTACK_REPLICAS"):
        Settings.from_env({"DEVSTACK_REPLICAS": value})


def test_an_unknown_profile_is_rejected() -> None:
    with pytest.raises(ValueError, match="DEVSTACK_PROFILE must be one of default, cluster"):
        Settings.from_env({"DEVSTACK_PROFILE": "huge"})
