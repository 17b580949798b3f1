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

from dataclasses import dataclass

from promptopt.errors import BudgetExhausted, ConfigError
from promptopt.strategies import choice_bo
from promptopt.strategies.base import SearchContext, SearchResult, knob
from promptopt.strategies.demo_sets import DemoSet, bootstrapped_examples, candidate_sets
from promptopt.strategies.instruction_candidates import propose_instructions
from promptopt.types import Candidate, Example, Prompt

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

    def __post_init__(self) -> None:
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be 'bo' or 'random', not '{self.optimizer}'")
        for name in ("num_instructions", "num_demo_sets", "minibatch", "confirm_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")
        for name in ("proposals", "max_demos", "bootstrap_pool", "init_trials", "trials"):
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
        trials = Trials(ctx, config, dev, instructions, demo_sets)
        stopped = False
        try:
            trials.run()
        except BudgetExhausted as stop:
            if not trials.board.scores:
                raise
            ctx.store.event("budget_exhausted", message=str(stop))
            ctx.reporter.note(f"stopped at the budget: {stop}")
            stopped = True
        return SearchResult(candidates=trials.ranked(), stopped_by_budget=stopped)

    def _demo_sets(self, ctx: SearchContext, config: MiproConfig) -> list[DemoSet]:
        train = ctx.task.examples("train")
        start = ctx.start_prompt
        pool = ctx.rng("mipro-bootstrap").sample(train, min(config.bootstrap_pool, len(train)))
        bootstrapped: list[Example] = []
        if pool and config.num_demo_sets > 1 and not ctx.task.label_words:
            ctx.reporter.phase(f"Bootstrapping demonstrations ({len(pool)})", total=len(pool))
            scored = ctx.evaluator.evaluate(start, pool, progress=ctx.reporter.advance)
            reasoning = any(e.demo_output is not None for e in train)
            bootstrapped = bootstrapped_examples(pool, scored, reasoning)
            ctx.store.event("bootstrapped", pool=len(pool), right=[e.id for e in bootstrapped])
        sets = candidate_sets(
            train,
            bootstrapped,
            config.num_demo_sets,
            config.max_demos,
            labels=len(ctx.task.label_words or ()),
            rng=ctx.rng("mipro-demo-sets"),
        )
        if start.demonstrations:  # a start from an export keeps its own demos as a choice
            sets.insert(1, DemoSet(start.demonstrations, "start"))
            sets = sets[: max(2, config.num_demo_sets)]
        return sets


class Trials:
    """The trial loop over (instruction index, demo-set index) pairs and what it learned:
    per-pair, per-example dev scores, the GP's observations, the confirmed pairs."""

    def __init__(
        self,
        ctx: SearchContext,
        config: MiproConfig,
        dev: list[Example],
        instructions: list[str],
        demo_sets: list[DemoSet],
    ) -> None:
        self.ctx, self.config, self.dev = ctx, config, dev
        self.instructions, self.demo_sets = instructions, demo_sets
        self.sizes = (len(instructions), len(demo_sets))
        self.board = _Board()
        self.rng = ctx.rng("mipro-trials")

    def run(self) -> None:
        pairs = [(i, j) for i in range(self.sizes[0]) for j in range(self.sizes[1])]
        start_pair = (
            (0, 1) if self.demo_sets[1:2] and self.demo_sets[1].source == "start" else (0, 0)
        )
        self.score(start_pair, self.dev, "start")
        self.board.confirmed.add(start_pair)
        trial = 0
        while trial < self._trial_limit():
            left = self._budget_left()
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

    def _budget_left(self) -> int | None:
        if self.ctx.budget.max_calls is None:
            return None
        return self.ctx.budget.max_calls - self.ctx.usage.calls

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

    def prompt(self, pair: choice_bo.Pair) -> Prompt:
        return self.ctx.task.prompt(self.instructions[pair[0]], self.demo_sets[pair[1]].demos)

    def origin(self, pair: choice_bo.Pair) -> str:
        return f"mipro: instruction {pair[0] + 1} + {self.demo_sets[pair[1]].label}"

    def score(self, pair: choice_bo.Pair, examples: list[Example], how: str) -> None:
        if not examples:
            return
        ctx, board, size = self.ctx, self.board, self.config.minibatch
        ctx.reporter.phase(
            f"Trial ({how}): instruction {pair[0] + 1}, {self.demo_sets[pair[1]].label} "
            f"x {len(examples)} dev",
            total=len(examples),
        )
        result = ctx.evaluator.evaluate(self.prompt(pair), examples, progress=ctx.reporter.advance)
        got = board.scores.setdefault(pair, {})
        for row in result.results:
            got[row.example_id] = row.score
        # One GP observation per minibatch-sized chunk, so a full-dev score (the start,
        # a confirmation) weighs like the trials it stands for.
        for chunk in range(0, len(result.results), size):
            rows = result.results[chunk : chunk + size]
            board.observed.append(pair)
            board.y.append(sum(r.score for r in rows) / len(rows))
        ctx.store.event(
            "trial",
            how=how,
            instruction=pair[0],
            demo_set=pair[1],
            n=len(examples),
            score=result.score,
            pair_mean=board.mean(pair),
            pair_n=board.n(pair),
        )
        ctx.record_candidate(
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
        left = self._budget_left()
        if left is not None and left < len(missing):
            return
        self.score(best, missing, "confirm")
        board.confirmed.add(best)
        self.ctx.store.event(
            "confirmed", instruction=best[0], demo_set=best[1], dev=board.mean(best)
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
