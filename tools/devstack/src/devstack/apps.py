"""The four services as local processes: `run` in the foreground (run events as text, every
line as JSON in the log files), or
`start`/`stop` detached, plus the dev tenant's key and the demo workflow.

Each service runs as many processes as `DEVSTACK_REPLICAS` (and the profile) say: one is
named after its service (`orchestrator`, log `orchestrator.log`), several are
`<service>-<n>` (log `<service>-<n>.log`) on ports of their own (`instance_env`), and several
ingress replicas sit behind HAProxy on the API port (devstack.balancer)."""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from devstack import balancer, envfile, process
from devstack.component import Say
from devstack.settings import SERVICES, Settings

INGRESS_PORT = 38000
PORT_STEP = 10
"""Replica n of a worker takes its ops port + PORT_STEP * (n - 1); ingress replica n behind
the balancer takes the API port + PORT_STEP * n."""
DEV_TENANT = "dev"
DEMO_WORKFLOW = "studio-portrait"
OPS_PORTS = {"orchestrator": 38001, "executor": 38002, "notifier": 38003}
"""Each worker's ops port (`/healthz`, `/readyz`, `/metrics` on loopback, see bus.ops):
ORCHESTRATOR_OPS_PORT, EXECUTOR_OPS_PORT, NOTIFIER_OPS_PORT."""
COLORS = {"ingress": 36, "orchestrator": 35, "executor": 33, "notifier": 32}
RECEIVER_PORTS = (28000, 28999)
"""The loopback ports a local stack's webhooks and `http.request` nodes may reach: where test
receivers listen, away from the stack's own ports (Kafka, MongoDB, PostgreSQL, S3, ingress)
and below the kernel's ephemeral range."""
LOOPBACK_RECEIVERS = f"loopback:{RECEIVER_PORTS[0]}-{RECEIVER_PORTS[1]}"


class AppError(RuntimeError):
    pass


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[4]


@dataclass(frozen=True)
class Instance:
    """Process `index` (1-based) of `count` of one service."""

    service: str
    index: int = 1
    count: int = 1

    @property
    def name(self) -> str:
        """Its log's, pid file's and (in tests) process's name."""
        return self.service if self.count == 1 else f"{self.service}-{self.index}"


def instances(replicas: Mapping[str, int] | None = None) -> list[Instance]:
    """Every process of every service, `replicas` (default one each) per service."""
    counts = replicas or {}
    return [
        Instance(service, n, counts.get(service, 1))
        for service in SERVICES
        for n in range(1, counts.get(service, 1) + 1)
    ]


def balanced(replicas: Mapping[str, int] | None) -> bool:
    """Whether the API port is the load balancer's (several ingress replicas)."""
    return bool(replicas) and (replicas or {}).get("ingress", 1) > 1


def instance_env(env: Mapping[str, str], instance: Instance) -> dict[str, str]:
    """`env` (the services' environment) with `instance`'s own ports."""
    out = dict(env)
    if instance.service == "ingress":
        if instance.count > 1:  # the API port is the balancer's
            api = int(env.get("INGRESS_PORT", INGRESS_PORT))
            out["INGRESS_PORT"] = str(api + PORT_STEP * instance.index)
    else:
        var = ops_port_var(instance.service)
        base = int(env.get(var, OPS_PORTS[instance.service]))
        out[var] = str(base + PORT_STEP * (instance.index - 1))
    return out


def balancer_config(env: Mapping[str, str], replicas: Mapping[str, int]) -> str:
    """HAProxy's configuration: the API port (`INGRESS_PORT` of `env`) in front of every
    ingress replica."""
    ingress = [i for i in instances(replicas) if i.service == "ingress"]
    backends = [(i.name, int(instance_env(env, i)["INGRESS_PORT"])) for i in ingress]
    return balancer.config("127.0.0.1", int(env.get("INGRESS_PORT", INGRESS_PORT)), backends)


def _haproxy() -> str:
    found = balancer.find()
    if found is None:
        raise AppError(f"haproxy not found; install {balancer.HINT}")
    return found


