"""Methane as CO2e: the versioned GWP100 factors."""

from __future__ import annotations

from domain.co2e import GWP100, gwp, t_co2e


def test_co2e_uses_the_versioned_gwp100_factors() -> None:
    assert GWP100 == {"AR6-fossil": 29.8, "AR6-non-fossil": 27.0, "AR5": 28.0, "AR4": 25.0}
    assert t_co2e(1000.0, gwp("AR6-fossil").factor) == 29.8
    assert t_co2e(1000.0, gwp("AR4").factor) == 25.0
    assert t_co2e(1.5, 27.0) == 0.0405
