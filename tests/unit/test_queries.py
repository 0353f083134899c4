"""Named SQL: queries.load reads `-- name:` blocks from sql/queries/*.sql, once per module."""

from __future__ import annotations

import tempfile
from pathlib import Path
from unittest import mock

import pytest

from service.infra import queries


def test_load_returns_every_named_ingest_query() -> None:
    q = queries.load("ingest")
    assert list(q) == [
        "try_lock_key",
        "find_answer_check_site_and_key",
        "insert_new_batch_event_and_answer",
        "insert_new_batches_events_and_answers",
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
