"""Idempotency-Key parsing: bare tokens and quoted sf-strings, 1-255 printable ASCII."""

from __future__ import annotations

import pytest

from domain.idempotency import InvalidIdempotencyKey, MissingIdempotencyKey, parse_key


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
