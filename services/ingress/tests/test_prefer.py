from ingress.prefer import Preference, parse_prefer


def test_respond_async_is_recognised_among_other_preferences() -> None:
    assert parse_prefer(["handling=lenient, respond-async"]).respond_async


def test_wait_takes_seconds_and_may_be_fractional() -> None:
    assert parse_prefer(["wait=2.5"]).wait == 2.5


def test_both_preferences_in_separate_headers_combine() -> None:
    assert parse_prefer(["wait=3", "respond-async"]) == Preference(respond_async=True, wait=3)


def test_a_malformed_wait_is_ignored_not_an_error() -> None:
    assert parse_prefer(["wait=soon"]) == Preference()


def test_a_negative_wait_means_do_not_wait() -> None:
    assert parse_prefer(["wait=-4"]).wait == 0
