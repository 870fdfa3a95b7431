"""``python -m devstack up|down|status|logs [component]|env``."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import signal
import sys
from types import FrameType

from devstack import process, stack
from devstack.errors import StackError
from devstack.paths import display
from devstack.settings import Settings


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m devstack",
        description=(
            "Run the project's Kafka, MongoDB (FerretDB on PostgreSQL) and S3 servers as local "
            "processes."
        ),
    )
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="provision and start what is not running; wait for health")
    up.add_argument("--partitions", type=int, help="partitions of new topics (default 6)")
    up.add_argument("--timeout", type=float, help="seconds to wait for health (default 120)")
    down = sub.add_parser("down", help="stop every server (data is kept)")
    down.add_argument("--purge", action="store_true", help="also delete the servers' data")
    sub.add_parser("status", help="version, pid, port and health of each server")
    logs = sub.add_parser("logs", help="the tail of a server's log")
    logs.add_argument("component", nargs="?", choices=stack.component_names())
    logs.add_argument("-n", "--lines", type=int, default=40)
    logs.add_argument("-f", "--follow", action="store_true", help="keep printing (tail -f)")
    sub.add_parser("env", help="print the .stack/env file")
    services = sub.add_parser("services", help="the four services (see devstack.apps)")
    services.add_argument("action", choices=["start", "stop", "run"])
    return parser


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    signal.signal(signal.SIGTERM, _interrupt)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)
    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"devstack: {exc}", file=sys.stderr)
        return 2
    command: str = args.command
    if command == "up":
        if args.partitions is not None:
            settings = dataclasses.replace(settings, partitions=args.partitions)
        if args.timeout is not None:
            settings = dataclasses.replace(settings, health_timeout=args.timeout)
        try:
            stack.up(settings, say=_say)
        except StackError as exc:
            print(f"devstack up failed:\n{exc}", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print(
                "devstack up interrupted; downloads and builds in progress were discarded",
                file=sys.stderr,
            )
            return 130
        return 0
    if command == "down":
        stack.down(settings, purge=args.purge, say=_say)
        return 0
    if command == "status":
        return _status(settings)
    if command == "logs":
        return _logs(settings, args.component, args.lines, args.follow)
    if command == "services":
        return _services(settings, args.action)
    if command == "env":
        try:
            sys.stdout.write(settings.env_file.read_text())
        except FileNotFoundError:
            print(f"devstack: no {display(settings.env_file)} yet; run `up`", file=sys.stderr)
            return 1
        return 0
    raise AssertionError(command)


def _say(message: str) -> None:
    print(message, flush=True)


def _status(settings: Settings) -> int:
    statuses = stack.status(settings)
    print(f"{'component':<10} {'health':<8} {'pid':<8} {'address':<22} version")
    for st in statuses:
        health = "healthy" if st.healthy else "DOWN"
        pid = str(st.pid) if st.pid else "-"
        line = f"{st.name:<10} {health:<8} {pid:<8} {settings.host + ':' + str(st.port):<22} "
        line += st.version if st.healthy else f"{st.detail} (log: {display(settings.logs_dir)}"
        line += "" if st.healthy else f"/{st.name}.log)"
        print(line)
    return 0 if all(st.healthy for st in statuses) else 1


def _logs(settings: Settings, component: str | None, lines: int, follow: bool) -> int:
    names = [component] if component else stack.component_names(settings)
    files = [settings.logs_dir / f"{name}.log" for name in names]
    if follow:
        existing = [str(f) for f in files if f.exists()]
        if not existing:
            print("devstack: no logs yet", file=sys.stderr)
            return 1
        os.execvp("tail", ["tail", "-n", str(lines), "-F", *existing])
    for name, path in zip(names, files, strict=True):
        if len(names) > 1:
            print(f"==> {name} ({display(path)}) <==")
        text = process.tail(path, lines)
        print(text if text else "(no log yet)")
    return 0


def _services(settings: Settings, action: str) -> int:
    from devstack import apps

    try:
        if action == "start":
            apps.start(settings, say=_say)
        elif action == "stop":
            apps.stop(settings, say=_say)
        else:
            return apps.run_foreground(settings, say=_say)
    except apps.AppError as exc:
        print(f"devstack services {action} failed: {exc}", file=sys.stderr)
        return 1
    return 0
