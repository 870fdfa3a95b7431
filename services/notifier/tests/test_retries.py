from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from egress.retry_after import parse_retry_after
from notifier.retries import (
    DEFAULT_SCHEDULE,
    Decision,
    RetrySchedule,
    decide,
    jittered,
)
from storage.deliveries import DeliveryStatus

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
COMPRESSED = RetrySchedule.parse("0,0.5,1", jitter=0)


def test_default_schedule_is_ten_attempts_over_about_three_days() -> None:
    schedule = RetrySchedule.parse(DEFAULT_SCHEDULE)
    assert schedule.attempts == 10
    assert schedule.delays[:3] == (0, 5, 300)
    assert sum(schedule.delays) / 86400 == pytest.approx(3.15, abs=0.01)


def test_jitter_stays_within_its_fraction_and_never_goes_negative() -> None:
    rng = random.Random(7)
    values = [jittered(100, 0.1, rng) for _ in range(1000)]
    assert 90 <= min(values) < 92
    assert 108 < max(values) <= 110
    assert jittered(0, 0.5, rng) == 0


@pytest.mark.parametrize("text", ["", "a,b", "1,-2"])
def test_bad_schedules_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="schedule"):
        RetrySchedule.parse(text)


def test_retry_after_seconds_and_http_date() -> None:
    assert parse_retry_after("120", NOW) == 120
    later = (NOW + timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(later, NOW) == 30
    earlier = (NOW - timedelta(seconds=30)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    assert parse_retry_after(earlier, NOW) == 0
    assert parse_retry_after(None, NOW) is None
    assert parse_retry_after("soon", NOW) is None


def _decide(code: int | None, position: int = 0, retry_after: float | None = None) -> Decision:
    return decide(
        status_code=code,
        retry_after=retry_after,
        position=position,
        schedule=COMPRESSED,
        rng=random.Random(1),
    )


def test_2xx_ends_410_stops_and_anything_else_retries_until_the_last_attempt() -> None:
    assert _decide(200) == _decide(204)
    assert _decide(200).status is DeliveryStatus.SUCCEEDED
    assert _decide(410).status is DeliveryStatus.GONE
    for code in (500, 302, 404, None):
        first = _decide(code, position=0)
        assert first.status is DeliveryStatus.PENDING
        assert first.retry_in == 0.5
    assert _decide(500, position=1).retry_in == 1
    assert _decide(500, position=2).status is DeliveryStatus.FAILED


def test_retry_after_is_honoured_on_429_and_503_only() -> None:
    assert _decide(429, retry_after=7).retry_in == 7
    assert _decide(503, retry_after=7).retry_in == 7
    assert _decide(500, retry_after=7).retry_in == 0.5
    assert _decide(429, retry_after=0).retry_in == 0.5


@pytest.mark.parametrize(
    "value",
    ["²", "٣", "\uff11\uff12", "-5", "1e400", "12.5", "Tue, 99 Feb 2026 00:00:00 GMT", "\x00"],
)
def test_a_retry_after_that_is_not_ascii_delta_seconds_or_a_date_is_unreadable(
    value: str,
) -> None:
    assert parse_retry_after(value, NOW) is None


def test_a_huge_retry_after_is_clamped_to_the_schedules_maximum() -> None:
    retry_after = parse_retry_after("9" * 5000, NOW)
    assert retry_after is not None
    assert retry_after > 86400
    far = parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", NOW)
    assert far is not None
    assert far > 86400
    schedule = RetrySchedule.parse("0,5,300", jitter=0, max_retry_after=3600)
    for value in (retry_after, far):
        got = decide(
            status_code=503, retry_after=value, position=0, schedule=schedule, rng=random.Random()
        )
        assert got == Decision(DeliveryStatus.PENDING, 3600)
