"""Roles: each one may do what the roles below it may; ADMIN_TOKENS entries with and without one."""

from __future__ import annotations

import pytest

from domain.roles import Actor, UnknownRole, allows, parse_token_entries
from service.infra.settings import Settings


def test_each_role_includes_the_ones_below_it() -> None:
    assert allows("admin", "viewer") and allows("admin", "operator") and allows("admin", "admin")
    assert allows("operator", "viewer") and allows("operator", "operator")
    assert allows("viewer", "viewer")


def test_no_role_reaches_above_itself() -> None:
    assert not allows("viewer", "operator")
    assert not allows("viewer", "admin")
    assert not allows("operator", "admin")


def test_an_entry_without_a_role_is_an_admin_as_every_token_was_before_roles() -> None:
    assert parse_token_entries("ops:s3cret") == {"s3cret": Actor("ops", "admin")}


def test_an_entry_may_name_its_role() -> None:
    tokens = parse_token_entries("wall:viewer:t1, oncall:operator:t2,root:admin:t3")
    assert tokens == {
        "t1": Actor("wall", "viewer"),
        "t2": Actor("oncall", "operator"),
        "t3": Actor("root", "admin"),
    }


def test_both_forms_mix_and_the_token_after_a_role_may_hold_colons() -> None:
    tokens = parse_token_entries("old:t1,new:viewer:a:b")
    assert tokens == {"t1": Actor("old", "admin"), "a:b": Actor("new", "viewer")}


def test_blank_entries_and_entries_without_a_name_or_token_are_skipped() -> None:
    assert parse_token_entries("") == {}
    assert parse_token_entries(",, ,") == {}
    assert parse_token_entries(":t1,ops:,ops:viewer:") == {}


@pytest.mark.parametrize("entry", ["ops:viewr:t1", "ops:Admin:t1", "ops::t1"])
def test_a_mistyped_role_is_refused_not_read_as_part_of_an_admin_token(entry: str) -> None:
    with pytest.raises(UnknownRole, match="roles are viewer, operator, admin"):
        parse_token_entries(entry)


def test_settings_name_the_first_admin_token() -> None:
    settings = Settings.from_env({"ADMIN_TOKENS": "wall:viewer:t1,oncall:operator:t2,ops:t3"})
    assert settings.admin_token == "t3"
    assert Settings.from_env({"ADMIN_TOKENS": "wall:viewer:t1"}).admin_token is None


def test_production_checks_the_length_of_the_token_part_of_every_form() -> None:
    strong = "x" * 32
    ok = Settings.from_env(
        {"ENVIRONMENT": "production", "ADMIN_TOKENS": f"a:{strong},b:viewer:{strong}y"}
    )
    assert ok.production_problems() == []
    # "viewer:" + 25 characters is 32 characters, but the token is the 25.
    weak = Settings.from_env({"ENVIRONMENT": "production", "ADMIN_TOKENS": f"b:viewer:{'y' * 25}"})
    problems = weak.production_problems()
    assert any("the token of 'b' has 25 characters" in p for p in problems), problems
