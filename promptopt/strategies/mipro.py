"""Joint instruction x demonstration optimizer, after MIPROv2 (Opsahl-Ong et al.
2024, arXiv 2406.11695), with botorch in place of TPE.

1. Demonstration candidates: the target runs the starting prompt on a pool of
   train examples; the ones it gets right are bootstrapped demonstrations (its
   own worked answers on reasoning tasks). Demo sets are drawn from those, at
   random, and label-balanced for classification; the empty set is always one
   (`demo_sets.py`). Only train examples become demonstrations.
2. Instruction candidates: the starting instruction, the starting instruction
   with an output-format constraint read off the train targets, and APE-style
   proposals from the proposer, filtered before any evaluation.
3. Trials: each picks one (instruction, demo set) pair and scores it on the
   pair's next minibatch of dev (every pair walks the same shuffled dev order,
   so pairs are compared on the same examples). The first trials are random;
   then a GP over the one-hot encoded choices and log expected improvement pick
   the pair (`choice_bo.py`). `-p optimizer=random` picks uniformly instead:
   the baseline the GP must beat at equal calls.
   On tasks scored by label log-probabilities a third choice is calibration:
   every pair is scored both raw and with its label prior measured on a few
   unlabeled train inputs (`promptopt.evaluation.calibration`). Both read the same
   log-probabilities, so the calibrated twin costs only the prior's calls, once
   per pair, and the GP sees both as observations.
4. Confirmation: every `confirm_every` trials, and at the end, the pair with
   the best posterior mean (best observed mean under random search) is scored
   on all of dev. Candidates are ranked by full-dev score, so the search's
   answer has always been measured on all of dev.

Every call goes through the evaluator and the run journal, and every choice is
a function of the seed and of the scores, so `--resume` replays an interrupted
run exactly. With a call budget the trials run until what is left would not pay
for a final confirmation.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, replace

from promptopt.core.domain import Candidate, Example, ExampleResult, Prompt
from promptopt.core.errors import ConfigError
from promptopt.evaluation.calibration import calibration_inputs, label_prior
from promptopt.strategies import choice_bo
from promptopt.strategies.base import SearchContext, SearchResult, knob
from promptopt.strategies.demo_sets import DemoSet, draw_demo_sets
from promptopt.strategies.instruction_candidates import propose_instructions

OPTIMIZERS = ("bo", "random")


@dataclass
class MiproConfig:
    num_instructions: int = knob(6, "instruction candidates, the starting one included")
    proposals: int = knob(8, "instructions sampled from the proposer before filtering")
    num_demo_sets: int = knob(6, "demonstration-set candidates, the empty set included")
    max_demos: int = knob(
        4,
        "most demonstrations in a set (sizes cycle 3, 1, 4, 2); classification: one and "
        "two per label instead",
    )
    bootstrap_pool: int = knob(
        12,
        "train examples the target answers under the starting prompt to bootstrap demos "
        "(not for classification, whose sets are label-balanced)",
    )
    minibatch: int = knob(5, "dev examples per trial (MIPROv2: 25 on larger dev sets)")
    init_trials: int = knob(4, "random trials before the GP picks")
    trials: int = knob(
        20, "trials without a call budget; with --budget, trials run until the budget"
    )
    max_trials: int = knob(200, "most trials, also under a budget")
    confirm_every: int = knob(5, "trials between full-dev confirmations of the best pair")
    optimizer: str = knob("bo", "'bo' (GP + log-EI over the choices) or 'random'")
    calibration_inputs: int = knob(
        6,
        "label-log-probability tasks: unlabeled train inputs (balanced over labels) that "
        "measure a pair's label prior, once per pair; 0 never calibrates",
    )

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be 'bo' or 'random', not '{self.optimizer}'")
        for name in ("num_instructions", "num_demo_sets", "minibatch", "confirm_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for name in (
            "proposals",
            "max_demos",
            "bootstrap_pool",
            "init_trials",
            "trials",
            "calibration_inputs",
        ):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be 0 or more")
        if self.max_trials < 1:
            raise ConfigError("max_trials must be at least 1")


class _Board:
    """Per-pair, per-example dev scores, and which pairs were confirmed on all of dev."""

    def __init__(self) -> None:
        self.scores: dict[choice_bo.Pair, dict[str, float]] = {}
        self.confirmed: set[choice_bo.Pair] = set()
        self.observed: list[choice_bo.Pair] = []
        self.y: list[float] = []

    def mean(self, pair: choice_bo.Pair) -> float:
        got = self.scores.get(pair, {})
        return sum(got.values()) / len(got) if got else 0.0

    def n(self, pair: choice_bo.Pair) -> int:
        return len(self.scores.get(pair, {}))


class Mipro:
    name = "mipro"
    chooses_demonstrations = True  # no demonstration stage after it
    Config = MiproConfig

    def search(self, ctx: SearchContext, config: MiproConfig) -> SearchResult:
        dev = ctx.task.examples("dev")
        if not dev:
            raise ConfigError("mipro needs dev examples: raise --dev-size")
        ctx.rng("mipro-dev-order").shuffle(dev)
        demo_sets = self._demo_sets(ctx, config)
        instructions = propose_instructions(
            ctx, config.num_instructions, config.proposals, seed_offset=0
        )
        ctx.store.event(
            "mipro_candidates",
            instructions=instructions,
            demo_sets=[[d.id for d in s.demos] for s in demo_sets],
            demo_sources=[s.source for s in demo_sets],
        )
        calibration_pool = self._calibration_pool(ctx, config)
        if calibration_pool:
            ctx.store.event(
                "mipro_calibration",
                inputs=config.calibration_inputs,
                pool=[e.id for e in calibration_pool],
            )
        trials = Trials(ctx, config, dev, instructions, demo_sets, calibration_pool)
        ctx.so_far = lambda: SearchResult(trials.ranked()) if trials.board.scores else None
        trials.run()
        return SearchResult(candidates=trials.ranked())

    def _calibration_pool(self, ctx: SearchContext, config: MiproConfig) -> list[Example]:
        """Train examples in label-balanced order, for measuring label priors; empty
        when the task is not scored by label log-probabilities or calibration is off."""
        words = ctx.task.label_words
        if ctx.task.scoring_mode != "logprob" or not words or config.calibration_inputs == 0:
            return []
        train = ctx.task.examples("train")
        return calibration_inputs(train, words, len(train), ctx.rng("mipro-calibration"))

    def _demo_sets(self, ctx: SearchContext, config: MiproConfig) -> list[DemoSet]:
        return draw_demo_sets(
            ctx, config.num_demo_sets, config.max_demos, config.bootstrap_pool, stream="mipro"
        )


class Trials:
    """The trial loop over (instruction index, demo-set index[, calibrated]) pairs and
    what it learned: per-pair, per-example dev scores, the GP's observations, the
    confirmed pairs, and each pair's label prior."""

    def __init__(
        self,
        ctx: SearchContext,
        config: MiproConfig,
        dev: list[Example],
        instructions: list[str],
        demo_sets: list[DemoSet],
        calibration_pool: list[Example] | None = None,
    ) -> None:
        self.ctx, self.config, self.dev = ctx, config, dev
        self.instructions, self.demo_sets = instructions, demo_sets
        self.calibration_pool = calibration_pool or []
        self.sizes: choice_bo.Pair = (len(instructions), len(demo_sets))
        if self.calibration_pool:
            self.sizes += (2,)
        self.priors: dict[tuple[int, int], tuple[float, ...]] = {}
        self.board = _Board()
        self.rng = ctx.rng("mipro-trials")

    def run(self) -> None:
        pairs = list(itertools.product(*(range(size) for size in self.sizes)))
        start_demos = 1 if self.demo_sets[1:2] and self.demo_sets[1].source == "start" else 0
        start_pair = (0, start_demos) + (0,) * (len(self.sizes) - 2)
        self.board.confirmed.update(self.score(start_pair, self.dev, "start"))
        trial = 0
        while trial < self._trial_limit():
            left = self.ctx.calls_left()
            if left is not None and left < len(self.dev):
                break  # keep what a final confirmation costs
            available = [p for p in pairs if self.board.n(p) < len(self.dev)]
            if not available:
                break
            trial += 1
            pair, how = self.choose(available, trial)
            seen = self.board.scores.get(pair, {})
            batch = [e for e in self.dev if e.id not in seen][: self.config.minibatch]
            self.score(pair, batch, how)
            if trial % self.config.confirm_every == 0:
                self.confirm()
        self.confirm()

    def _trial_limit(self) -> int:
        budget = self.ctx.budget
        if budget.max_calls is not None or budget.max_tokens is not None:
            return self.config.max_trials
        return min(self.config.trials, self.config.max_trials)

    def choose(self, available: list[choice_bo.Pair], trial: int) -> tuple[choice_bo.Pair, str]:
        untried = [p for p in available if self.board.n(p) == 0]
        pool = untried or available
        if self.config.optimizer == "random" or trial <= self.config.init_trials:
            return pool[self.rng.randrange(len(pool))], "random"
        try:
            pair, _ = choice_bo.next_pair(
                self.board.observed,
                self.board.y,
                self.sizes,
                available,
                seed=self.ctx.seed * 1000 + trial,
            )
            return pair, "bo"
        except choice_bo.BOFailed as failure:
            self.ctx.store.event("bo_failed", trial=trial, error=str(failure))
            return pool[self.rng.randrange(len(pool))], "explore"

    def _uncalibrated(self, pair: choice_bo.Pair) -> Prompt:
        return self.ctx.task.prompt(self.instructions[pair[0]], self.demo_sets[pair[1]].demos)

    def prompt(self, pair: choice_bo.Pair) -> Prompt:
        base = self._uncalibrated(pair)
        if self._calibrated(pair):
            return replace(base, calibration=self.priors[(pair[0], pair[1])])
        return base

    @staticmethod
    def _calibrated(pair: choice_bo.Pair) -> bool:
        return len(pair) > 2 and pair[2] == 1

    def origin(self, pair: choice_bo.Pair) -> str:
        calibrated = ", calibrated" if self._calibrated(pair) else ""
        return f"mipro: instruction {pair[0] + 1} + {self.demo_sets[pair[1]].label}{calibrated}"

    def _twins(self, pair: choice_bo.Pair) -> list[choice_bo.Pair]:
        """The pair raw and calibrated, measuring the prior first if it is new."""
        if len(self.sizes) == 2:
            return [pair]
        key = (pair[0], pair[1])
        if key not in self.priors:
            demos = set(self.demo_sets[pair[1]].demos)
            inputs = [e for e in self.calibration_pool if e not in demos]
            inputs = inputs[: self.config.calibration_inputs]
            self.ctx.reporter.phase(f"Calibrating on {len(inputs)} train inputs", total=None)
            self.priors[key] = label_prior(self.ctx.evaluator, self._uncalibrated(pair), inputs)
        return [key + (0,), key + (1,)]

    def score(
        self, pair: choice_bo.Pair, examples: list[Example], how: str
    ) -> list[choice_bo.Pair]:
        """Score the pair (and its calibrated twin) on `examples`; returns what was scored."""
        if not examples:
            return []
        ctx = self.ctx
        ctx.reporter.phase(
            f"Trial ({how}): instruction {pair[0] + 1}, {self.demo_sets[pair[1]].label} "
            f"x {len(examples)} dev",
            total=len(examples),
        )
        twins = self._twins(pair)
        results = ctx.evaluator.evaluate_many(
            [self.prompt(p) for p in twins], examples, progress=ctx.reporter.advance
        )
        for twin, result in zip(twins, results, strict=True):
            self._record(twin, result.results, how)
        return twins

    def _record(self, pair: choice_bo.Pair, rows: list[ExampleResult], how: str) -> None:
        board, size = self.board, self.config.minibatch
        got = board.scores.setdefault(pair, {})
        for row in rows:
            got[row.example_id] = row.score
        # One GP observation per minibatch-sized chunk, so a full-dev score (the start,
        # a confirmation) weighs like the trials it stands for.
        for chunk in range(0, len(rows), size):
            part = rows[chunk : chunk + size]
            board.observed.append(pair)
            board.y.append(sum(r.score for r in part) / len(part))
        self.ctx.store.event(
            "trial",
            how=how,
            instruction=pair[0],
            demo_set=pair[1],
            calibrated=self._calibrated(pair),
            n=len(rows),
            score=sum(r.score for r in rows) / len(rows),
            pair_mean=board.mean(pair),
            pair_n=board.n(pair),
        )
        self.ctx.record_candidate(
            self.instructions[pair[0]], board.mean(pair), board.n(pair), self.origin(pair)
        )

    def confirm(self) -> None:
        """Score the most promising unconfirmed pair on all of dev."""
        board = self.board
        pending = [p for p in board.scores if p not in board.confirmed]
        if not pending:
            return
        score = {p: board.mean(p) for p in pending}
        if self.config.optimizer == "bo" and len(set(board.y)) > 1:
            try:
                gp = choice_bo.fit(board.observed, board.y, self.sizes, seed=self.ctx.seed)
                means = choice_bo.posterior_mean(gp, pending, self.sizes)
                score = dict(zip(pending, means, strict=True))
            except (RuntimeError, ValueError):
                pass  # the observed means decide
        best = max(pending, key=lambda p: (score[p], board.n(p)))
        missing = [e for e in self.dev if e.id not in board.scores[best]]
        left = self.ctx.calls_left()
        if left is not None and left < len(missing):
            return
        board.confirmed.update(self.score(best, missing, "confirm"))
        self.ctx.store.event(
            "confirmed",
            instruction=best[0],
            demo_set=best[1],
            calibrated=self._calibrated(best),
            dev=board.mean(best),
        )

    def ranked(self) -> list[Candidate]:
        """Confirmed pairs first, by full-dev score; then the rest by their partial mean."""
        board = self.board
        order = sorted(
            board.scores,
            key=lambda p: (p in board.confirmed, board.mean(p), board.n(p)),
            reverse=True,
        )
        return [Candidate(self.prompt(p), board.mean(p), board.n(p), self.origin(p)) for p in order]
