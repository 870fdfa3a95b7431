"""Reading `Retry-After`: the one parser for webhook receivers and model providers alike."""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime

MAX_RETRY_AFTER_DIGITS = 9


def parse_retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` as seconds from `now`: delta-seconds or an HTTP-date; None if absent or
    unreadable, so the retry schedule applies.

    The value is whatever a receiver sent: httpx decodes header bytes that are not ASCII as
    latin-1 or UTF-8, and `str.isdigit` accepts digits such as "²" that `float` refuses. So
    only ASCII is read, a number is at most `MAX_RETRY_AFTER_DIGITS` long, and nothing here
    raises (an exception would leave the attempt unrecorded, to be sent again and again).
    """
    if value is None:
        return None
    text = value.strip()
    if not text.isascii():
        return None
    if text.isdigit():
        # Longer than this is more than 31 years: any later `decide` clamps it anyway.
        return float(text) if len(text) <= MAX_RETRY_AFTER_DIGITS else float("inf")
    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:
            return None
        return max(0.0, (when - now).total_seconds())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
