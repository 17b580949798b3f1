"""Successive halving (Jamieson & Talwalkar 2016), the one loop every strategy uses.

Candidates are scored on a growing prefix of a shuffled dev set; after each
round the better 1/eta keep going and the prefix grows eta-fold, until the
survivors are scored on all of dev. Most calls go to candidates that stay in
the running. APE selects its instructions with it and the demonstration stage
its (instruction, demonstrations) pairs; they differ only in what a candidate
is and how a round is scored, which they pass in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

from promptopt.core.domain import Example
from promptopt.core.errors import ConfigError

K = TypeVar("K")

ScoreRound = Callable[[list[K], list[Example], int], None]
"""Scores the candidates alive in a round on the round's examples (round index from 1)."""
Mean = Callable[[K, list[Example]], float]
"""A candidate's mean score on the given examples (all of them scored)."""
RoundDone = Callable[[int, int, list[K]], None]
"""Called after each round with its index, example count and ranking, best first."""


def successive_halving(
    candidates: Sequence[K],
    dev: list[Example],
    start: int,
    eta: int,
    score_round: ScoreRound[K],
    mean: Mean[K],
    round_done: RoundDone[K] | None = None,
) -> list[K]:
    """The candidates still alive at the end, best first; all of them are scored on
    all of `dev`. Raises ConfigError on a schedule that would never end."""
    alive = list(candidates)
    m = min(start, len(dev))
    round_index = 1
    while alive:
        subset = dev[:m]
        score_round(alive, subset, round_index)
        alive.sort(key=lambda c: mean(c, subset), reverse=True)
        if round_done is not None:
            round_done(round_index, m, alive)
        if m >= len(dev):
            return alive
        before = (len(alive), m)
        alive = alive[: max(1, math.ceil(len(alive) / eta))]
        m = min(m * eta, len(dev))
        if len(alive) >= before[0] and m <= before[1]:
            # Neither fewer candidates nor more examples: the next round would be
            # this one again, forever (halving_start=0 once filled a disk).
            raise ConfigError(
                f"successive halving made no progress in round {round_index} "
                f"({len(alive)} candidates x {m} dev examples, halving_start={start}, "
                f"halving_eta={eta}): pass -p halving_start=1 or more and "
                "-p halving_eta=2 or more"
            )
        round_index += 1
    return alive


def halving_cost(candidates: int, dev: int, start: int, eta: int) -> int:
    """Evaluations `successive_halving` spends on fresh candidates and `dev` examples."""
    if start < 1 or eta < 2:
        raise ValueError(f"halving never ends with start={start}, eta={eta}")
    total, alive, scored, m = 0, candidates, 0, min(start, dev)
    while alive:
        total += alive * (m - scored)
        if m >= dev:
            return total
        alive, scored, m = max(1, math.ceil(alive / eta)), m, min(m * eta, dev)
    return total
