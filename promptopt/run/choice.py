"""The strategy's search within a run, and the choice of what the run exports.

The start is scored first, the strategy searches (the budget's end is caught here,
and only here), the demonstration stage follows, and the best candidate replaces
the start only when it beats it on dev by more than noise.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from promptopt.core.domain import (
    Candidate,
    Ensemble,
    EvalResult,
    Prompt,
)
from promptopt.core.errors import BudgetExhausted
from promptopt.evaluation.ensemble import evaluate_ensemble
from promptopt.run.start_guard import PairedDev, paired_dev
from promptopt.strategies.base import (
    SearchContext,
    SearchResult,
)
from promptopt.strategies.demo_stage import add_demonstrations, reserve


@dataclass
class Choice:
    """What a search exports: the starting prompt, or the strategy's best when it
    beat the start on dev by more than noise."""

    prompt: Prompt
    dev: EvalResult
    start_dev: EvalResult
    improved: bool
    reason: str
    paired: PairedDev | None = None
    ensemble: Ensemble | None = None


def search_from_start(
    ctx: SearchContext, strategy: Any, config: Any, demo_sets: int = 0
) -> tuple[SearchResult, Choice]:
    """Score the start on all of dev, run the strategy, and keep the start unless beaten.

    A strategy that only writes instructions is followed by the demonstration
    stage (`demo_sets` sets; 0 = none), which gets a share of the call budget
    held back from the strategy.

    The start's dev calls come out of the search budget, first, so the start is
    always measured; the check of the strategy's best reuses the scores the
    strategy already paid for (the run journal serves them) and pays only for dev
    examples the strategy did not score.
    """
    start, dev = ctx.start_prompt, ctx.task.examples("dev")
    ctx.reporter.phase(f"Scoring the starting prompt on dev ({len(dev)})", total=len(dev))
    try:
        start_dev = ctx.evaluator.evaluate(start, dev, progress=ctx.reporter.advance)
    except BudgetExhausted as stop:
        raise BudgetExhausted(
            f"the budget does not cover scoring the starting prompt on dev ({len(dev)} "
            f"examples; or lower --dev-size): {stop}"
        ) from None
    ctx.record_candidate(start.instruction, start_dev.score, start_dev.n, "start")
    start_row = Candidate(start, start_dev.score, start_dev.n, "start")
    stage = 0 if getattr(strategy, "chooses_demonstrations", False) else demo_sets
    ctx.usage.held_back_calls = reserve(ctx, stage)
    try:
        result = search_to_budget(ctx, strategy, config)
    finally:
        ctx.usage.held_back_calls = 0
    if stage and result.ensemble is None:
        result.candidates = add_demonstrations(ctx, result.candidates, stage)
    keep = Choice(start, start_dev, start_dev, improved=False, reason="")
    candidates = [c for c in result.candidates if c.prompt != start]
    result.candidates = [start_row, *candidates]
    if result.ensemble is not None:
        return result, _check_ensemble(ctx, result.ensemble, keep)
    if not candidates:
        keep.reason = "no candidate other than the starting prompt was scored"
        return result, keep
    best = candidates[0].prompt
    ctx.reporter.phase(f"Checking the best candidate on all of dev ({len(dev)})", total=len(dev))
    best_dev = _evaluate_what_budget_allows(ctx, best, dev)
    paired = paired_dev(start_dev, best_dev)
    if paired.beats_start:
        reason = (
            f"beats the starting prompt on dev by {paired.diff:+.3f} "
            f"(se {paired.se:.3f}, n={paired.n})"
        )
        return result, Choice(best, best_dev, start_dev, True, reason, paired)
    keep.paired = paired
    keep.reason = (
        f"the best candidate's dev difference {paired.diff:+.3f} (se {paired.se:.3f}, "
        f"n={paired.n}) is within noise"
    )
    return result, keep


def search_to_budget(ctx: SearchContext, strategy: Any, config: Any) -> SearchResult:
    """Run the strategy; the one place its search meets the budget's end, where the
    run goes on with what the strategy scored so far (`SearchContext.so_far`)."""
    try:
        return strategy.search(ctx, config)
    except BudgetExhausted as stop:
        return _result_at_budget(ctx, stop)
    finally:
        ctx.so_far = None


def _result_at_budget(ctx: SearchContext, stop: BudgetExhausted) -> SearchResult:
    ctx.store.event("budget_exhausted", message=str(stop))
    try:
        result = ctx.so_far() if ctx.so_far is not None else None
    except BudgetExhausted:  # finishing the partial result needed calls too
        result = None
    if result is None:
        ctx.reporter.note(f"stopped at the budget before any candidate was scored: {stop}")
        return SearchResult(candidates=[], stopped_by_budget=True)
    ctx.reporter.note(f"stopped early: {stop}")
    result.stopped_by_budget = True
    return result


def _evaluate_what_budget_allows(
    ctx: SearchContext, prompt: Prompt, examples: list[Any]
) -> EvalResult:
    """All of them in one batch if the budget allows; else those already paid for
    (the journal serves them free) and as many more as fit, one at a time."""
    try:
        return ctx.evaluator.evaluate(prompt, examples, progress=ctx.reporter.advance)
    except BudgetExhausted:
        rows = []
        for example in examples:
            try:
                rows += ctx.evaluator.evaluate(prompt, [example]).results
            except BudgetExhausted:
                continue
        mean = sum(r.score for r in rows) / len(rows) if rows else 0.0
        return EvalResult(score=mean, n=len(rows), results=rows)


def _check_ensemble(ctx: SearchContext, ensemble: Ensemble, keep: Choice) -> Choice:
    """An ensemble replaces the start only when its vote beats it on dev."""
    dev = ctx.task.examples("dev")
    ctx.reporter.phase(
        f"Checking the ensemble on dev ({len(ensemble.members)} prompts x {len(dev)})",
        total=len(ensemble.members) * len(dev),
    )
    try:
        voted = evaluate_ensemble(ctx.evaluator, ensemble, dev, progress=ctx.reporter.advance)
    except BudgetExhausted:
        keep.reason = "the budget ran out before the ensemble could be checked on dev"
        return keep
    paired = paired_dev(keep.start_dev, voted.result)
    if not paired.beats_start:
        keep.paired = paired
        keep.reason = (
            f"the ensemble's dev difference {paired.diff:+.3f} (se {paired.se:.3f}, "
            f"n={paired.n}) is within noise"
        )
        return keep
    reason = f"the ensemble beats the starting prompt on dev by {paired.diff:+.3f}"
    return Choice(ensemble.members[0], voted.result, keep.start_dev, True, reason, paired, ensemble)
