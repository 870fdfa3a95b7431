"""`createdAfter` / `createdBefore` of `GET /v1/runs`: RFC 3339 date-times, anything else a 422."""

from datetime import UTC, datetime

import pytest
from ingress.problems import ProblemError
from ingress.routes.runs import _timestamp


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-31T09:30:00Z", datetime(2026, 1, 31, 9, 30, tzinfo=UTC)),
        ("2026-01-31t09:30:00z", datetime(2026, 1, 31, 9, 30, tzinfo=UTC)),
        ("2026-01-31T11:30:00+02:00", datetime(2026, 1, 31, 9, 30, tzinfo=UTC)),
        ("2026-01-31T09:30:00.1234567Z", datetime(2026, 1, 31, 9, 30, 0, 123456, tzinfo=UTC)),
        ("2016-12-31T23:59:60Z", datetime(2017, 1, 1, tzinfo=UTC)),  # a leap second
    ],
)
def test_rfc_3339_date_times_are_read_in_utc(text: str, expected: datetime) -> None:
    assert _timestamp(text, "createdAfter") == expected


@pytest.mark.parametrize(
    "text",
    ["2026-01-31T09:30:00", "2026-01-31", "2026-02-30T00:00:00Z", "1700000000", "yesterday"],
)
def test_anything_else_is_a_422_naming_the_parameter(text: str) -> None:
    with pytest.raises(ProblemError) as refused:
        _timestamp(text, "createdBefore")

    assert refused.value.status == 422
    assert refused.value.errors is not None
    assert refused.value.errors[0].path == "/createdBefore"


def test_a_date_time_beyond_what_utc_can_hold_is_earlier_or_later_than_any_run() -> None:
    assert _timestamp("0001-01-01T00:00:00+05:00", "createdAfter") == datetime.min.replace(
        tzinfo=UTC
    )
    assert _timestamp("9999-12-31T23:59:59-05:00", "createdBefore") == datetime.max.replace(
        tzinfo=UTC
    )
    assert _timestamp(None, "createdAfter") is None
