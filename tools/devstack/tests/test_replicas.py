"""Several processes of a service: their names, their ports, the balancer in front of the
ingress replicas."""

from __future__ import annotations

import subprocess
from pathlib import Path

from devstack import apps, balancer

ENV = {"INGRESS_PORT": "38100", "ORCHESTRATOR_OPS_PORT": "38101"}
REPLICAS = {"ingress": 2, "orchestrator": 3, "executor": 1, "notifier": 2}


def test_one_process_of_a_service_is_named_after_it_and_several_are_numbered() -> None:
    names = [i.name for i in apps.instances(REPLICAS)]
    assert names == [
        "ingress-1",
        "ingress-2",
        "orchestrator-1",
        "orchestrator-2",
        "orchestrator-3",
        "executor",
        "notifier-1",
        "notifier-2",
    ]
    assert [i.name for i in apps.instances()] == ["ingress", "orchestrator", "executor", "notifier"]


def test_every_process_listens_on_a_port_of_its_own_and_the_balancer_on_the_api_port() -> None:
    urls = apps.ready_urls(ENV, REPLICAS)
    ports = [int(url.split(":")[2].split("/")[0]) for url in urls.values()]
    assert urls[balancer.NAME] == "http://127.0.0.1:38100/readyz"
    assert urls["ingress-1"] == "http://127.0.0.1:38110/readyz"
    assert urls["ingress-2"] == "http://127.0.0.1:38120/readyz"
    assert [urls[f"orchestrator-{n}"] for n in (1, 2, 3)] == [
        f"http://127.0.0.1:{p}/readyz" for p in (38101, 38111, 38121)
    ]
    assert urls["notifier-2"] == "http://127.0.0.1:38013/readyz"  # the default base, 38003
    assert len(set(ports)) == len(ports)


def test_one_of_each_keeps_the_ports_of_a_single_process() -> None:
    urls = apps.ready_urls(ENV, None)
    assert balancer.NAME not in urls
    assert urls["ingress"] == "http://127.0.0.1:38100/readyz"
    assert urls["orchestrator"] == "http://127.0.0.1:38101/readyz"


def test_haproxy_accepts_the_balancer_configuration(tmp_path: Path) -> None:
    haproxy = balancer.find()
    assert haproxy is not None, f"haproxy not found: install {balancer.HINT}"
    text = apps.balancer_config(ENV, REPLICAS)
    assert "bind 127.0.0.1:38100" in text
    assert "server ingress-1 127.0.0.1:38110 check" in text
    assert "server ingress-2 127.0.0.1:38120 check" in text
    assert "option httpchk GET /readyz" in text
    config = tmp_path / "haproxy.cfg"
    config.write_text(text)
    check = subprocess.run(
        [haproxy, "-c", "-f", str(config)], capture_output=True, text=True, timeout=30
    )
    assert check.returncode == 0, check.stdout + check.stderr
