from __future__ import annotations

import pytest

from promptopt.core.domain import Example
from promptopt.core.errors import ConfigError
from promptopt.strategies.halving import halving_cost, successive_halving


def dev_set(n: int) -> list[Example]:
    return [Example(id=f"d{i}", input=str(i), target=str(i)) for i in range(n)]


def run(quality: dict[str, float], dev: list[Example], start: int, eta: int):
    """Halving on a made-up model: candidate c gets example i right
    iff i < quality[c] * len(dev)."""
    scored: dict[str, dict[str, float]] = {c: {} for c in quality}
    evaluations = []
    rounds = []

    def score_round(alive: list[str], subset: list[Example], _round: int) -> None:
        for c in alive:
            for e in subset:
                if e.id not in scored[c]:
                    evaluations.append((c, e.id))
                    scored[c][e.id] = float(int(e.input) < quality[c] * len(dev))

    def mean(c: str, subset: list[Example]) -> float:
        return sum(scored[c][e.id] for e in subset) / max(1, len(subset))

    survivors = successive_halving(
        list(quality),
        dev,
        start,
        eta,
        score_round,
        mean,
        lambda r, m, ranking: rounds.append((r, m, list(ranking))),
    )
    return survivors, evaluations, rounds, scored


def test_the_best_survives_scored_on_all_of_dev_and_cost_is_what_was_spent() -> None:
    quality = {"a": 0.2, "b": 0.9, "c": 0.5, "d": 0.1, "e": 0.7, "f": 0.3}
    dev = dev_set(20)
    survivors, evaluations, rounds, scored = run(quality, dev, start=4, eta=2)
    assert survivors[0] == "b"
    assert len(scored["b"]) == len(dev)
    assert [m for _, m, _ in rounds] == [4, 8, 16, 20]
    assert [len(r) for _, _, r in rounds] == [6, 3, 2, 1]
    assert len(evaluations) == len(set(evaluations)) == halving_cost(6, 20, 4, 2)


def test_a_schedule_that_never_grows_is_refused() -> None:
    with pytest.raises(ConfigError, match="halving_start=1 or more"):
        run({"a": 0.5, "b": 0.5}, dev_set(8), start=0, eta=2)
    with pytest.raises(ValueError):
        halving_cost(3, 8, 0, 2)
