"""Named failures: every error says which component failed, why, and where its log is."""

from __future__ import annotations

from pathlib import Path

from devstack.paths import display


class DevstackError(Exception):
    """``<component>: <reason> (log: <file>)``, maybe followed by the output explaining it."""

    def __init__(
        self, component: str, reason: str, log: Path | None = None, detail: str = ""
    ) -> None:
        self.component = component
        self.reason = reason
        self.log = log
        self.detail = detail
        super().__init__(self.message())

    def message(self) -> str:
        text = f"{self.component}: {self.reason}"
        if self.log is not None:
            text += f" (log: {display(self.log)})"
        if self.detail.strip():
            indented = "\n".join("    " + line for line in self.detail.rstrip().splitlines())
            text += "\n" + indented
        return text


class StackError(Exception):
    """One or more components failed; carries each component's error."""

    def __init__(self, errors: list[DevstackError]) -> None:
        self.errors = errors
        super().__init__("\n".join(e.message() for e in errors))