def service_env(settings: Settings) -> dict[str, str]:
    env = dict(os.environ)
    env.update(envfile.read_env_file(settings.env_file))
    env.setdefault("INGRESS_PORT", str(INGRESS_PORT))
    for name, port in OPS_PORTS.items():
        env.setdefault(ops_port_var(name), str(port))
    # A local stack delivers webhooks to receivers on this machine (plain http, loopback),
    # on the receivers' ports only: never to the stack's own servers.
    env.setdefault("EGRESS_ALLOW", LOOPBACK_RECEIVERS)
    env.setdefault("EGRESS_ALLOW_HTTP", "true")
    env.setdefault("HTTP_NODE_ALLOW", LOOPBACK_RECEIVERS)
    env.setdefault("HTTP_NODE_ALLOW_HTTP", "true")
    # Model providers (executor) reach the same receivers: a test's stand-in provider.
    env.setdefault("PROVIDER_EGRESS_ALLOW", LOOPBACK_RECEIVERS)
    env.setdefault("PROVIDER_EGRESS_ALLOW_HTTP", "true")
    if not env.get(PROVIDER_KEYS_VAR):
        env[PROVIDER_KEYS_VAR] = ensure_provider_keys(settings)
    env["PYTHONUNBUFFERED"] = "1"
    return env


PROVIDER_KEYS_VAR = "PROVIDER_CREDENTIALS_KEYS"


def new_fernet_key() -> str:
    """A Fernet key (32 random bytes, url-safe base64), as `Fernet.generate_key()` makes."""
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()


def ensure_provider_keys(settings: Settings) -> str:
    """The stack's `PROVIDER_CREDENTIALS_KEYS` (the key that encrypts tenants' provider
    credentials), made once and kept in .stack/env like the admin key, so credentials stored
    by one start still decrypt at the next."""
    recorded = envfile.read_env_file(settings.env_file).get(PROVIDER_KEYS_VAR)
    if recorded:
        return recorded
    key = new_fernet_key()
    envfile.write_env(settings.env_file, {PROVIDER_KEYS_VAR: key})
    # Of two first starts at once, the file keeps one key: use that one.
    return envfile.read_env_file(settings.env_file).get(PROVIDER_KEYS_VAR) or key


def ops_port_var(name: str) -> str:
    return f"{name.upper()}_OPS_PORT"


def ready_url(env: Mapping[str, str], name: str) -> str:
    """Where service `name`, started with `env`, answers `/readyz`: the ingress on its API
    port, a worker on its ops port."""
    if name == "ingress":
        return f"http://127.0.0.1:{env.get('INGRESS_PORT', INGRESS_PORT)}/readyz"
    return f"http://127.0.0.1:{env.get(ops_port_var(name), OPS_PORTS[name])}/readyz"


def ensure_dev_key(settings: Settings) -> dict[str, str]:
    """A working API key for the dev tenant, recorded in .stack/env with the API's URL, and the
    admin key of the admin API (`ADMIN_API_KEY`, made once). The dev tenant has no rate limits
    or quotas, so `make bench` and experiments are never throttled."""
    env = service_env(settings)
    recorded = envfile.read_env_file(settings.env_file)
    current = recorded.get("WORKFLOW_API_KEY", "")
    admin_key = recorded.get("ADMIN_API_KEY") or "wfadmin_" + secrets.token_urlsafe(32)
    cmd = [sys.executable, "-m", "ingress.admin", "create-key", "--tenant", DEV_TENANT]
    cmd += ["--limits", "unlimited"]
    if current:
        cmd += ["--keep", current]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=60, check=False)
    if out.returncode != 0:
        raise AppError(f"creating the dev API key failed:\n{out.stderr[-2000:]}")
    values = {
        "WORKFLOW_API_URL": f"http://127.0.0.1:{env['INGRESS_PORT']}",
        "WORKFLOW_API_KEY": out.stdout.strip().splitlines()[-1],
        "ADMIN_API_KEY": admin_key,
    }
    envfile.write_env(settings.env_file, values)
    return values


