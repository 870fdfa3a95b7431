"""deploy/k8s: the base and every overlay build with kustomize, every resource they produce
validates (Kubernetes' own schemas, strict; KEDA's and Strimzi's CRDs for theirs), and what
the manifests say agrees with the code: ports and hosts with each service's settings, consumer
groups and topics with what each service's app subscribes to, topics with the registry,
replica ceilings with partition counts.

Offline once `python -m devstack.k8s` has filled devstack's cache (the first run here does it).
"""

from __future__ import annotations

import base64
import copy
import os
import re
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml
from bus.logs import LogSettings
from bus.topics import Topic, topic_name
from devstack import k8s
from executor.settings import ExecutorSettings
from ingress.settings import IngressSettings
from notifier.settings import NotifierSettings
from orchestrator.settings import OrchestratorSettings
from pydantic_settings import BaseSettings

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = sorted(
    p.name for p in (K8S / "overlays").iterdir() if (p / "kustomization.yaml").exists()
)
BUILDS = ["base", *(f"overlays/{name}" for name in OVERLAYS)]

KUBERNETES_VERSION = "1.34"
"""The oldest Kubernetes the manifests are written for (KEDA 2.21 supports 1.34 to 1.36):
schemas of kubernetes-validate, strict (unknown fields are errors)."""

SETTINGS: dict[str, type[BaseSettings]] = {
    "ingress": IngressSettings,
    "orchestrator": OrchestratorSettings,
    "executor": ExecutorSettings,
    "notifier": NotifierSettings,
}
WORKERS = ("orchestrator", "executor", "notifier")
CRD_KINDS = ("ScaledObject", "KafkaTopic")
"""Validated against their CRDs (KEDA's, Strimzi's): kubernetes-validate has no schema for them."""
PLACEHOLDER_REGISTRY = "registry.example.com/"


@dataclass
class Build:
    name: str
    resources: list[dict[str, Any]]
    by_kind: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for resource in self.resources:
            kinds = self.by_kind.setdefault(resource["kind"], {})
            kinds[resource["metadata"]["name"]] = resource

    def kind(self, kind: str) -> dict[str, dict[str, Any]]:
        return self.by_kind.get(kind, {})

    def deployment(self, service: str) -> dict[str, Any]:
        return self.kind("Deployment")[f"workflow-{service}"]

    def container(self, service: str) -> dict[str, Any]:
        containers = self.deployment(service)["spec"]["template"]["spec"]["containers"]
        assert len(containers) == 1
        found: dict[str, Any] = containers[0]
        return found

    def env(self, service: str) -> dict[str, str]:
        """What the service's process finds in its environment: its ConfigMaps and literal
        values (a Secret's values are not known here, only their names: see secret_names)."""
        container = self.container(service)
        env: dict[str, str] = {}
        for source in container.get("envFrom", []):
            assert "configMapRef" in source, source  # secrets are named one by one
            env.update(self.kind("ConfigMap")[source["configMapRef"]["name"]].get("data", {}))
        for var in container.get("env", []):
            if "value" in var:
                env[var["name"]] = var["value"]
        return env

    def secret_names(self, service: str) -> dict[str, dict[str, Any]]:
        return {
            var["name"]: var["valueFrom"]["secretKeyRef"]
            for var in self.container(service).get("env", [])
            if "secretKeyRef" in var.get("valueFrom", {})
        }

    def partitions(self) -> dict[str, int]:
        return {
            t["spec"]["topicName"]: t["spec"]["partitions"]
            for t in self.kind("KafkaTopic").values()
        }


@pytest.fixture(scope="module")
def tools() -> k8s.K8sTools:
    try:
        return k8s.ensure()
    except k8s.ToolError as exc:
        pytest.fail(f"the deploy/k8s tools are not available (python -m devstack.k8s): {exc}")


