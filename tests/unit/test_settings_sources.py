"""Settings know which values were given on purpose, and read every variable they need in from_env alone."""

from __future__ import annotations

import pytest

from scoring.settings import DEFAULT_DATABASE_URL, Settings


@pytest.mark.parametrize(
    ("environ", "is_set"),
    [
        ({}, False),
        ({"SCORING_DATABASE_URL": ""}, False),
        ({"SCORING_DATABASE_URL": DEFAULT_DATABASE_URL}, True),  # the default, chosen on purpose
        ({"SCORING_DATABASE_URL": "postgresql://db/x"}, True),
        ({"SCORING_DATABASE_URL_SET": "1"}, False),  # derived, never read from the environment
    ],
)
def test_database_url_set_says_whether_the_url_was_given(environ, is_set):
    assert Settings.from_env(environ).database_url_set is is_set


def test_an_override_of_the_database_url_counts_as_given_even_when_it_is_the_default():
    assert not Settings().database_url_set
    assert Settings().with_overrides(database_url=DEFAULT_DATABASE_URL).database_url_set
    assert not Settings().with_overrides(database_url=None).database_url_set


def test_the_prometheus_directory_is_read_under_the_librarys_own_name():
    settings = Settings.from_env({"PROMETHEUS_MULTIPROC_DIR": "/run/metrics", "SCORING_PROMETHEUS_MULTIPROC_DIR": "/x"})
    assert settings.prometheus_multiproc_dir == "/run/metrics"
    assert Settings.from_env({}).prometheus_multiproc_dir is None
