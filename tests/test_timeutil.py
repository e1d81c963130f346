"""The one home for time: parsing the API's timestamps, writing the mirror's, one second before."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from etl import timeutil


def test_dash_timestamps_from_the_users_endpoint_parse():
    assert timeutil.parse("2021-04-21T13-24-01Z") == datetime(2021, 4, 21, 13, 24, 1, tzinfo=UTC)
    assert timeutil.parse("2021-04-21T13:24:01Z") == datetime(2021, 4, 21, 13, 24, 1, tzinfo=UTC)
    assert timeutil.parse("2021-04-21T15:24:01+02:00") == timeutil.parse("2021-04-21T13:24:01Z")
    with pytest.raises(ValueError):
        timeutil.parse("yesterday")


def test_moments_are_written_in_utc_with_a_z():
    east = timezone(timedelta(hours=3))
    assert timeutil.format(datetime(2024, 1, 31, 13, 0, 0, tzinfo=east)) == "2024-01-31T10:00:00Z"
    assert timeutil.format(datetime(2024, 1, 31, 10, 0, 0)) == "2024-01-31T10:00:00Z"


def test_canonical_text_leaves_what_it_cannot_read_as_it_is():
    assert timeutil.canonical("2018-08-09T10-08-53Z") == "2018-08-09T10:08:53Z"
    assert timeutil.canonical("2018-08-09T10:08:53Z") == "2018-08-09T10:08:53Z"
    assert timeutil.canonical("not a time") == "not a time"
    assert timeutil.canonical(None) is None and timeutil.canonical("") is None


def test_one_second_before_crosses_midnight_and_years():
    assert timeutil.one_second_before("2024-01-01T00:00:00Z") == "2023-12-31T23:59:59Z"
    assert timeutil.one_second_before("2021-04-21T13-24-01Z") == "2021-04-21T13:24:00Z"


def test_now_is_the_mirrors_form():
    assert timeutil.canonical(timeutil.now()) == timeutil.now()[:19] + "Z"
