"""A message parked on the dead-letter topic: where it came from, why, and which run it is
about, so the service that parked it can end that run instead of leaving it queued."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from contracts.events import EventData

# Headers of a dead-letter record, besides the original record's own.
TOPIC = "x-dead-letter-topic"
PARTITION = "x-dead-letter-partition"
OFFSET = "x-dead-letter-offset"
ATTEMPTS = "x-dead-letter-attempts"
ERROR = "x-dead-letter-error"
RUN_ID = "x-dead-letter-run-id"
VALUE_DROPPED = "x-dead-letter-value-dropped"
"""Set (to the original size in bytes) when the value itself could not be parked."""

MAX_REASON_CHARS = 2000

_RUN_ID = re.compile(r"^[A-Za-z0-9_.:@-]{1,128}$")


@dataclass(frozen=True)
class DeadLetter:
    topic: str
    partition: int | None
    offset: int | None
    key: bytes | None
    value: bytes
    headers: Mapping[str, str]
    reason: str
    """What went wrong, one line of text (no stack trace)."""
    attempts: int
    """How often the message was tried (1 when it could not even be decoded)."""
    event: EventData | None = None
    """The decoded event, when it decoded and its handler kept failing."""

    @property
    def event_type(self) -> str | None:
        return self.event.event_type if self.event is not None else self.headers.get("ce_type")

    @property
    def run_id(self) -> str | None:
        """The run the message is about: from the event, else the CloudEvents subject, else
        the record's key (every topic is keyed by runId); None when none looks like one."""
        if self.event is not None:
            return self.event.run_id
        for candidate in (self.headers.get("ce_subject"), _text(self.key)):
            if candidate is not None and _RUN_ID.match(candidate):
                return candidate
        return None

    def record_headers(self) -> dict[str, str]:
        """The original headers plus where the record came from and why it was parked."""
        headers = dict(self.headers)
        headers[TOPIC] = self.topic
        if self.partition is not None:
            headers[PARTITION] = str(self.partition)
        if self.offset is not None:
            headers[OFFSET] = str(self.offset)
        headers[ATTEMPTS] = str(self.attempts)
        headers[ERROR] = self.reason[:MAX_REASON_CHARS]
        run_id = self.run_id
        if run_id is not None:
            headers[RUN_ID] = run_id
        return headers

    def describe(self, limit: int = 1000) -> str:
        """The reason as a run's error message: the event type and the error, bounded."""
        what = self.event_type or "a message of unknown type"
        tries = "" if self.attempts <= 1 else f" after {self.attempts} tries"
        text = f"{what} on {self.topic} could not be processed{tries}: {one_line(self.reason)}"
        return text if len(text) <= limit else text[: limit - 1] + "…"


def one_line(text: str) -> str:
    return " ".join(text.split())


def _text(key: bytes | None) -> str | None:
    if key is None:
        return None
    try:
        return key.decode("ascii")
    except UnicodeDecodeError:
        return None