def kustomize_build(tools: k8s.K8sTools, path: str) -> Build:
    out = subprocess.run(
        [str(tools.kustomize), "build", str(K8S / path)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, f"kustomize build {path} failed:\n{out.stderr}"
    return Build(path, [doc for doc in yaml.safe_load_all(out.stdout) if doc])


@pytest.fixture(scope="module", params=BUILDS)
def build(request: pytest.FixtureRequest, tools: k8s.K8sTools) -> Build:
    return kustomize_build(tools, request.param)


@pytest.fixture
def settings_of(build: Build, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """Each service's settings as its pod would read them: only the manifests' environment
    (nothing of this test process's), secrets left at their defaults."""
    result: dict[str, Any] = {}
    for service, model in SETTINGS.items():
        with monkeypatch.context() as env:
            for name in list(os.environ):
                if name.lower() in model.model_fields:
                    env.delenv(name)
            for name, value in build.env(service).items():
                env.setenv(name, value)
            result[service] = model()
    return result


def setting_names(model: type[BaseSettings]) -> set[str]:
    return {name.upper() for name in model.model_fields} | {
        name.upper() for name in LogSettings.model_fields
    }


# --- builds and schemas ---------------------------------------------------------------------


def test_base_and_every_overlay_build_with_kustomize(tools: k8s.K8sTools) -> None:
    assert "production" in OVERLAYS
    for path in BUILDS:
        built = kustomize_build(tools, path)
        assert set(built.kind("Deployment")) == {f"workflow-{s}" for s in SETTINGS}


def test_every_builtin_resource_validates_against_the_kubernetes_schemas_strictly(
    build: Build,
) -> None:
    failures = []
    for resource in build.resources:
        if resource["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(resource, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            failures.append(
                f"{resource['kind']}/{resource['metadata']['name']}: {where}: {exc.message}"
            )
    assert not failures, f"{build.name}: " + "; ".join(failures)


def crd_schema(crd_file: Path, resource: dict[str, Any]) -> dict[str, Any]:
    """The resource's version of the CRD's schema, made strict like `kubectl apply`'s field
    validation: an object that lists its properties accepts no others."""
    crd = yaml.safe_load(crd_file.read_text())
    group, _, version = resource["apiVersion"].rpartition("/")
    assert (crd["spec"]["group"], crd["spec"]["names"]["kind"]) == (group, resource["kind"])
    served = {v["name"]: v for v in crd["spec"]["versions"] if v["served"]}
    assert version in served, f"{resource['apiVersion']} is not served; served: {list(served)}"
    schema: dict[str, Any] = copy.deepcopy(served[version]["schema"]["openAPIV3Schema"])

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schema)
    return schema


def test_scaledobjects_and_kafkatopics_validate_against_their_crds(
    build: Build, tools: k8s.K8sTools
) -> None:
    files = {
        "ScaledObject": tools.keda_dir / "keda.sh_scaledobjects.yaml",
        "KafkaTopic": tools.kafkatopic_crd,
    }
    checked = 0
    for resource in build.resources:
        if resource["kind"] not in files:
            continue
        schema = crd_schema(files[resource["kind"]], resource)
        errors = sorted(
            jsonschema.Draft7Validator(schema).iter_errors(resource), key=lambda e: list(e.path)
        )
        assert not errors, (
            f"{build.name}: {resource['kind']}/{resource['metadata']['name']}: "
            + "; ".join(f"{'.'.join(map(str, e.path))}: {e.message}" for e in errors)
        )
        checked += 1
    assert checked == len(build.kind("ScaledObject")) + len(build.kind("KafkaTopic")) > 0


@dataclass(frozen=True)
class ScalerKey:
    name: str
    go_type: str
    from_env: bool
    required: bool
    enum: tuple[str, ...]
    deprecated: bool


def scaler_keys(source: Path) -> dict[str, ScalerKey]:
    """The trigger metadata a KEDA scaler reads, from its struct's `keda:"…"` tags."""
    keys: dict[str, ScalerKey] = {}
    for go_type, tag in re.findall(
        r"^\s*\w+\s+([\w\[\].]+)\s+`keda:\"([^\"]+)\"", source.read_text(), re.M
    ):
        parts = [p.strip() for p in tag.split(",")]
        opts = dict(p.split("=", 1) if "=" in p else (p, "") for p in parts)
        order = opts.get("order", "").split(";")
        if "triggerMetadata" not in order:
            continue
        keys[opts["name"]] = ScalerKey(
            name=opts["name"],
            go_type=go_type,
            from_env="resolvedEnv" in order,
            required="optional" not in opts and "default" not in opts,
            enum=tuple(opts["enum"].split(";")) if "enum" in opts else (),
            deprecated="deprecated" in opts,
        )
    return keys


def test_every_trigger_sets_only_metadata_its_keda_scaler_reads(
    build: Build, tools: k8s.K8sTools
) -> None:
    scalers = {
        "kafka": scaler_keys(tools.keda_dir / "kafka_scaler.go"),
        "cpu": scaler_keys(tools.keda_dir / "cpu_memory_scaler.go"),
    }
    assert {"bootstrapServers", "consumerGroup", "topic", "lagThreshold"} <= set(scalers["kafka"])
    for scaled in build.kind("ScaledObject").values():
        for trigger in scaled["spec"]["triggers"]:
            where = f"{build.name}: {scaled['metadata']['name']}: {trigger['type']}"
            keys = scalers[trigger["type"]]
            metadata: dict[str, str] = trigger["metadata"]
            for name, value in metadata.items():
                key = keys.get(name.removesuffix("FromEnv"))
                assert key is not None, f"{where}: KEDA's {trigger['type']} scaler reads no {name}"
                assert not key.deprecated, f"{where}: {name} is deprecated"
                if name.endswith("FromEnv"):
                    assert key.from_env, f"{where}: {name}: {key.name} is not read from env"
                    continue
                if key.enum:
                    assert value in key.enum, f"{where}: {name}={value!r} not in {key.enum}"
                if key.go_type == "bool":
                    assert value in ("true", "false"), f"{where}: {name}={value!r}"
                if key.go_type.startswith("int"):
                    assert value.isdigit(), f"{where}: {name}={value!r}"
            for key in keys.values():
                if key.required:
                    assert key.name in metadata or f"{key.name}FromEnv" in metadata, (
                        f"{where}: KEDA's scaler needs {key.name}"
                    )


# --- the Deployments ------------------------------------------------------------------------


def test_each_deployment_requests_cpu_and_memory_and_limits_memory(build: Build) -> None:
    for service in SETTINGS:
        resources = build.container(service)["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]), service
        assert "memory" in resources["limits"], service


def test_each_deployment_probes_its_health_endpoints_on_the_port_it_listens_on(
    build: Build, settings_of: dict[str, Any]
) -> None:
    for service, settings in settings_of.items():
        container = build.container(service)
        port_name, path_ready, path_live = ("http", "/readyz", "/healthz")
        if service in WORKERS:
            port_name = "ops"
            listens = getattr(settings, f"{service}_ops_port")
            host = settings.ops_host
        else:
            listens = settings.ingress_port
            host = settings.ingress_host
        # The kubelet probes the pod's IP: loopback (the default) would never answer it.
        assert host == "0.0.0.0", f"{build.name}: {service} listens on {host}"
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        assert ports[port_name] == listens, (service, ports, listens)
        for probe, path in (
            ("readinessProbe", path_ready),
            ("livenessProbe", path_live),
            ("startupProbe", path_live),
        ):
            get = container[probe]["httpGet"]
            assert (get["path"], ports.get(get["port"], get["port"])) == (path, listens), (
                f"{build.name}: {service} {probe}"
            )


def test_each_deployment_is_selected_by_one_pdb_and_its_service(build: Build) -> None:
    for service in SETTINGS:
        labels = build.deployment(service)["spec"]["template"]["metadata"]["labels"]
        pdbs = [
            pdb
            for pdb in build.kind("PodDisruptionBudget").values()
            if pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(pdbs) == 1, f"{build.name}: {service}: {len(pdbs)} PDBs"
        services = [
            svc
            for svc in build.kind("Service").values()
            if svc["spec"]["selector"].items() <= labels.items()
        ]
        assert len(services) == 1, f"{build.name}: {service}: {len(services)} Services"
        ports = {p["name"] for p in build.container(service)["ports"]}
        assert {p["targetPort"] for p in services[0]["spec"]["ports"]} <= ports


def test_each_deployment_is_scaled_by_one_scaledobject_which_owns_its_replica_count(
    build: Build,
) -> None:
    targets = [s["spec"]["scaleTargetRef"] for s in build.kind("ScaledObject").values()]
    assert all(t.get("kind", "Deployment") == "Deployment" for t in targets), targets
    assert sorted(t["name"] for t in targets) == sorted(build.kind("Deployment")), (
        f"{build.name}: ScaledObjects target {targets}"
    )
    for name, deployment in build.kind("Deployment").items():
        # A `replicas` here would reset KEDA's count on every apply.
        assert "replicas" not in deployment["spec"], f"{build.name}: {name} sets replicas"


def test_every_variable_the_manifests_set_is_a_setting_the_service_reads(build: Build) -> None:
    every = set().union(*(setting_names(model) for model in SETTINGS.values()))
    for config in build.kind("ConfigMap").values():
        unknown = set(config.get("data", {})) - every
        assert not unknown, (
            f"{build.name}: {config['metadata']['name']}: no service reads {unknown}"
        )
    for service, model in SETTINGS.items():
        names = {var["name"] for var in build.container(service).get("env", [])}
        unknown = names - setting_names(model)
        assert not unknown, f"{build.name}: {service} does not read {unknown}"


def test_secrets_are_named_one_by_one_from_one_secret_and_required_ones_are_placeholders(
    build: Build,
) -> None:
    for service in SETTINGS:
        for name, ref in build.secret_names(service).items():
            assert ref["name"] == "workflow-secrets", (service, ref)
            assert ref["key"] == name, (service, ref)
    secrets = build.kind("Secret")
    if build.name == "base":
        # Placeholders only, and every key a service needs (not `optional`) is among them.
        data = {
            k: base64.b64decode(v).decode() for k, v in secrets["workflow-secrets"]["data"].items()
        }
        assert all("CHANGE-ME" in value for value in data.values()), data.keys()
        for service in SETTINGS:
            for name, ref in build.secret_names(service).items():
                assert ref.get("optional") or name in data, (service, name)
    else:
        # Made outside git; an apply must not overwrite it.
        assert not secrets, f"{build.name} carries a Secret: {list(secrets)}"


# --- scaling and topics ---------------------------------------------------------------------


def test_each_worker_scales_on_the_lag_of_exactly_the_groups_and_topics_its_app_consumes(
    build: Build, settings_of: dict[str, Any]
) -> None:
    from executor.app import create_app as executor_app
    from notifier.app import create_app as notifier_app
    from orchestrator.app import create_app as orchestrator_app

    apps = {"orchestrator": orchestrator_app, "executor": executor_app, "notifier": notifier_app}
    scaled = {s["spec"]["scaleTargetRef"]["name"]: s for s in build.kind("ScaledObject").values()}
    for service, create_app in apps.items():
        app = create_app(settings_of[service])
        consumed = {
            (sub.group_id, topic.name if hasattr(topic, "name") else str(topic))
            for sub in app.broker.subscribers
            if sub.group_id  # a groupless consumer (the executor's cancels) hears everything
            for topic in sub.topics
        }
        triggers = scaled[f"workflow-{service}"]["spec"]["triggers"]
        assert {t["type"] for t in triggers} == {"kafka"}, service
        lag = {(t["metadata"]["consumerGroup"], t["metadata"]["topic"]) for t in triggers}
        assert lag == consumed, f"{build.name}: {service}"
        for trigger in triggers:
            source = trigger["metadata"]["bootstrapServersFromEnv"]
            assert build.env(service)[source] == settings_of[service].kafka_bootstrap_servers


def test_no_consumer_may_scale_past_its_topics_partitions(build: Build) -> None:
    partitions = build.partitions()
    for scaled in build.kind("ScaledObject").values():
        topics = [
            t["metadata"]["topic"] for t in scaled["spec"]["triggers"] if t["type"] == "kafka"
        ]
        for topic in topics:
            assert scaled["spec"]["maxReplicaCount"] <= partitions[topic], (
                f"{build.name}: {scaled['metadata']['name']} may scale to "
                f"{scaled['spec']['maxReplicaCount']} consumers of {topic} "
                f"({partitions[topic]} partitions)"
            )
        assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]


def test_ingress_scales_on_cpu_utilisation_of_its_request(build: Build) -> None:
    scaled = build.kind("ScaledObject")["workflow-ingress"]
    assert scaled["spec"]["scaleTargetRef"]["name"] == "workflow-ingress"
    (trigger,) = scaled["spec"]["triggers"]
    assert (trigger["type"], trigger["metricType"]) == ("cpu", "Utilization")
    assert 0 < int(trigger["metadata"]["value"]) <= 100
    assert "cpu" in build.container("ingress")["resources"]["requests"]
    assert scaled["spec"]["minReplicaCount"] >= 2  # a drain never leaves the API without a pod


def test_topics_are_the_registry_co_partitioned_with_three_replicas_and_two_in_sync(
    build: Build, settings_of: dict[str, Any]
) -> None:
    prefix: str = settings_of["orchestrator"].kafka_topic_prefix
    topics = build.kind("KafkaTopic").values()
    assert {t["spec"]["topicName"] for t in topics} == {topic_name(t, prefix) for t in Topic}
    assert len({t["spec"]["partitions"] for t in topics}) == 1, "topics must be co-partitioned"
    for topic in topics:
        assert topic["spec"]["replicas"] == 3, topic["metadata"]["name"]
        assert topic["spec"]["config"]["min.insync.replicas"] == "2", topic["metadata"]["name"]
        assert topic["metadata"]["labels"]["strimzi.io/cluster"], topic["metadata"]["name"]


def test_production_runs_released_images_in_its_namespace_with_topics_beside_kafka(
    tools: k8s.K8sTools,
) -> None:
    built = kustomize_build(tools, "overlays/production")
    for service in SETTINGS:
        image = built.container(service)["image"]
        assert not image.startswith(PLACEHOLDER_REGISTRY), image
        assert ":" in image, image
        assert not image.endswith(":latest"), image
        assert built.deployment(service)["metadata"]["namespace"] == "workflow"
    for topic in built.kind("KafkaTopic").values():
        assert topic["metadata"]["namespace"] == "kafka"
