"""Bayesian optimization over a grid of categorical choices (botorch).

The joint optimizer picks one instruction and one demonstration set per trial
(and, on tasks scored by label log-probabilities, calibrated or not). Each
choice is one-hot encoded and the codes concatenated, so a pair is a point x in
{0, 1}^(I + D) with exactly two ones (one more dimension, one more one). A GP
with an ARD RBF kernel on that space sees two pairs as close when they share the
instruction, the demo set, or both, and learns one lengthscale per option: how
much swapping that option in or out changes the score. That is what lets one minibatch of pair
(a, b) inform pairs (a, c) and (d, b), which is the point of modelling the
choices jointly rather than running a bandit over all I x D pairs (MIPROv2
uses TPE for the same reason).

Trials are noisy (a minibatch of a few dev examples), so the GP learns its noise
and the incumbent for expected improvement is the best posterior mean at an
observed pair, not the best raw observation. The candidates are enumerated (the
grid is small), so the acquisition is maximized exactly.

Shapes are written as (rows, cols); all tensors are float64, as botorch wants.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import torch
from botorch.acquisition.analytic import LogExpectedImprovement
from botorch.exceptions.errors import BotorchError, ModelFittingError
from botorch.fit import fit_gpytorch_mll
from botorch.models import SingleTaskGP
from botorch.models.transforms.outcome import Standardize
from gpytorch.mlls import ExactMarginalLogLikelihood

Pair = tuple[int, ...]
"""One option index per dimension: (instruction, demo set[, calibration])."""
FIT_MAXITER = 40
"""L-BFGS steps of a GP fit: the hyperparameters of a few dozen points settle well
before this, and each step costs a few ms, once per trial."""


def encode(pairs: Sequence[Pair], sizes: Pair) -> torch.Tensor:
    """(len(pairs), sum(sizes)) one-hot codes, one block per dimension."""
    offsets = [sum(sizes[:d]) for d in range(len(sizes))]
    x = torch.zeros(len(pairs), sum(sizes), dtype=torch.float64)
    for row, pair in enumerate(pairs):
        if len(pair) != len(sizes):
            raise ValueError(f"pair {pair} does not have one index per dimension {sizes}")
        for offset, index in zip(offsets, pair, strict=True):
            x[row, offset + index] = 1.0
    return x


@contextmanager
def one_thread() -> Iterator[None]:
    """GP algebra on a few dozen points is all overhead when split across threads: on
    a busy 2-core machine one thread fits 5x faster (0.4 s against 2.2 s a trial)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def fit(observed: Sequence[Pair], y: Sequence[float], sizes: Pair, seed: int) -> SingleTaskGP:
    """GP on the observed pairs' minibatch scores (repeats are separate noisy points)."""
    train_x = encode(observed, sizes)
    train_y = torch.tensor(list(y), dtype=torch.float64).unsqueeze(-1)
    with torch.random.fork_rng(), one_thread():
        torch.manual_seed(seed)
        gp = SingleTaskGP(train_x, train_y, outcome_transform=Standardize(m=1))
        fit_gpytorch_mll(
            ExactMarginalLogLikelihood(gp.likelihood, gp),
            optimizer_kwargs={"options": {"maxiter": FIT_MAXITER}},
        )
    return gp


def posterior_mean(gp: SingleTaskGP, pairs: Sequence[Pair], sizes: Pair) -> list[float]:
    with torch.no_grad():
        return gp.posterior(encode(pairs, sizes)).mean.squeeze(-1).tolist()


def next_pair(
    observed: Sequence[Pair],
    y: Sequence[float],
    sizes: Pair,
    available: Sequence[Pair],
    seed: int,
) -> tuple[Pair, list[float]]:
    """The available pair with the highest log expected improvement, and the GP's
    posterior means at `available` (for the events). Raises `BOFailed` when the GP
    cannot be fitted or evaluated (e.g. every observation identical)."""
    if not available:
        raise ValueError("no pair left to try")
    if len(set(y)) < 2:
        raise BOFailed("every observation is the same: nothing to model yet")
    try:
        gp = fit(observed, y, sizes, seed)
        with one_thread():
            best_f = max(posterior_mean(gp, list(dict.fromkeys(observed)), sizes))
            acquisition = LogExpectedImprovement(gp, best_f=best_f)
            with torch.no_grad():
                values = acquisition(encode(available, sizes).unsqueeze(1))  # (n, 1, d) -> (n,)
            means = posterior_mean(gp, available, sizes)
    except (BotorchError, ModelFittingError, RuntimeError, ValueError) as error:
        raise BOFailed(f"{type(error).__name__}: {str(error)[:200]}") from None
    if not torch.isfinite(values).any():
        raise BOFailed("the acquisition is not finite anywhere")
    values = torch.nan_to_num(values, nan=-torch.inf)
    return available[int(values.argmax())], means


class BOFailed(Exception):
    """The GP or the acquisition broke numerically; the caller explores instead."""
