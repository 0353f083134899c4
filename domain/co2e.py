"""CO2-equivalent of methane: versioned GWP100 factors (IPCC)."""

from __future__ import annotations

from typing import Literal

import msgspec

GwpVersion = Literal["AR6-fossil", "AR6-non-fossil", "AR5", "AR4"]

# GWP100 of CH4: AR6 (2021) distinguishes fossil from non-fossil methane.
GWP100: dict[str, float] = {
    "AR6-fossil": 29.8,
    "AR6-non-fossil": 27.0,
    "AR5": 28.0,
    "AR4": 25.0,
}


class Gwp(msgspec.Struct, frozen=True):
    """The factor a figure was computed with, stated beside every CO2e number."""

    version: str
    factor: float


def gwp(version: str) -> Gwp:
    return Gwp(version, GWP100[version])


def t_co2e(methane_kg: float, factor: float) -> float:
    """Tonnes CO2e of methane_kg (kg CH4 * GWP / 1000), rounded to the gram."""
    return round(methane_kg * factor / 1000.0, 6)
