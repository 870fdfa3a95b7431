"""When to try a delivery again: the retry schedule, jitter, `Retry-After`, and the decision
an attempt's outcome leads to. Pure: no I/O, the random source is passed in."""

from __future__ import annotations

import random
from dataclasses import dataclass

from storage.deliveries import DeliveryStatus

DEFAULT_SCHEDULE = "0,5,300,1800,7200,18000,36000,50400,72000,86400"
"""Seconds before each attempt: immediately, 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 14 h, 20 h,
24 h (about 3 days and 4 hours in all)."""


@dataclass(frozen=True)
class RetrySchedule:
    delays: tuple[float, ...]
    jitter: float = 0.1
    """Each delay is moved by up to ± this fraction, so retries of many deliveries spread."""
    max_retry_after: float = 86400.0

    @classmethod
    def parse(
        cls, text: str, *, jitter: float = 0.1, max_retry_after: float = 86400.0
    ) -> RetrySchedule:
        try:
            delays = tuple(float(part) for part in text.split(",") if part.strip())
        except ValueError:
            raise ValueError(f"retry schedule {text!r} is not a list of seconds") from None
        if not delays or any(d < 0 for d in delays):
            raise ValueError(f"retry schedule {text!r} needs one or more non-negative delays")
        if not 0 <= jitter < 1:
            raise ValueError("retry jitter is a fraction in [0, 1)")
        return cls(delays, jitter, max_retry_after)

    @property
    def attempts(self) -> int:
        return len(self.delays)

    def delay(self, position: int, rng: random.Random) -> float | None:
        """Seconds before the attempt at `position` of a round, or None past the last."""
        if position >= len(self.delays):
            return None
        return jittered(self.delays[position], self.jitter, rng)


def jittered(delay: float, fraction: float, rng: random.Random) -> float:
    return max(0.0, delay * (1 + rng.uniform(-fraction, fraction)))


@dataclass(frozen=True)
class Decision:
    status: DeliveryStatus
    retry_in: float | None = None
    """Seconds until the next attempt when the delivery stays pending."""


HONOURS_RETRY_AFTER = frozenset({429, 503})


def decide(
    *,
    status_code: int | None,
    retry_after: float | None,
    position: int,
    schedule: RetrySchedule,
    rng: random.Random,
) -> Decision:
    """A 2xx ends the delivery, 410 stops it (`gone`); anything else — another status
    (redirects included), a timeout, a connection error (`status_code` None) — retries on the
    schedule until its last attempt, then the delivery has `failed`."""
    if status_code is not None and 200 <= status_code < 300:
        return Decision(DeliveryStatus.SUCCEEDED)
    if status_code == 410:
        return Decision(DeliveryStatus.GONE)
    delay = schedule.delay(position + 1, rng)
    if delay is None:
        return Decision(DeliveryStatus.FAILED)
    if status_code in HONOURS_RETRY_AFTER and retry_after is not None:
        delay = max(delay, min(retry_after, schedule.max_retry_after))
    return Decision(DeliveryStatus.PENDING, delay)
