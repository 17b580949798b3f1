"""Demonstrations for strategies that only write instructions.

APE, InstructZero, RLPrompt and Reflexion search the instruction, as their
papers do. A small target model gains most from demonstrations, which need no
proposer (`../shared/FINDINGS.md`: first_word_letter 0.017 with none, 0.833
with 3 shown as chat turns). This stage wraps those strategies without touching
their mechanism: after the strategy, its best instructions and the starting
instruction are crossed with a few demonstration sets drawn from train
(`demo_sets.draw_demo_sets`), and successive halving on dev picks among the
pairs. The instruction alone stays a candidate, so the stage can only add. On tasks
scored by label log-probabilities the bases and the halving's winner are also
tried calibrated (`promptopt.evaluation.calibration`): each prior costs `CALIBRATION_INPUTS`
calls, and the calibrated twin's dev scores reuse the raw prompt's
log-probabilities (the run journal serves them).

The search keeps a share of the call budget for the stage (`DEMO_SHARE` of what
the starting prompt's dev scoring leaves), held back from the strategy, so a
strategy that spends until the budget still leaves the stage its calls.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from promptopt.core.domain import Candidate, Example, Prompt
from promptopt.core.errors import BudgetExhausted
from promptopt.evaluation.calibration import calibration_inputs, label_prior
from promptopt.strategies.base import SearchContext
from promptopt.strategies.demo_sets import DemoSet, draw_demo_sets
from promptopt.strategies.halving import halving_cost, successive_halving

DEFAULT_DEMO_SETS = 4
"""The instruction alone and three demonstration sets."""

DEMO_SHARE = 0.4
"""Share of the calls left after scoring the start on dev that the stage gets. At
200 calls and 20 dev examples that is 72 calls: bootstrapping (8) and halving
6 pairs from 4 dev examples up to all 20 (56) fit. With fewer calls the stage
halves fewer pairs (`_affordable`)."""

BASES = 2
"""Instructions that get demonstrations: the strategy's best and the start (or
the strategy's two best when its best is the start)."""

CALIBRATION_INPUTS = 6
"""Unlabeled train inputs per label prior, as mipro's default."""

HALVING_START = 4
HALVING_ETA = 2
BOOTSTRAP_POOL = 8
MAX_DEMOS = 4


@dataclass
class _Pair:
    prompt: Prompt
    origin: str
    scores: dict[str, float]

    def mean(self, examples: list[Example] | None = None) -> float:
        values = (
            [self.scores[e.id] for e in examples]
            if examples is not None
            else list(self.scores.values())
        )
        return sum(values) / len(values) if values else 0.0

    def candidate(self) -> Candidate:
        return Candidate(self.prompt, self.mean(), len(self.scores), self.origin)


def reserve(ctx: SearchContext, demo_sets: int) -> int:
    """Calls to hold back from the strategy for the stage; 0 without a call cap."""
    left = ctx.calls_left()
    if demo_sets <= 1 or left is None:
        return 0
    return int(left * DEMO_SHARE)


def add_demonstrations(
    ctx: SearchContext, candidates: list[Candidate], demo_sets: int
) -> list[Candidate]:
    """The strategy's candidates with the stage's pairs merged in, best first.

    The stage's winner goes first only when its dev mean is above the strategy's
    best; the start guard then checks whichever is first on all of dev.
    """
    dev = list(ctx.task.examples("dev"))
    if demo_sets <= 1 or not dev or not ctx.task.examples("train"):
        return candidates
    bases = _bases(ctx, candidates)
    pairs: list[_Pair] = []
    try:
        sets = draw_demo_sets(ctx, demo_sets, MAX_DEMOS, BOOTSTRAP_POOL, stream="demo-stage")
        nonempty = [s for s in sets if s.demos]
        # Set-major order, so a budget that affords fewer pairs keeps every base.
        pairs = [_pair(ctx, base, origin, s) for s in nonempty for base, origin in bases]
        calibrating = _label_task(ctx)
        left = ctx.calls_left()
        if left is not None and calibrating:  # keep the priors' calls and one base's dev
            left -= (len(bases) + 1) * CALIBRATION_INPUTS + len(dev)
        pairs = pairs[: _affordable(len(pairs), len(dev), left)]
        ctx.store.event(
            "demo_stage",
            pairs=len(pairs),
            bases=[base for base, _ in bases],
            demo_sets=[[d.id for d in s.demos] for s in nonempty],
            demo_sources=[s.source for s in nonempty],
        )
        ctx.rng("demo-stage-dev").shuffle(dev)
        _halving(ctx, pairs, dev)
        if calibrating:
            raw = [_Pair(ctx.task.prompt(base), origin, {}) for base, origin in bases]
            winner = max(pairs, key=lambda p: (len(p.scores), p.mean()), default=None)
            pairs += _calibrated_twins(ctx, raw + ([winner] if winner else []), dev)
    except BudgetExhausted as stop:
        # Stays local: the stage is a phase of the run after the strategy's search,
        # and its end at the budget closes only this phase; the run then goes on
        # to compare the instruction-only candidates with the pairs scored so far.
        ctx.store.event("budget_exhausted", message=f"demonstration stage: {stop}")
        ctx.reporter.note(f"demonstration stage stopped at the budget: {stop}")
    scored = sorted(
        (p.candidate() for p in pairs if p.scores),
        key=lambda c: (c.dev_n, c.dev_score),
        reverse=True,
    )
    if not scored:
        return candidates
    winner, rest = scored[0], scored[1:]
    if not candidates or winner.dev_score > candidates[0].dev_score:
        return [winner, *candidates, *rest]
    return [candidates[0], winner, *candidates[1:], *rest]


