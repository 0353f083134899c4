"""Settings from the environment: defaults, conversion, overrides and refusals."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from domain.readings import BatchLimits
from service.infra.settings import Settings


def test_settings_from_an_empty_environment_are_the_defaults() -> None:
    assert Settings.from_env({}) == Settings()


def test_settings_convert_environment_strings() -> None:
    settings = Settings.from_env(
        {
            "MAX_READINGS_PER_BATCH": "10",
            "LOG_JSON": "true",
            "MAX_METHANE_KG": "2.5",
            "MAX_FUTURE_S": "60",
            "EARLIEST_READING": "2020-01-01T00:00:00Z",
            "ENVIRONMENT": "production",
        }
    )
    assert settings.max_readings_per_batch == 10
    assert settings.log_json is True
    assert settings.environment == "production"
    assert settings.batch_limits == BatchLimits(
        max_readings=10,
        max_methane_kg=2.5,
        max_future=timedelta(seconds=60),
        earliest=datetime(2020, 1, 1, tzinfo=UTC),
    )


def test_settings_read_upper_case_names_only_and_skip_empty_values() -> None:
    settings = Settings.from_env({"max_readings_per_batch": "7", "PORT": ""})
    assert settings.max_readings_per_batch == 5000
    assert settings.port == 8000


def test_settings_overrides_win_over_the_environment() -> None:
    settings = Settings.from_env({"PORT": "9000"}, port=9001)
    assert settings.port == 9001


def test_idempotency_retention_is_in_hours() -> None:
    settings = Settings.from_env({"IDEMPOTENCY_RETENTION_H": "2"})
    assert settings.idempotency_retention == timedelta(hours=2)


@pytest.mark.parametrize(
    "environ",
    [
        {"MAX_READINGS_PER_BATCH": "0"},
        {"MAX_READINGS_PER_BATCH": "-3"},
        {"PORT": "eighty"},
        {"DB_COMMAND_TIMEOUT_S": "-1"},
        {"LOG_JSON": "maybe"},
        {"LOG_LEVEL": "verbose"},
        {"ENVIRONMENT": "staging"},
    ],
    ids=["zero-batch", "negative-batch", "port-word", "negative-timeout", "bool", "level", "env"],
)
def test_invalid_environment_value_is_a_validation_error(environ: dict[str, str]) -> None:
    with pytest.raises(msgspec.ValidationError):
        Settings.from_env(environ)


def test_validation_error_names_the_setting() -> None:
    with pytest.raises(msgspec.ValidationError, match=r"max_readings_per_batch"):
        Settings.from_env({"MAX_READINGS_PER_BATCH": "0"})


def test_naive_earliest_reading_is_rejected() -> None:
    # A naive bound cannot be compared with aware readings: every ingest would fail.
    with pytest.raises(msgspec.ValidationError, match=r"earliest_reading"):
        Settings.from_env({"EARLIEST_READING": "2020-01-01T00:00:00"})


def test_earliest_reading_with_an_offset_is_kept_as_that_instant() -> None:
    settings = Settings.from_env({"EARLIEST_READING": "2020-01-01T05:00:00+05:00"})
    assert settings.earliest_reading == datetime(2020, 1, 1, tzinfo=UTC)
