import math

import pytest
from scipy import stats as scipy_stats

from promptopt.evaluation.stats import binomial_tail, compare_paired, mcnemar_exact


def test_binomial_tail_matches_scipy() -> None:
    for n in (1, 5, 12, 40):
        for k in range(0, n + 1):
            expected = scipy_stats.binom.sf(k - 1, n, 0.5)
            assert math.isclose(binomial_tail(k, n), expected, rel_tol=1e-9, abs_tol=1e-12)


def test_mcnemar_counts_only_discordant_pairs() -> None:
    # 10 pairs where old is right and new wrong, 0 the other way: p = 2 * 0.5**10.
    new = [0.0] * 10 + [1.0] * 30
    old = [1.0] * 10 + [1.0] * 30
    assert mcnemar_exact(new, old, "two-sided") == pytest.approx(2 * 0.5**10)
    assert mcnemar_exact(new, old, "less") == pytest.approx(0.5**10)
    assert mcnemar_exact(new, old, "greater") == pytest.approx(1.0)


def test_identical_scores_are_never_significant() -> None:
    scores = [1.0, 0.0, 1.0, 1.0, 0.0] * 10
    result = compare_paired(scores, scores, alternative="less")
    assert result.p_value == 1.0
    assert not result.significant
    assert result.difference == 0.0


def test_one_flipped_answer_in_fifty_is_noise() -> None:
    old = [1.0] * 25 + [0.0] * 25
    new = list(old)
    new[0] = 0.0
    result = compare_paired(new, old, alternative="less")
    assert result.method == "mcnemar-exact"
    assert result.difference == pytest.approx(-0.02)
    assert not result.significant


def test_a_clear_regression_is_significant() -> None:
    old = [1.0] * 40 + [0.0] * 10
    new = [0.0] * 15 + [1.0] * 25 + [0.0] * 10
    result = compare_paired(new, old, alternative="less")
    assert result.significant
    assert result.ci_high < 0


def test_graded_scores_use_the_bootstrap() -> None:
    old = [0.5 + 0.01 * i for i in range(30)]
    new = [s - 0.2 for s in old]
    result = compare_paired(new, old, alternative="less", seed=3)
    assert result.method == "paired-bootstrap"
    assert result.significant
    assert result.ci_low == pytest.approx(-0.2) and result.ci_high == pytest.approx(-0.2)
    same = compare_paired(old, old, alternative="less")
    assert not same.significant


def test_bootstrap_is_seeded() -> None:
    old = [0.1, 0.4, 0.35, 0.8, 0.6, 0.2, 0.9]
    new = [0.2, 0.3, 0.5, 0.7, 0.65, 0.25, 0.85]
    assert compare_paired(new, old, seed=1) == compare_paired(new, old, seed=1)


def test_unpaired_input_is_refused() -> None:
    with pytest.raises(ValueError, match="equal lengths"):
        compare_paired([1.0], [1.0, 0.0])


# Values the numpy-only implementation (before scipy's binomtest and bootstrap)
# gave with seed=1 and 2000 resamples: (p-value, ci_low, ci_high) per alternative.
BEFORE_SCIPY = {
    "binary": (
        ([0.0] * 15 + [1.0] * 25 + [0.0] * 10, [1.0] * 40 + [0.0] * 10),
        {
            "two-sided": (6.103515625e-05, -0.42, -0.18),
            "less": (3.0517578125e-05, -0.42, -0.18),
            "greater": (1.0, -0.42, -0.18),
        },
    ),
    "binary_tie": (
        ([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 0.0, 0.0], [0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 0.0, 0.0]),
        {
            "two-sided": (1.0, -0.5, 0.5),
            "less": (0.6875, -0.5, 0.5),
            "greater": (0.6875, -0.5, 0.5),
        },
    ),
    "graded": (
        (
            [0.2, 0.3, 0.5, 0.7, 0.65, 0.25, 0.85],
            [0.1, 0.4, 0.35, 0.8, 0.6, 0.2, 0.9],
        ),
        {
            "two-sided": (0.750624687656172, -0.050000000000000044, 0.08571428571428572),
            "less": (0.6276861569215393, -0.050000000000000044, 0.08571428571428572),
            "greater": (0.375312343828086, -0.050000000000000044, 0.08571428571428572),
        },
    ),
    "single": (
        ([0.4], [0.1]),
        {
            "two-sided": (0.0009995002498750624, 0.3, 0.3),
            "less": (1.0, 0.3, 0.3),
            "greater": (0.0004997501249375312, 0.3, 0.3),
        },
    ),
}


@pytest.mark.parametrize("case", sorted(BEFORE_SCIPY))
def test_scipy_gives_the_numbers_the_hand_written_tests_gave(case: str) -> None:
    """The switch to scipy changed no p-value and no interval (beyond the last bit
    of a percentile's interpolation)."""
    (new, old), expected = BEFORE_SCIPY[case]
    for alternative, (p_value, low, high) in expected.items():
        result = compare_paired(new, old, alternative=alternative, seed=1, resamples=2000)
        assert result.p_value == pytest.approx(p_value, rel=1e-12, abs=1e-15)
        assert result.ci_low == pytest.approx(low, rel=1e-12, abs=1e-15)
        assert result.ci_high == pytest.approx(high, rel=1e-12, abs=1e-15)