def _pid_file(settings: Settings, name: str) -> Path:
    return settings.state_dir / f"{name}.pid"


def _log_file(settings: Settings, name: str) -> Path:
    return settings.logs_dir / f"{name}.log"


def _command(service: str) -> list[str]:
    return [sys.executable, "-m", service]


def _balancer_config_file(settings: Settings) -> Path:
    return settings.state_dir / balancer.NAME / "haproxy.cfg"


def running(settings: Settings) -> dict[str, int]:
    """The processes `start` left running, by name: the balancer first, then every service
    instance (whatever replica counts they were started with)."""
    found: dict[str, int] = {}
    config = _balancer_config_file(settings)
    pid = process.owned_pid(_pid_file(settings, balancer.NAME), str(config))
    if pid is not None:
        found[balancer.NAME] = pid
    for service in SERVICES:
        pid_files = [_pid_file(settings, service)]
        pid_files += sorted(settings.state_dir.glob(f"{service}-*.pid"))
        for pid_file in pid_files:
            pid = process.owned_pid(pid_file, f"-m {service}")
            if pid is not None:
                found[pid_file.stem] = pid
    return found


def _wait_ready(settings: Settings, name: str, url: str, pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    log = _log_file(settings, name)
    while time.monotonic() < deadline:
        if not process.pid_alive(pid):
            raise AppError(f"{name}: exited during start (log: {log})\n{process.tail(log, 30)}")
        if _http_ok(url):
            return
        time.sleep(0.2)
    raise AppError(f"{name}: not ready within {timeout:.0f} s (log: {log})\n{process.tail(log)}")


def _ready_or_again(
    settings: Settings,
    instance: Instance,
    pid: int,
    since: int,
    env: Mapping[str, str],
    timeout: float,
    say: Say,
) -> int:
    """Wait until the instance (started with `env`) is ready; start it again if it exited
    because a passing connection held its port (`process.lost_a_port`; `since`: where its
    output starts in its log). Returns the ready process's pid."""
    name = instance.name
    log = _log_file(settings, name)
    url = ready_url(env, instance.service)
    for attempt in range(1, process.PORT_RACE_TRIES + 1):
        try:
            _wait_ready(settings, name, url, pid, timeout)
            return pid
        except AppError:
            if attempt == process.PORT_RACE_TRIES or not process.lost_a_port(pid, log, since):
                raise
        say(f"{name}: its port was taken by a passing connection; starting it again")
        time.sleep(attempt)
        since = process.log_size(log)
        pid = process.spawn(
            _command(instance.service), log, _pid_file(settings, name), env=dict(env)
        )
    raise AssertionError("unreachable")


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def start(settings: Settings, say: Say, timeout: float = 60.0) -> None:
    """Start the service instances that are not running (detached), as many of each as the
    settings' replicas, and the balancer when there are several ingress replicas; wait until
    each is ready. Instances of other replica counts are stopped first (they hold the ports)."""
    ensure_dev_key(settings)
    env = service_env(settings)
    plan = instances(settings.replicas)
    wanted = {i.name for i in plan} | ({balancer.NAME} if balanced(settings.replicas) else set())
    already = running(settings)
    for name, pid in already.items():
        if name not in wanted:
            process.stop(pid, 90)
            _pid_file(settings, name).unlink(missing_ok=True)
            say(f"{name}: stopped (not in this profile's DEVSTACK_REPLICAS)")
    started: dict[Instance, int] = {}
    since: dict[Instance, int] = {}
    for instance in plan:
        name = instance.name
        if name in already:
            say(f"{name}: already running (pid {already[name]})")
            continue
        log = _log_file(settings, name)
        since[instance] = process.log_size(log)
        started[instance] = process.spawn(
            _command(instance.service),
            log,
            _pid_file(settings, name),
            env=instance_env(env, instance),
        )
    for instance, pid in started.items():
        t0 = time.monotonic()
        own_env = instance_env(env, instance)
        pid = _ready_or_again(settings, instance, pid, since[instance], own_env, timeout, say)
        say(f"{instance.name}: ready (pid {pid}, {time.monotonic() - t0:.1f} s)")
    if balanced(settings.replicas):
        _start_balancer(settings, env, already.get(balancer.NAME), timeout, say)
    register_demo(settings)
    say(f"logs: {settings.logs_dir}/<service>.log, one JSON object a line (README: Logs)")
    env = service_env(settings)
    say(f"demo workflow '{DEMO_WORKFLOW}' registered; try:\n{curl_line(settings)}")
    say(f"or with the CLI:\n{cli_line(env['WORKFLOW_API_URL'], env['WORKFLOW_API_KEY'])}")
    say(openapi_line(env["WORKFLOW_API_URL"]).strip())


def _start_balancer(
    settings: Settings, env: Mapping[str, str], pid: int | None, timeout: float, say: Say
) -> None:
    """HAProxy on the API port with this start's configuration (restarted when it changed);
    returns once the API answers /readyz through it."""
    config_file = _balancer_config_file(settings)
    config = balancer_config(env, settings.replicas)
    if pid is not None and config_file.exists() and config_file.read_text() == config:
        say(f"{balancer.NAME}: already running (pid {pid})")
        return
    if pid is not None:
        process.stop(pid, 10)
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(config)
    t0 = time.monotonic()
    log = _log_file(settings, balancer.NAME)
    pid = process.spawn(
        balancer.command(_haproxy(), config_file), log, _pid_file(settings, balancer.NAME)
    )
    url = f"http://127.0.0.1:{env['INGRESS_PORT']}/readyz"
    _wait_ready(settings, balancer.NAME, url, pid, timeout)
    say(
        f"{balancer.NAME}: HAProxy on port {env['INGRESS_PORT']} in front of "
        f"{settings.replicas['ingress']} ingress replicas, ready "
        f"(pid {pid}, {time.monotonic() - t0:.1f} s)"
    )


def stop(settings: Settings, say: Say, timeout: float = 90.0) -> None:
    for name, pid in running(settings).items():
        clean = process.stop(pid, timeout)
        say(f"{name}: stopped" + ("" if clean else " (killed after timeout)"))
        _pid_file(settings, name).unlink(missing_ok=True)


def register_demo(settings: Settings) -> dict[str, str]:
    env = service_env(settings)
    url = f"{env['WORKFLOW_API_URL']}/v1/workflows/{DEMO_WORKFLOW}"
    body = (_repo_root() / "examples" / f"{DEMO_WORKFLOW}.json").read_bytes()
    request = urllib.request.Request(
        url,
        data=body,
        method="PUT",
        headers={
            "Authorization": f"Bearer {env['WORKFLOW_API_KEY']}",
            "Content-Type": "application/json",
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            info: dict[str, str] = json.loads(response.read())
    except urllib.error.HTTPError as exc:
        raise AppError(f"registering the demo workflow failed: {exc.read().decode()}") from exc
    return info


def curl_line(settings: Settings) -> str:
    env = service_env(settings)
    body = json.dumps(
        {"inputs": {"prompt": "Studio portrait, warm lighting", "options": {"quality": "high"}}}
    )
    return (
        f"curl -sS -X POST {env['WORKFLOW_API_URL']}/v1/workflows/{DEMO_WORKFLOW}/run "
        f"-H 'Authorization: Bearer {env['WORKFLOW_API_KEY']}' "
        f"-H 'Content-Type: application/json' -d '{body}'"
    )


def cli_line(api: str, key: str) -> str:
    """The same run from the `workflow` command (clients/python), waiting with its steps shown
    live and saving the images outside the repository."""
    return (
        f"WORKFLOW_API_URL={api} WORKFLOW_API_KEY={key} "
        f"{_repo_root() / '.venv' / 'bin' / 'workflow'} run {DEMO_WORKFLOW} "
        "-i prompt='Studio portrait, warm lighting' -i options.quality=high "
        f"--download /tmp/{DEMO_WORKFLOW}"
    )


def console_line(api: str) -> str:
    """The run console the ingress serves (runs, a run's timeline, workflows and their forms);
    it asks for the API key once per browser tab."""
    return f"  Console:  {api}/console  (in a browser; sign in with the API key below)"


def openapi_line(api: str) -> str:
    """Where a client generator finds the demo workflow's own OpenAPI document (typed inputs,
    named outputs); like every route it needs the key."""
    return (
        f"  OpenAPI of '{DEMO_WORKFLOW}' (for client generators, with the key): "
        f"{api}/v1/workflows/{DEMO_WORKFLOW}/openapi.json"
    )


SHOW_ALL = "DEVSTACK_SHOW_ALL"
"""Set (to anything) for `make run` to print every INFO line of the services, not only the
run events and the warnings; the log files always have every line."""
_LEVELS = {"DEBUG": 10, "INFO": 20, "WARNING": 30, "ERROR": 40, "CRITICAL": 50}


def terminal_line(name: str, raw: str, *, show_all: bool = False) -> str | None:
    """What `make run` prints for one line a service wrote (None: nothing). A service writes
    JSON (bus.logs); a person reads the run events (lines with an `event` field: run started,
    step done, run completed with its duration, webhook attempts) and every warning or error,
    as text. A line that is not JSON (a crash before logging was set up) is shown as it is."""
    text = raw.rstrip("\n")
    try:
        fields = json.loads(text)
    except ValueError:
        fields = None
    if not isinstance(fields, dict):
        return text if text.strip() else None
    level = str(fields.get("level", "INFO"))
    if not show_all and _LEVELS.get(level, 20) < 30 and "event" not in fields:
        return None
    clock = str(fields.get("time", ""))[11:23]
    logger = str(fields.get("logger", ""))
    who = "" if logger == name else f"{logger}: "
    line = f"{clock} {'' if level == 'INFO' else level + ' '}{who}{fields.get('message', '')}"
    context = " ".join(f"{k}={fields[k]}" for k in ("runId", "tenantId") if fields.get(k))
    if context:
        line += f"  ({context})"
    if fields.get("exception"):
        line += "\n" + str(fields["exception"])
    return line


def _pump(
    name: str,
    service: str,
    stream: object,
    out: BinaryIO,
    lock: threading.Lock,
    show_all: bool,
) -> None:
    """Every line into the instance's log file as written (JSON), the readable ones to the
    terminal as text."""
    color = COLORS.get(service, 0)
    prefix = f"\033[{color}m{name:>12} |\033[0m " if sys.stdout.isatty() else f"{name:>12} | "
    for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
        out.write(raw)
        out.flush()
        line = terminal_line(service, raw.decode(errors="replace"), show_all=show_all)
        if line is None:
            continue
        with lock:
            sys.stdout.write("".join(prefix + part + "\n" for part in line.split("\n")))
            sys.stdout.flush()


def ready_urls(env: Mapping[str, str], replicas: Mapping[str, int] | None) -> dict[str, str]:
    """Where each instance started with `env` and `replicas` answers /readyz, by name (the
    balancer's last: the API port, ready once a replica behind it is)."""
    urls = {i.name: ready_url(instance_env(env, i), i.service) for i in instances(replicas)}
    if balanced(replicas):
        urls[balancer.NAME] = ready_url(env, "ingress")
    return urls


def _await_all(
    settings: Settings,
    env: Mapping[str, str],
    procs: Mapping[str, subprocess.Popen[bytes]],
    stopping: threading.Event,
    say: Say,
    timeout: float = 60.0,
) -> bool:
    """Until every instance answers /readyz (`ready_urls`), saying so for each; False when
    one exits, Ctrl-C is pressed or time runs out."""
    t0 = time.monotonic()
    urls = ready_urls(env, settings.replicas)
    waiting = list(urls)
    while waiting:
        for name in list(waiting):
            if _http_ok(urls[name]):
                waiting.remove(name)
                say(f"{name:>12} | ready ({time.monotonic() - t0:.1f} s)")
        dead = [n for n, p in procs.items() if p.poll() is not None]
        if dead:
            say(f"{', '.join(dead)} exited during start; see {_log_file(settings, dead[0])}")
            return False
        if stopping.is_set():
            return False
        if waiting and time.monotonic() - t0 > timeout:
            say(f"{', '.join(waiting)} not ready within {timeout:.0f} s; stopping")
            return False
        if waiting:
            stopping.wait(0.2)
    return True


def run_foreground(settings: Settings, say: Say, extra_env: Mapping[str, str] | None = None) -> int:
    """All four services in this terminal: their run events and warnings as text, every line
    as JSON in .stack/logs/<name>.log; the banner once all are ready. Ctrl-C stops them."""
    if running(settings):
        raise AppError("services already run detached; `make down` first or use them as they are")
    ensure_dev_key(settings)
    env = service_env(settings)
    env.update(extra_env or {})
    show_all = bool(env.get(SHOW_ALL))
    lock = threading.Lock()
    procs: dict[str, subprocess.Popen[bytes]] = {}
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    files: dict[str, BinaryIO] = {}
    pumps: list[threading.Thread] = []
    plan = instances(settings.replicas)
    commands = {i.name: (i.service, _command(i.service), instance_env(env, i)) for i in plan}
    if balanced(settings.replicas):
        config_file = _balancer_config_file(settings)
        config_file.parent.mkdir(parents=True, exist_ok=True)
        config_file.write_text(balancer_config(env, settings.replicas))
        commands[balancer.NAME] = (
            balancer.NAME,
            balancer.command(_haproxy(), config_file),
            dict(env),
        )
    say(f"starting {', '.join(commands)} (every line, as JSON: {settings.logs_dir}/<name>.log)")
    for name, (service, cmd, own_env) in commands.items():
        files[name] = _log_file(settings, name).open("ab")
        proc = subprocess.Popen(
            cmd,
            env=own_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs[name] = proc
        pump = threading.Thread(
            target=_pump,
            args=(name, service, proc.stdout, files[name], lock, show_all),
            daemon=True,
        )
        pump.start()
        pumps.append(pump)

    stopping = threading.Event()

    def request_stop(*_: object) -> None:
        stopping.set()

    def locked_say(message: str) -> None:
        with lock:
            say(message)

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        if _await_all(settings, env, procs, stopping, locked_say):
            register_demo(settings)
            with lock:
                print(_banner(settings, env), flush=True)
        else:
            stopping.set()
        while not stopping.is_set():
            dead = [n for n, p in procs.items() if p.poll() is not None]
            if dead:
                say(f"{', '.join(dead)} exited; stopping the others")
                break
            stopping.wait(0.5)
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for name, proc in procs.items():
            try:
                proc.wait(timeout=90)
            except subprocess.TimeoutExpired:
                say(f"{name}: did not stop in 90 s; killing it")
                proc.kill()
        for pump in pumps:
            pump.join(timeout=5)
        for out in files.values():
            out.close()
    codes = {n: p.returncode for n, p in procs.items()}
    return 0 if stopping.is_set() and all(c in (0, -signal.SIGTERM) for c in codes.values()) else 1


def traces_line(env: Mapping[str, str]) -> str:
    endpoint = env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.get(
        "OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    if endpoint and env.get("OTEL_SDK_DISABLED", "").lower() != "true":
        return f"  Traces:   exported over OTLP/HTTP to {endpoint}"
    return (
        "  Traces:   off; to send them to an OTLP/HTTP collector, start with\n"
        "            OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:4318 (README: Traces)"
    )


def _banner(settings: Settings, env: Mapping[str, str] | None = None) -> str:
    env = env or service_env(settings)
    api = env["WORKFLOW_API_URL"]
    metrics = "\n".join(
        f"            {i.name}: http://127.0.0.1:{instance_env(env, i)[ops_port_var(i.service)]}"
        "/metrics"
        for i in instances(settings.replicas)
        if i.service in OPS_PORTS
    )
    return (
        "\n"
        "==================== Workflow API is running ====================\n"
        f"{console_line(api)}\n"
        f"  API:      {api}  (docs: {api}/docs)\n"
        f"  API key:  {env['WORKFLOW_API_KEY']}\n"
        f"  Admin key (/v1/admin, /metrics): ADMIN_API_KEY in {settings.env_file}\n"
        f"  Logs:     {settings.logs_dir}/<service>.log, one JSON object a line (runId,\n"
        "            tenantId, nodeId, traceId); below: run events and warnings only\n"
        f"            ({SHOW_ALL}=1 shows every line)\n"
        f"  Metrics:  ingress: {api}/metrics (Authorization: Bearer <ADMIN_API_KEY>)\n"
        f"{metrics}\n"
        f"{traces_line(env)}\n"
        f"  Demo workflow '{DEMO_WORKFLOW}' is registered. Try:\n\n"
        f"  {curl_line(settings)}\n\n"
        "  or with the CLI (live steps, images saved; README: Using it):\n\n"
        f"  {cli_line(api, env['WORKFLOW_API_KEY'])}\n"
        f"\n{openapi_line(api)}\n"
        "==================================================================\n"
    )


def launch(
    env: Mapping[str, str], logs: Path, replicas: Mapping[str, int] | None = None
) -> dict[str, subprocess.Popen[bytes]]:
    """The services as child processes of the caller (tests, the bench), one log each, by
    instance name: `replicas` of each (default one), on ports of their own (`instance_env`),
    and HAProxy on `env`'s `INGRESS_PORT` when there are several ingress replicas (its
    configuration beside the logs)."""
    logs.mkdir(parents=True, exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    for instance in instances(replicas):
        with (logs / f"{instance.name}.log").open("wb") as out:
            procs[instance.name] = subprocess.Popen(
                _command(instance.service),
                env=instance_env(env, instance),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
    if balanced(replicas):
        config_file = logs / "haproxy.cfg"
        config_file.write_text(balancer_config(env, replicas or {}))
        with (logs / f"{balancer.NAME}.log").open("wb") as out:
            procs[balancer.NAME] = subprocess.Popen(
                balancer.command(_haproxy(), config_file), stdout=out, stderr=subprocess.STDOUT
            )
    return procs


def await_ready(
    url: str,
    logs: Path,
    procs: Mapping[str, subprocess.Popen[bytes]],
    timeout: float = 120,
    env: Mapping[str, str] | None = None,
    replicas: Mapping[str, int] | None = None,
) -> None:
    """Until every instance `launch` started with `env` and `replicas` (on its ops port in
    `env`, else the default) and the API at `url` answer /readyz; AppError with the logs'
    tails when one exits or the time runs out."""
    deadline = time.monotonic() + timeout
    urls = ready_urls(env or {}, replicas)
    urls[balancer.NAME if balanced(replicas) else "ingress"] = f"{url}/readyz"

    def failed(why: str) -> AppError:
        tails = "\n".join(f"--- {n}\n{process.tail(logs / f'{n}.log', 30)}" for n in procs)
        return AppError(f"{why}\n{tails}")

    for name in urls:
        while not _http_ok(urls[name]):
            dead = {n: p.returncode for n, p in procs.items() if p.poll() is not None}
            if dead:
                raise failed(f"the system did not start (exited: {dead})")
            if time.monotonic() > deadline:
                raise failed(f"{name} not ready within {timeout:g} s ({urls[name]})")
            time.sleep(0.2)


def terminate(procs: Mapping[str, subprocess.Popen[bytes]], timeout: float = 60) -> None:
    """SIGTERM every process `launch` started, wait for each, kill what does not stop in
    time."""
    for p in procs.values():
        if p.poll() is None:
            p.terminate()
    for p in procs.values():
        try:
            p.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
