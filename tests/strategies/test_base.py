"""Knob checks shared by every strategy: finite floats from `-p`, ranges in one line."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import pytest

from promptopt.core.errors import ConfigError
from promptopt.core.registry import STRATEGIES, get_strategy
from promptopt.strategies.base import build_config, check_range, knob


@dataclass
class Knobs:
    size: int = knob(4, "a count")
    rate: float = knob(0.5, "a probability")
    shift: float = knob(0.0, "any finite number")

    def __post_init__(self) -> None:
        check_range(self, "size", at_least=1)
        check_range(self, "rate", at_least=0, at_most=1)
        check_range(self, "shift")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"size": 0}, "size must be at least 1, got 0: pass e.g. -p size=4 (the default)"),
        ({"rate": 1.5}, "rate must be between 0 and 1, got 1.5: pass e.g. -p rate=0.5"),
        ({"rate": -0.1}, "rate must be between 0 and 1, got -0.1"),
        ({"rate": float("nan")}, "rate must be a finite number, got nan"),
        ({"shift": float("-inf")}, "shift must be a finite number, got -inf"),
    ],
)
def test_check_range_names_the_knob_the_value_and_the_range(
    values: dict[str, float], message: str
) -> None:
    with pytest.raises(ConfigError) as error:
        Knobs(**values)  # type: ignore[arg-type]
    assert message in str(error.value) and "\n" not in str(error.value)


def test_check_range_bounds() -> None:
    Knobs(size=1, rate=0.0, shift=-5.0)
    Knobs(rate=1.0)
    with pytest.raises(ConfigError, match="rate must be above 0, got 0.0"):
        check_range(Knobs(rate=0.0), "rate", above=0)
    with pytest.raises(ConfigError, match="rate must be above 0 and at most 0.25, got 0.5"):
        check_range(Knobs(), "rate", above=0, at_most=0.25)


@pytest.mark.parametrize("raw", ["nan", "NaN", "inf", "-inf", "infinity", "1e999"])
def test_build_config_refuses_non_finite_floats_before_any_range_check(raw: str) -> None:
    with pytest.raises(ConfigError, match=f"shift must be a finite number, got '{raw}'"):
        build_config(Knobs, {"shift": raw})


def float_knobs() -> list[tuple[str, str]]:
    out = []
    for name in STRATEGIES:
        config = get_strategy(name).Config
        out += [(name, f.name) for f in dataclasses.fields(config) if isinstance(f.default, float)]
    return out


@pytest.mark.parametrize(("strategy", "name"), float_knobs())
@pytest.mark.parametrize("raw", ["nan", "inf"])
def test_no_float_knob_of_any_strategy_takes_nan_or_inf(strategy: str, name: str, raw: str) -> None:
    with pytest.raises(ConfigError, match=f"{name} must be a finite number"):
        build_config(get_strategy(strategy).Config, {name: raw})
