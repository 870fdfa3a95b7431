"""HAProxy (Debian's `haproxy` package) on the API port in front of several ingress replicas.

Round robin over the replicas that answer `/readyz`; a replica that stops answering leaves the
rotation within about two seconds, and a request whose connection to a replica fails is sent to
another one. A synchronous run request may be answered by any replica (every replica hears every
run's end, see ingress.hub), so no stickiness is needed.
"""

from __future__ import annotations

import shutil
from collections.abc import Sequence
from pathlib import Path

NAME = "balancer"
HINT = "HAProxy for ingress replicas > 1 (e.g. apt-get install haproxy)"


def find() -> str | None:
    """The `haproxy` binary: on the PATH, else where Debian installs it (/usr/sbin is not on
    every user's PATH)."""
    return shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/usr/local/sbin")


def config(host: str, port: int, backends: Sequence[tuple[str, int]]) -> str:
    """The configuration: listen on `host:port`, balance over `backends` (name, port on
    `host`), health-checked on `/readyz` every second."""
    servers = "\n".join(f"    server {name} {host}:{p} check" for name, p in backends)
    return f"""\
# Written by devstack at every start: the API port in front of the ingress replicas.
global
    maxconn 4096
    # Errors and health changes to stdout, which devstack appends to the balancer's log.
    log stdout format raw local0 notice

defaults
    mode http
    log global
    option httplog
    option dontlog-normal
    timeout connect 2s
    # A synchronous run waits up to MAX_WAIT_SECONDS (60 s) and an event stream stays open
    # while its run lives: idle timeouts well above both.
    timeout client 10m
    timeout server 10m
    timeout http-request 30s
    # A request whose connection to a replica failed goes to another one.
    retries 2
    option redispatch

frontend api
    bind {host}:{port}
    default_backend ingress

backend ingress
    balance roundrobin
    option httpchk GET /readyz
    http-check expect status 200
    default-server inter 1s fall 2 rise 1
{servers}
"""


def command(haproxy: str, config_file: Path) -> list[str]:
    """In the foreground (`-db`), so that it is the process devstack started and stops."""
    return [haproxy, "-db", "-f", str(config_file)]
