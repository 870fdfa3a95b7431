"""Where devstack keeps things: the repo's state dir, the user's cache dir, the bundled assets."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

CACHE_NAME = "workflow-devstack"


def repo_root(cwd: Path | None = None) -> Path:
    """The git toplevel of ``cwd`` (default: the current directory), else ``cwd`` itself."""
    here = (cwd or Path.cwd()).resolve()
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--show-toplevel"],
            cwd=here,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return here
    top = out.stdout.strip()
    return Path(top) if out.returncode == 0 and top else here


def state_dir() -> Path:
    """``$DEVSTACK_STATE_DIR``, else ``<repo root>/.stack``."""
    override = os.environ.get("DEVSTACK_STATE_DIR")
    if override:
        return Path(override).expanduser().resolve()
    return repo_root() / ".stack"


def cache_dir() -> Path:
    """``$DEVSTACK_CACHE_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/workflow-devstack``."""
    override = os.environ.get("DEVSTACK_CACHE_DIR")
    if override:
        return Path(override).expanduser().resolve()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return (base / CACHE_NAME).resolve()


def assets_dir() -> Path:
    return Path(__file__).resolve().parent / "assets"


def display(path: Path) -> str:
    """``path`` relative to the current directory when it lies below it (for messages)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