def _bases(ctx: SearchContext, candidates: list[Candidate]) -> list[tuple[str, str]]:
    """(instruction, origin) of the strategy's best instructions, the start among them."""
    start = ctx.start_prompt.instruction
    ranked = [c for c in candidates if c.dev_n > 0 and not c.prompt.demonstrations]
    chosen: dict[str, str] = {}
    for c in ranked:
        if len(chosen) == BASES:
            break
        chosen.setdefault(c.prompt.instruction, c.origin)
    if start not in chosen:
        if len(chosen) == BASES:
            chosen.pop(list(chosen)[-1])
        chosen[start] = "start"
    return list(chosen.items())


def _pair(ctx: SearchContext, instruction: str, origin: str, demo_set: DemoSet) -> _Pair:
    return _Pair(ctx.task.prompt(instruction, demo_set.demos), f"{origin} + {demo_set.label}", {})


def _label_task(ctx: SearchContext) -> bool:
    return ctx.task.scoring_mode == "logprob" and bool(ctx.task.label_words)


def _calibrated_twins(ctx: SearchContext, pairs: list[_Pair], dev: list[Example]) -> list[_Pair]:
    """Each prompt with its label prior, scored on all of dev."""
    words = ctx.task.label_words or ()
    train = ctx.task.examples("train")
    pool = calibration_inputs(train, words, len(train), ctx.rng("demo-stage-calibration"))
    twins = []
    for pair in pairs:
        demos = set(pair.prompt.demonstrations)
        inputs = [e for e in pool if e not in demos][:CALIBRATION_INPUTS]
        if not inputs:
            continue
        ctx.reporter.phase(f"Calibrating on {len(inputs)} train inputs", total=None)
        prior = label_prior(ctx.evaluator, pair.prompt, inputs)
        twins.append(
            _Pair(replace(pair.prompt, calibration=prior), f"{pair.origin}, calibrated", {})
        )
    _score(ctx, twins, dev, f"Calibrated prompts: {len(twins)} x {len(dev)}")
    return twins


def _affordable(pairs: int, dev: int, calls_left: int | None) -> int:
    """The most pairs whose full halving (down to one pair scored on all of dev) the
    calls left pay for."""
    while (
        pairs
        and calls_left is not None
        and halving_cost(pairs, dev, HALVING_START, HALVING_ETA) > calls_left
    ):
        pairs -= 1
    return pairs


def _halving(ctx: SearchContext, pairs: list[_Pair], dev: list[Example]) -> None:
    """Successive halving over the pairs on growing prefixes of the shuffled dev set;
    the last survivor ends scored on all of dev."""

    def score_round(alive: list[_Pair], subset: list[Example], round_index: int) -> None:
        label = f"Demonstrations round {round_index}: {len(alive)} x {len(subset)}"
        _score(ctx, alive, subset, label)

    def round_done(round_index: int, m: int, ranking: list[_Pair]) -> None:
        ctx.store.event(
            "demo_stage_round",
            round=round_index,
            examples=m,
            ranking=[[p.origin, p.mean(dev[:m])] for p in ranking],
        )

    successive_halving(pairs, dev, HALVING_START, HALVING_ETA, score_round, _Pair.mean, round_done)


def _score(ctx: SearchContext, pairs: list[_Pair], examples: list[Example], label: str) -> None:
    """Each pair on its examples not yet scored; pairs missing the same ones share a batch."""
    groups: dict[tuple[str, ...], list[_Pair]] = {}
    for pair in pairs:
        missing = tuple(e.id for e in examples if e.id not in pair.scores)
        if missing:
            groups.setdefault(missing, []).append(pair)
    if not groups:
        return
    ctx.reporter.phase(label, total=sum(len(k) * len(v) for k, v in groups.items()))
    for ids, group in groups.items():
        todo = [e for e in examples if e.id in ids]
        results = ctx.evaluator.evaluate_many(
            [p.prompt for p in group], todo, progress=ctx.reporter.advance
        )
        for pair, result in zip(group, results, strict=True):
            for row in result.results:
                pair.scores[row.example_id] = row.score
            ctx.record_candidate(
                pair.prompt.instruction, pair.mean(), len(pair.scores), pair.origin
            )
