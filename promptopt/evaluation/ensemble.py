"""Prompt ensembles: the vote over sampled answers, and scoring an ensemble.

An ensemble's answer to a question is a vote over every member's sampled
answers (members x samples). The rules are deterministic:

- answers are compared on a normalized key (whitespace collapsed, case folded),
  so "Positive" and "positive" are one answer; the answer reported is the
  first-seen spelling;
- an unparsable answer (the scorer extracted nothing) casts no vote, but still
  counts in the agreement's denominator: a prompt that cannot answer lowers the
  ensemble's confidence;
- a tie goes to the answer whose first vote came earliest in member order,
  then sample order (the first member is the ensemble's initial prompt);
- no parsable answer at all gives the empty answer, which scores 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from promptopt.core.domain import Ensemble, EvalResult, Example, ExampleResult
from promptopt.evaluation.evaluator import Evaluator, ProgressFn


def vote_key(prediction: str) -> str:
    """What makes two extracted answers the same vote."""
    return " ".join(prediction.split()).casefold()


@dataclass(frozen=True)
class Vote:
    answer: str
    """The winning prediction, as first spelled ("" when nothing was parsable)."""
    agreement: float
    """Share of all the vote weight (unparsable answers included) behind the answer."""
    first_index: int = -1
    """Position of the answer's first vote (its reasoning is this sample's text)."""


def plurality(predictions: Sequence[str], weights: Sequence[float] | None = None) -> Vote:
    """The (weighted) plurality answer of `predictions`, given in member-then-sample order.

    With `weights` (one per prediction), each vote counts its weight; without,
    each counts 1.
    """
    weights = list(weights) if weights is not None else [1.0] * len(predictions)
    if len(weights) != len(predictions):
        raise ValueError("plurality needs one weight per prediction")
    totals: dict[str, float] = {}
    first: dict[str, int] = {}
    for i, (prediction, weight) in enumerate(zip(predictions, weights, strict=True)):
        key = vote_key(prediction)
        if not key:
            continue
        totals[key] = totals.get(key, 0.0) + weight
        first.setdefault(key, i)
    total = sum(weights)
    if not totals or total <= 0:
        return Vote("", 0.0)
    # Rounded so float sums of equal weights tie exactly; ties go to the earliest vote.
    best = min(totals, key=lambda k: (-round(totals[k], 9), first[k]))
    return Vote(predictions[first[best]].strip(), totals[best] / total, first[best])


def ensemble_vote(ensemble: Ensemble, answers: Sequence[Sequence[str]]) -> Vote:
    """The ensemble's vote on one question: `answers[member][sample]` predictions."""
    weights = ensemble.member_weights()
    flat = [p for member in answers for p in member]
    flat_weights = [w for member, w in zip(answers, weights, strict=True) for _ in member]
    return plurality(flat, flat_weights)


@dataclass
class EnsembleResult:
    """An ensemble's score on a split, and each member's, from the same samples."""

    result: EvalResult
    """The ensemble's vote, per example (output: the reasoning of the winning answer)."""
    members: list[EvalResult]
    """Each member's own plurality vote over its samples, per example."""
    member_sample_accuracy: list[float] = field(default_factory=list)
    """Each member's mean score over all its single samples."""

    def to_dict(self) -> dict:
        return {
            **self.result.to_dict(),
            "members": [
                {"index": i, "score": m.score, "n": m.n, "sample_accuracy": acc}
                for i, (m, acc) in enumerate(
                    zip(self.members, self.member_sample_accuracy, strict=True)
                )
            ],
        }


def evaluate_ensemble(
    evaluator: Evaluator,
    ensemble: Ensemble,
    examples: Sequence[Example],
    progress: ProgressFn | None = None,
) -> EnsembleResult:
    """Sample every member on every example in one batched call, then vote.

    Costs members x samples model calls per example (cache hits count, but cost nothing).
    """
    samples = evaluator.sample_many(
        ensemble.members,
        examples,
        n=ensemble.samples,
        temperature=ensemble.temperature,
        seed=ensemble.seed,
        progress=progress,
    )
    score = evaluator.task.scorer.score
    rows: list[ExampleResult] = []
    member_rows: list[list[ExampleResult]] = [[] for _ in ensemble.members]
    sample_scores: list[list[float]] = [[] for _ in ensemble.members]
    for j, example in enumerate(examples):
        per_member = [samples[m][j] for m in range(len(ensemble.members))]
        vote = ensemble_vote(ensemble, [[pred for _, pred in s] for s in per_member])
        flat_raw = [raw for s in per_member for raw, _ in s]
        output = flat_raw[vote.first_index] if vote.first_index >= 0 else ""
        rows.append(ExampleResult(example.id, output, vote.answer, _score(score, vote, example)))
        for m, member_samples in enumerate(per_member):
            own = plurality([pred for _, pred in member_samples])
            raw = member_samples[own.first_index][0] if own.first_index >= 0 else ""
            member_rows[m].append(
                ExampleResult(example.id, raw, own.answer, _score(score, own, example))
            )
            sample_scores[m] += [float(score(pred, example)) for _, pred in member_samples]
    return EnsembleResult(
        result=_mean(rows),
        members=[_mean(r) for r in member_rows],
        member_sample_accuracy=[sum(s) / len(s) if s else 0.0 for s in sample_scores],
    )


def _score(score, vote: Vote, example: Example) -> float:  # type: ignore[no-untyped-def]
    return float(score(vote.answer, example)) if vote.answer else 0.0


def _mean(rows: list[ExampleResult]) -> EvalResult:
    mean = sum(r.score for r in rows) / len(rows) if rows else 0.0
    return EvalResult(score=mean, n=len(rows), results=rows)
