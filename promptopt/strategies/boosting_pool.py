"""What boosting reads from the ensemble's samples on its train pool: per question
how often the members agree and whether they are right, which questions are hard
enough to become the next member's demonstrations, and those demonstrations.
"""

from __future__ import annotations

from dataclasses import dataclass

from promptopt.core.domain import Example
from promptopt.evaluation.ensemble import plurality

Samples = list[tuple[str, str]]
"""One member's sampled (raw output, prediction) pairs on one question."""


@dataclass
class PoolStat:
    """What the ensemble so far did on one pool question."""

    example: Example
    index: int
    """Position in the pool (the last tie-break)."""
    answer: str
    agreement: float
    right: bool | None
    """Whether the vote is right; None when labels are not read (test-time)."""
    reasoning: str
    """Raw text of the first sample behind the vote."""
    right_sample: str | None = None
    """Raw text of the first right sample, if any (train-time)."""
    right_prediction: str | None = None


def pool_stats(
    pool: list[Example],
    answers: list[dict[str, Samples]],
    score=None,  # type: ignore[no-untyped-def]
) -> list[PoolStat]:
    """Vote, agreement and (with a scorer) correctness of every pool question.

    `answers[member][example id]` are the member's samples; the vote here is the
    plain plurality over all of them (the selection rule of the paper).
    """
    stats = []
    for index, example in enumerate(pool):
        flat = [pair for member in answers for pair in member[example.id]]
        vote = plurality([pred for _, pred in flat])
        reasoning = flat[vote.first_index][0] if vote.first_index >= 0 else ""
        stat = PoolStat(example, index, vote.answer, vote.agreement, None, reasoning)
        if score is not None:
            stat.right = bool(vote.answer) and is_right(score(vote.answer, example))
            for raw, pred in flat:
                if pred.strip() and is_right(score(pred, example)):
                    stat.right_sample, stat.right_prediction = raw, pred
                    break
        stats.append(stat)
    return stats


def is_right(value: float) -> bool:
    """A sample counts as right only with full credit (partial F1 does not)."""
    return value >= 1.0 - 1e-9


def select_train_time(
    stats: list[PoolStat], shots: int, demo_source: str = "sample", gold_fallback: bool = True
) -> list[tuple[PoolStat, str]]:
    """Hard questions with labels, best first, as (question, demonstration source).

    Order: the vote is wrong but a sample is right (the paper's "hard"), then,
    with `gold_fallback` (or `demo_source=gold`), wrong with no right sample,
    then right but not unanimous; within each, lowest agreement first, then
    pool order. The source is "sample" (show the right sample) or "gold".
    """
    ranked: list[tuple[tuple, PoolStat, str]] = []
    for s in stats:
        has_sample = s.right_sample is not None
        if demo_source == "gold":
            source = "gold"
        elif has_sample:
            source = "sample"
        elif gold_fallback and not s.right:
            source = "gold"
        else:
            continue
        if s.right and s.agreement >= 1.0 - 1e-9:
            continue  # unanimous and right: not hard
        if s.right:
            tier = 2
        elif demo_source == "gold" or has_sample:
            tier = 0
        else:
            tier = 1
        ranked.append(((tier, round(s.agreement, 9), s.index), s, source))
    ranked.sort(key=lambda r: r[0])
    return [(s, source) for _, s, source in ranked[:shots]]


def select_test_time(stats: list[PoolStat], shots: int, floor: float) -> list[PoolStat]:
    """Hard questions without labels: agreement at least `floor`, lowest first, then
    pool order; a question with no parsable answer is never picked."""
    eligible = [s for s in stats if s.answer and s.agreement >= floor - 1e-9]
    eligible.sort(key=lambda s: (round(s.agreement, 9), s.index))
    return eligible[:shots]


def train_demo(stat: PoolStat, source: str, reasoning: bool) -> Example:
    """The demonstration a train-time hard question becomes."""
    ex = stat.example
    if source == "gold":
        return ex
    shown = (stat.right_sample or "").strip() if reasoning else None
    return Example(
        id=ex.id, input=ex.input, target=ex.target, aliases=ex.aliases, demo_output=shown
    )


def test_demo(stat: PoolStat, reasoning: bool) -> Example:
    """A test-time demonstration: the majority answer as pseudo-label, never the label."""
    ex = stat.example
    shown = stat.reasoning.strip() if reasoning else None
    return Example(id=ex.id, input=ex.input, target=stat.answer, demo_output=shown)
