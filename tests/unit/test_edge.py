"""The edges: Idempotency-Key parsing, msgspec errors as JSON pointers, SQL loading, settings."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from unittest import mock

import msgspec
import pytest

from api.decode import _pointer, field_error
from api.schemas import IngestBatch, SiteCreate
from domain.errors import FieldError
from domain.idempotency import InvalidIdempotencyKey, MissingIdempotencyKey, parse_key
from domain.readings import BatchLimits
from service.infra import queries
from service.infra.settings import Settings

_decode_batch = msgspec.json.Decoder(IngestBatch)


def decode_error(body: bytes) -> msgspec.ValidationError:
    with pytest.raises(msgspec.ValidationError) as caught:
        _decode_batch.decode(body)
    return caught.value


# --------------------------------------------------------------------------- Idempotency-Key


def test_missing_key_is_missing_idempotency_key() -> None:
    with pytest.raises(MissingIdempotencyKey):
        parse_key(None)


def test_bare_token_key_is_kept_as_is() -> None:
    assert parse_key("batch-42:a.b_c") == "batch-42:a.b_c"


def test_quoted_sf_string_key_is_unquoted() -> None:
    assert parse_key('"batch-42"') == "batch-42"


def test_a_lone_double_quote_is_a_one_character_key() -> None:
    assert parse_key('"') == '"'


@pytest.mark.parametrize(
    "raw",
    [
        "",
        '""',
        "k" * 256,
        '"' + "k" * 256 + '"',
        "clé",
        "key\x00",
        "key\ttab",
        "key\x7f",
        "line\nbreak",
    ],
    ids=[
        "empty",
        "empty-quoted",
        "too-long",
        "too-long-quoted",
        "non-ascii",
        "nul",
        "tab",
        "del",
        "newline",
    ],
)
def test_unusable_key_is_invalid_idempotency_key(raw: str) -> None:
    with pytest.raises(InvalidIdempotencyKey):
        parse_key(raw)


def test_255_character_key_is_the_longest_accepted() -> None:
    assert parse_key("k" * 255) == "k" * 255
    assert parse_key('"' + "k" * 255 + '"') == "k" * 255


def test_key_errors_carry_their_docstring_as_detail() -> None:
    with pytest.raises(InvalidIdempotencyKey) as caught:
        parse_key("")
    assert (
        caught.value.detail
        == "The Idempotency-Key header must be 1-255 printable ASCII characters."
    )


# --------------------------------------------------------------------------- JSON pointers


def test_pointer_of_the_root_is_empty() -> None:
    assert _pointer("") == ""


def test_pointer_turns_fields_and_indexes_into_steps() -> None:
    assert _pointer(".measurements[3].methane_kg") == "/measurements/3/methane_kg"
    assert _pointer("[0]") == "/0"


def test_pointer_escapes_tilde_and_slash_per_rfc_6901() -> None:
    assert _pointer(".a/b~c") == "/a~1b~0c"


def test_wrong_type_deep_in_the_batch_points_at_the_field() -> None:
    body = (
        b'{"device_id": "d", "measurements": ['
        + b'{"ts": "2026-01-05T00:00:00Z", "methane_kg": 1},' * 3
        + b'{"ts": "2026-01-05T00:00:00Z", "methane_kg": "a lot"}]}'
    )
    assert field_error(decode_error(body)) == FieldError(
        "/measurements/3/methane_kg", "Expected `float`, got `str`"
    )


def test_naive_timestamp_in_the_body_points_at_its_ts() -> None:
    body = b'{"device_id": "d", "measurements": [{"ts": "2026-01-05T00:00:00", "methane_kg": 1}]}'
    assert field_error(decode_error(body)) == FieldError(
        "/measurements/0/ts", "Expected `datetime` with a timezone component"
    )


def test_unknown_top_level_field_points_at_the_root() -> None:
    body = b'{"device_id": "d", "measurements": [], "extra": 1}'
    assert field_error(decode_error(body)) == FieldError(
        "", "Object contains unknown field `extra`"
    )


def test_unknown_field_in_a_reading_points_at_that_reading() -> None:
    body = (
        b'{"device_id": "d", "measurements": '
        b'[{"ts": "2026-01-05T00:00:00Z", "methane_kg": 1, "unit": "kg"}]}'
    )
    assert field_error(decode_error(body)) == FieldError(
        "/measurements/0", "Object contains unknown field `unit`"
    )


def test_missing_field_points_at_the_object_that_lacks_it() -> None:
    assert field_error(decode_error(b'{"device_id": "d"}')) == FieldError(
        "", "Object missing required field `measurements`"
    )
    body = b'{"device_id": "d", "measurements": [{"ts": "2026-01-05T00:00:00Z"}]}'
    assert field_error(decode_error(body)) == FieldError(
        "/measurements/0", "Object missing required field `methane_kg`"
    )


def test_constraint_violation_keeps_msgspecs_message() -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        msgspec.json.decode(b'{"name": "a", "emission_limit_kg": 0}', type=SiteCreate)
    assert field_error(caught.value) == FieldError("/emission_limit_kg", "Expected `float` > 0.0")


# --------------------------------------------------------------------------- named SQL


def test_load_returns_every_named_ingest_query() -> None:
    q = queries.load("ingest")
    assert list(q) == [
        "try_lock_key",
        "find_answer_check_site_and_key",
        "insert_new_batch_event_and_answer",
        "insert_new_readings_and_event_list_others",
        "stored_values",
        "save_answer",
    ]
    assert q["try_lock_key"].startswith("-- Mark this idempotency key in flight")
    assert q["try_lock_key"].endswith("SELECT pg_try_advisory_xact_lock($1::bigint);")
    assert all("-- name:" not in sql for sql in q.values())


def test_load_is_cached_per_module() -> None:
    assert queries.load("sites") is queries.load("sites")


def test_a_query_name_defined_twice_is_refused() -> None:
    text = "-- name: one\n-- first\nSELECT 1;\n\n-- name: one\n-- again\nSELECT 2;\n"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "queries").mkdir()
        (Path(tmp) / "queries" / "twice_unit_test.sql").write_text(text)
        with (
            mock.patch.object(queries, "SQL_DIR", Path(tmp)),
            pytest.raises(ValueError, match=r"'one' is defined twice in twice_unit_test\.sql"),
        ):
            queries.load("twice_unit_test")


def test_text_before_the_first_name_is_ignored() -> None:
    text = "-- A file header.\n\n-- name: a\n-- purpose\nSELECT 1;\n-- name: b\nSELECT 2;\n"
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "queries").mkdir()
        (Path(tmp) / "queries" / "header_unit_test.sql").write_text(text)
        with mock.patch.object(queries, "SQL_DIR", Path(tmp)):
            assert queries.load("header_unit_test") == {
                "a": "-- purpose\nSELECT 1;",
                "b": "SELECT 2;",
            }


# --------------------------------------------------------------------------- settings


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
