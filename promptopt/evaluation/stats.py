"""Paired significance tests for two prompts scored on the same examples.

Scores from one test split are paired (same questions), so the tests look at
per-example differences: that is what makes a 2-point gap on 50 questions
detectable when it is real and ignorable when it is noise. Binary scores
(right/wrong) get McNemar's exact test on the discordant pairs; graded scores
(f1, likelihoods) get a paired bootstrap of the mean difference. The binomial
test and the resampling are scipy's (`binomtest`, `bootstrap`); what is left here
is the choice of test and the add-one smoothed bootstrap p-value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
from scipy.stats import binomtest, bootstrap

Alternative = Literal["two-sided", "less", "greater"]
"""'less': the new scores are below the old ones (a regression); 'greater': above."""


@dataclass(frozen=True)
class PairedComparison:
    """new minus old on the same n examples, with a p-value for the chosen alternative."""

    method: str
    n: int
    new_mean: float
    old_mean: float
    difference: float
    ci_low: float
    ci_high: float
    p_value: float
    alternative: str
    alpha: float

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "significant": self.significant}


def binomial_tail(k: int, n: int) -> float:
    """P(X >= k) for X ~ Binomial(n, 1/2) (n is a count of discordant pairs)."""
    if k <= 0:
        return 1.0
    return float(binomtest(k, n, 0.5, alternative="greater").pvalue)


def mcnemar_exact(new: Sequence[float], old: Sequence[float], alternative: Alternative) -> float:
    """Exact McNemar p-value: under no difference, each discordant pair is a fair coin,
    so it is a binomial test of the pairs where `new` is worse among the discordant."""
    worse = sum(1 for a, b in zip(new, old, strict=True) if a < b)  # old right, new wrong
    better = sum(1 for a, b in zip(new, old, strict=True) if a > b)
    discordant = worse + better
    if discordant == 0:
        return 1.0
    if alternative == "less":
        return binomial_tail(worse, discordant)
    if alternative == "greater":
        return binomial_tail(better, discordant)
    # The doubled larger tail (capped at 1): scipy's two-sided test sums every outcome
    # as unlikely as the one seen, which for a fair coin is the same number.
    return min(1.0, 2 * binomial_tail(max(worse, better), discordant))


def bootstrap_differences(
    new: Sequence[float], old: Sequence[float], resamples: int, seed: int
) -> tuple[np.ndarray, float, float]:
    """Mean differences over resampled example indices (the same indices for both),
    and their percentile 95% interval.

    scipy's `bootstrap` draws the indices as `rng.integers(0, n, (resamples, n))`,
    the draws this module made by hand before, so a seed gives the same numbers.
    It needs two examples; one example's differences are all the same number.
    """
    diffs = np.asarray(new, dtype=float) - np.asarray(old, dtype=float)
    if len(diffs) < 2:
        resampled = np.full(resamples, diffs.mean())
        low, high = np.quantile(resampled, [0.025, 0.975])
        return resampled, float(low), float(high)
    result = bootstrap(
        (diffs,),
        np.mean,
        n_resamples=resamples,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    interval = result.confidence_interval
    return result.bootstrap_distribution, float(interval.low), float(interval.high)


def bootstrap_p_value(resampled: np.ndarray, alternative: Alternative) -> float:
    """The share of resampled differences on the null side of zero (add-one smoothed)."""
    total = len(resampled) + 1
    at_or_below = (np.count_nonzero(resampled <= 0) + 1) / total
    at_or_above = (np.count_nonzero(resampled >= 0) + 1) / total
    if alternative == "less":
        return float(at_or_above)
    if alternative == "greater":
        return float(at_or_below)
    return float(min(1.0, 2 * min(at_or_below, at_or_above)))


def is_binary(values: Sequence[float]) -> bool:
    return all(v in (0.0, 1.0) for v in values)


def compare_paired(
    new: Sequence[float],
    old: Sequence[float],
    *,
    alternative: Alternative = "two-sided",
    alpha: float = 0.05,
    resamples: int = 10_000,
    seed: int = 0,
) -> PairedComparison:
    """Is `new` different from (or below, or above) `old` on the same examples?

    McNemar when every score is 0 or 1, else a paired bootstrap. The interval is
    always the bootstrap 95% interval of the mean difference, so it reads the
    same whichever test gave the p-value.
    """
    if len(new) != len(old):
        raise ValueError(f"paired scores need equal lengths, got {len(new)} and {len(old)}")
    if not new:
        raise ValueError("no paired examples to compare")
    resampled, low, high = bootstrap_differences(new, old, resamples, seed)
    binary = is_binary(new) and is_binary(old)
    p_value = (
        mcnemar_exact(new, old, alternative)
        if binary
        else bootstrap_p_value(resampled, alternative)
    )
    new_mean, old_mean = float(np.mean(new)), float(np.mean(old))
    return PairedComparison(
        method="mcnemar-exact" if binary else "paired-bootstrap",
        n=len(new),
        new_mean=new_mean,
        old_mean=old_mean,
        difference=new_mean - old_mean,
        ci_low=low,
        ci_high=high,
        p_value=p_value,
        alternative=alternative,
        alpha=alpha,
    )
