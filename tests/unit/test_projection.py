from datetime import UTC, datetime

from domain.projection import project_year

MID_YEAR_2025 = datetime(2025, 7, 2, 12, tzinfo=UTC)  # 182.5 of 365 days: half the year


def test_half_the_year_gone_doubles_the_year_to_date() -> None:
    assert project_year(500.0, 2000.0, MID_YEAR_2025).year_end_kg == 1000.0


def test_limit_reached_before_year_end_gives_the_instant_at_the_same_pace() -> None:
    p = project_year(600.0, 1000.0, MID_YEAR_2025)
    assert p.year_end_kg == 1200.0
    # 182.5 days * 1000 / 600 = 304.1667 days after 1 January
    assert p.exceedance_at == datetime(2025, 11, 1, 4, tzinfo=UTC)


def test_no_exceedance_date_when_the_pace_stays_under_the_limit() -> None:
    assert project_year(400.0, 1000.0, MID_YEAR_2025).exceedance_at is None


def test_no_exceedance_date_when_already_exceeded() -> None:
    p = project_year(1500.0, 1000.0, MID_YEAR_2025)
    assert p.exceedance_at is None
    assert p.year_end_kg == 3000.0


def test_nothing_emitted_projects_nothing() -> None:
    p = project_year(0.0, 1000.0, MID_YEAR_2025)
    assert (p.year_end_kg, p.exceedance_at) == (0.0, None)


def test_the_first_instant_of_the_year_projects_only_what_is_there() -> None:
    p = project_year(5.0, 1000.0, datetime(2025, 1, 1, tzinfo=UTC))
    assert (p.year_end_kg, p.exceedance_at) == (5.0, None)
