"""Multi-host DATABASE_URLs: split per host for connecting, and refused in production unless
writes are bound to the primary."""

from __future__ import annotations

from service.infra.db import split_hosts
from service.infra.settings import DEV_ADMIN_TOKEN, Settings, host_list, target_session_attrs

TOKENS = "ops:" + "x" * 40
MULTI = "postgresql://app:p%40ss@db1:5432,db2:5433,[::1]:5434/emissions?sslmode=disable"


def test_a_multi_host_url_splits_into_one_url_per_host_keeping_login_database_and_options() -> None:
    assert split_hosts(MULTI) == [
        "postgresql://app:p%40ss@db1:5432/emissions?sslmode=disable",
        "postgresql://app:p%40ss@db2:5433/emissions?sslmode=disable",
        "postgresql://app:p%40ss@[::1]:5434/emissions?sslmode=disable",
    ]


def test_a_single_host_url_is_left_as_it_is() -> None:
    url = "postgresql://postgres@127.0.0.1:5432/emissions?target_session_attrs=read-write"
    assert split_hosts(url) == [url]
    assert host_list(url) == ["127.0.0.1:5432"]


def test_target_session_attrs_comes_from_the_query_else_any() -> None:
    assert target_session_attrs(MULTI + "&target_session_attrs=read-write") == "read-write"
    assert target_session_attrs("postgresql://db1,db2/emissions") == "any"


def test_production_refuses_several_hosts_without_read_write() -> None:
    settings = Settings(environment="production", admin_tokens=TOKENS, database_url=MULTI)
    assert settings.production_problems() == [
        "DATABASE_URL names 3 hosts without target_session_attrs=read-write: writes could"
        " reach a standby; add ?target_session_attrs=read-write"
    ]
    for attrs in ("read-write", "primary"):
        bound = Settings(
            environment="production",
            admin_tokens=TOKENS,
            database_url=f"{MULTI}&target_session_attrs={attrs}",
        )
        assert bound.production_problems() == []


def test_development_accepts_any_url() -> None:
    assert (
        Settings(database_url=MULTI, admin_tokens=f"dev:{DEV_ADMIN_TOKEN}").production_problems()
        == []
    )


def test_connect_timeout_and_read_url_settings() -> None:
    settings = Settings.from_env(
        {"DB_CONNECT_TIMEOUT_S": "1.5", "READ_DATABASE_URL": "postgresql://r1,r2/emissions"}
    )
    assert settings.db_connect_timeout_s == 1.5
    assert settings.read_database_url == "postgresql://r1,r2/emissions"
    assert Settings().db_connect_timeout_s == 5.0
    assert Settings().read_database_url is None
