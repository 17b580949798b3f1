"""GP over one-hot (instruction, demo set) choices: encoding, and that it finds a good
pair in fewer trials than uniform choice on a synthetic additive objective."""

from __future__ import annotations

import random

import pytest
import torch

from promptopt.strategies import choice_bo


def test_encode_puts_one_one_per_choice() -> None:
    x = choice_bo.encode([(0, 0), (2, 1)], (3, 2))
    assert x.shape == (2, 5) and x.dtype == torch.float64
    assert x.sum(dim=1).tolist() == [2.0, 2.0]
    assert x[1].tolist() == [0, 0, 1, 0, 1]


def test_encode_handles_a_third_dimension_and_refuses_a_short_pair() -> None:
    x = choice_bo.encode([(1, 0, 1)], (2, 2, 2))
    assert x[0].tolist() == [0, 1, 1, 0, 0, 1]
    with pytest.raises(ValueError, match="one index per dimension"):
        choice_bo.encode([(1, 0)], (2, 2, 2))


def test_constant_observations_fail_cleanly_or_pick_an_available_pair() -> None:
    available = [(1, 1), (2, 2)]
    try:
        pair, means = choice_bo.next_pair([(0, 0)] * 3, [0.0] * 3, (3, 3), available, seed=0)
    except choice_bo.BOFailed:
        return
    assert pair in available and len(means) == 2


def objective(pair: tuple[int, int], rng: random.Random) -> float:
    """Additive effects: instruction 4 and demo set 3 are best; noisy like a minibatch."""
    instr = [0.1, 0.2, 0.15, 0.05, 0.5, 0.1][pair[0]]
    demos = [0.0, 0.1, 0.05, 0.35, 0.1, 0.0][pair[1]]
    return instr + demos + rng.gauss(0, 0.05)


def search(use_bo: bool, seed: int, trials: int = 14) -> float:
    rng = random.Random(seed)
    pairs = [(i, j) for i in range(6) for j in range(6)]
    observed: list[tuple[int, int]] = []
    y: list[float] = []
    for trial in range(trials):
        untried = [p for p in pairs if p not in observed]
        if use_bo and trial >= 4:
            try:
                pair, _ = choice_bo.next_pair(observed, y, (6, 6), untried, seed=seed + trial)
            except choice_bo.BOFailed:
                pair = rng.choice(untried)
        else:
            pair = rng.choice(untried)
        observed.append(pair)
        y.append(objective(pair, rng))
    best = max(observed, key=lambda p: y[observed.index(p)])
    return objective(best, random.Random(0)) - 0.0  # true value at the chosen pair (+noise 0)


@pytest.mark.parametrize("trials", [14])
def test_bo_beats_uniform_choice_at_equal_trials(trials: int) -> None:
    bo = [search(True, s, trials) for s in range(4)]
    uniform = [search(False, s, trials) for s in range(4)]
    assert sum(bo) / len(bo) > sum(uniform) / len(uniform)
