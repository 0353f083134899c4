"""msgspec decode errors as RFC 6901 JSON pointers to the failing field."""

from __future__ import annotations

import msgspec
import pytest

from api.decode import _pointer, field_error
from api.schemas import IngestBatch, SiteCreate
from domain.errors import FieldError

_decode_batch = msgspec.json.Decoder(IngestBatch)


def decode_error(body: bytes) -> msgspec.ValidationError:
    with pytest.raises(msgspec.ValidationError) as caught:
        _decode_batch.decode(body)
    return caught.value


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
