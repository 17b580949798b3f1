"""APE: Automatic Prompt Engineer (Zhou et al., 2022, arXiv 2211.01910).

1. Propose: the proposer model sees a few sampled train demonstrations in a
   forward-mode template (`prompts/ape_forward.txt`) and continues with the
   instruction that would produce them; several subsets, several samples each.
2. Filter the proposals (`proposals.filter_proposals`): duplicates, and texts a
   small proposer writes that are no instruction (chit-chat, refusals, answer
   fragments, copied demonstrations), never reach an evaluation. Next to them
   enter candidates that need no proposer: the starting instruction, alone and
   with each output-format constraint the train targets share.
3. Select on dev with an adaptive scheme so most evaluations go to promising
   candidates: successive halving (default) or a UCB bandit, as in the paper's
   efficient score estimation.
4. Optionally resample (the paper's iterative Monte Carlo search): ask the
   proposer for variations of the best candidates and select again.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from promptopt.core.domain import Candidate, Example, Prompt
from promptopt.core.errors import BudgetExhausted, ConfigError
from promptopt.strategies.ape_proposing import (
    grounded_candidates,
    log_filter,
    meta_prompt,
    proposal_request,
    propose_filtered,
    shown_examples,
)
from promptopt.strategies.base import SearchContext, SearchResult, check_range, knob
from promptopt.strategies.halving import successive_halving
from promptopt.strategies.proposals import (
    clean_instruction as clean_instruction,  # re-exported: it lived here first
)
from promptopt.strategies.proposals import (
    filter_proposals,
)


@dataclass
class APEConfig:
    num_subsamples: int = knob(4, "demonstration subsets shown to the proposer (paper: 5)")
    demos_per_subsample: int = knob(5, "train demonstrations in each subset (paper: 5)")
    proposals_per_subsample: int = knob(
        4, "instructions sampled from each subset (paper: 50 in all; fewer fit a CPU)"
    )
    proposer_format: str = knob(
        "chat", "'chat' (instruction-tuned proposer) or 'text' (forward completion template)"
    )
    proposal_temperature: float = knob(0.9, "sampling temperature of the proposer (paper: 0.9)")
    proposal_max_tokens: int = knob(48, "longest proposed instruction, in tokens")
    objective: str = knob(
        "accuracy", "'accuracy' (task scorer) or 'likelihood' (mean log p(target), as in APE)"
    )
    selection: str = knob("halving", "'halving' (successive halving) or 'ucb' (UCB bandit)")
    halving_start: int = knob(4, "dev examples per candidate in the first halving round")
    halving_eta: int = knob(
        2, "halving keeps 1/eta of the candidates and multiplies examples by eta"
    )
    ucb_rounds: int = knob(6, "UCB rounds")
    ucb_top_k: int = knob(4, "candidates pulled per UCB round")
    ucb_batch: int = knob(4, "dev examples per pull")
    ucb_c: float = knob(1.0, "UCB exploration constant")
    resample_rounds: int = knob(0, "iterative APE: rounds of variations of the best candidates")
    resample_top_k: int = knob(2, "best candidates varied in each resampling round")
    resample_per_candidate: int = knob(3, "variations asked for each of them")
    include_baseline: bool = knob(
        True, "also enter the starting instruction (--start, else the task's) as a candidate"
    )
    format_candidates: bool = knob(
        True, "also enter the starting instruction + each output format the train targets share"
    )

    def __post_init__(self) -> None:
        if self.proposer_format not in {"chat", "text"}:
            raise ConfigError(
                f"proposer_format must be 'chat' or 'text', not '{self.proposer_format}'"
            )
        if self.objective not in {"accuracy", "likelihood"}:
            raise ConfigError(
                f"objective must be 'accuracy' or 'likelihood', not '{self.objective}'"
            )
        if self.selection not in {"halving", "ucb"}:
            raise ConfigError(f"selection must be 'halving' or 'ucb', not '{self.selection}'")
        # Every knob, also those the chosen selection does not read: a typo'd value
        # should fail the same whichever selection it is combined with.
        check_range(
            self,
            (
                "num_subsamples",
                "demos_per_subsample",
                "proposals_per_subsample",
                "proposal_max_tokens",
                "halving_start",
                "ucb_rounds",
                "ucb_top_k",
                "ucb_batch",
                "resample_top_k",
                "resample_per_candidate",
            ),
            at_least=1,
        )
        check_range(self, "halving_eta", at_least=2)
        check_range(self, "resample_rounds", at_least=0)
        check_range(self, ("proposal_temperature", "ucb_c"), at_least=0)


class Scoreboard:
    """Per-candidate, per-example scores: nothing is evaluated twice in a run."""

    def __init__(self, template: str) -> None:
        self.template = template
        self.scores: dict[str, dict[str, float]] = {}
        self.origin: dict[str, str] = {}

    def add(self, instruction: str, origin: str) -> bool:
        if instruction in self.scores:
            return False
        self.scores[instruction] = {}
        self.origin[instruction] = origin
        return True

    def mean(self, instruction: str, examples: list[Example] | None = None) -> float:
        got = self.scores[instruction]
        values = [got[e.id] for e in examples] if examples is not None else list(got.values())
        return sum(values) / len(values) if values else 0.0

    def candidate(self, instruction: str) -> Candidate:
        return Candidate(
            prompt=Prompt(instruction=instruction, template=self.template),
            dev_score=self.mean(instruction),
            dev_n=len(self.scores[instruction]),
            origin=self.origin[instruction],
        )

    def ranked(self) -> list[Candidate]:
        """Most evidence first (survivors of selection), then by dev score."""
        cands = [self.candidate(i) for i in self.scores]
        return sorted(cands, key=lambda c: (c.dev_n, c.dev_score), reverse=True)


def _scored_so_far(board: Scoreboard) -> SearchResult | None:
    ranked = [c for c in board.ranked() if c.dev_n > 0]
    return SearchResult(candidates=ranked) if ranked else None


class APE:
    name = "ape"
    Config = APEConfig

    def search(self, ctx: SearchContext, config: APEConfig) -> SearchResult:
        board = Scoreboard(ctx.task.template)
        ctx.so_far = lambda: _scored_so_far(board)
        for instruction, origin in grounded_candidates(ctx, config):
            board.add(instruction, origin)
        shown = shown_examples(ctx, config)
        for instruction in self._propose(ctx, config, shown, known=list(board.scores)):
            board.add(instruction, "proposed")
        if not board.scores:
            raise ConfigError(
                "the proposer wrote no usable instruction and no start candidate is "
                "entered: try a larger proposer model, more proposals or "
                "-p include_baseline=true"
            )
        alive = self._select(ctx, config, board, list(board.scores))
        for round_index in range(config.resample_rounds):
            top = alive[: config.resample_top_k]
            fresh = [
                i
                for i in self._resample(ctx, config, top, round_index, shown, list(board.scores))
                if board.add(i, f"resample {round_index + 1}")
            ]
            ctx.store.event("resampled", round=round_index + 1, new=fresh)
            alive = self._select(ctx, config, board, top + fresh)
        return SearchResult(candidates=board.ranked())

    # -- proposing ----------------------------------------------------------------
    def _propose(
        self, ctx: SearchContext, config: APEConfig, shown: list[Example], known: list[str]
    ) -> list[str]:
        kept = propose_filtered(ctx, config, shown, known)
        ctx.store.event(
            "proposed",
            instructions=kept,
            sampled=config.num_subsamples * config.proposals_per_subsample,
        )
        return kept

    def _resample(
        self,
        ctx: SearchContext,
        config: APEConfig,
        top: list[str],
        round_index: int,
        shown: list[Example],
        known: list[str],
    ) -> list[str]:
        template = meta_prompt("ape_resample", config.proposer_format)
        requests = [
            proposal_request(
                config,
                template.replace("{instruction}", instruction),
                n=config.resample_per_candidate,
                seed=ctx.seed * 1000 + 500 + 10 * round_index + k,
            )
            for k, instruction in enumerate(top)
        ]
        ctx.reporter.phase(f"Resampling round {round_index + 1}", total=len(requests))
        completions = ctx.proposer.generate(requests)
        ctx.reporter.advance(len(requests))
        texts = [t for c in completions for t in c.texts]
        survived = filter_proposals(texts, shown, known=known)
        log_filter(ctx, f"resample {round_index + 1}", len(texts), survived)
        return survived.kept

    # -- selecting ----------------------------------------------------------------
    def _select(
        self, ctx: SearchContext, config: APEConfig, board: Scoreboard, pool: list[str]
    ) -> list[str]:
        dev = list(ctx.task.examples("dev"))
        ctx.rng("ape-dev-order").shuffle(dev)
        if config.selection == "ucb":
            return self._ucb(ctx, config, board, pool, dev)
        return self._halving(ctx, config, board, pool, dev)

    def _score(
        self,
        ctx: SearchContext,
        board: Scoreboard,
        work: dict[str, list[Example]],
        label: str,
        objective: str = "accuracy",
    ) -> None:
        """Evaluate each instruction on its examples not yet scored, in one batch."""
        todo = {i: [e for e in exs if e.id not in board.scores[i]] for i, exs in work.items()}
        todo = {i: exs for i, exs in todo.items() if exs}
        if not todo:
            return
        # Group instructions that need the same examples so each group is one batch.
        groups: dict[tuple[str, ...], list[str]] = {}
        for instruction, exs in todo.items():
            groups.setdefault(tuple(e.id for e in exs), []).append(instruction)
        total = sum(len(exs) for exs in todo.values())
        ctx.reporter.phase(label, total=total)
        for instructions in groups.values():
            exs = todo[instructions[0]]
            try:
                self._score_batch(ctx, board, instructions, exs, objective)
            except BudgetExhausted:
                # Not a stop (that is run_search's): a way to spend the budget's rest.
                # The whole batch does not fit the budget: spend what is left one
                # candidate at a time, so a budget stop still leaves scores behind.
                for instruction in instructions:
                    self._score_batch(ctx, board, [instruction], exs, objective)

    def _score_batch(
        self,
        ctx: SearchContext,
        board: Scoreboard,
        instructions: list[str],
        exs: list[Example],
        objective: str,
    ) -> None:
        prompts = [Prompt(instruction=i, template=ctx.task.template) for i in instructions]
        if objective == "likelihood":
            results = ctx.evaluator.likelihood_many(prompts, exs)
            ctx.reporter.advance(len(prompts) * len(exs))
        else:
            results = ctx.evaluator.evaluate_many(prompts, exs, progress=ctx.reporter.advance)
        for instruction, result in zip(instructions, results, strict=True):
            for r in result.results:
                board.scores[instruction][r.example_id] = r.score
            ctx.store.event(
                "scored",
                instruction=instruction,
                n=len(board.scores[instruction]),
                score=board.mean(instruction),
            )
            ctx.record_candidate(
                instruction,
                board.mean(instruction),
                len(board.scores[instruction]),
                board.origin[instruction],
            )

    def _halving(
        self,
        ctx: SearchContext,
        config: APEConfig,
        board: Scoreboard,
        pool: list[str],
        dev: list[Example],
    ) -> list[str]:
        def score_round(alive: list[str], subset: list[Example], round_index: int) -> None:
            self._score(
                ctx,
                board,
                {i: subset for i in alive},
                f"Halving round {round_index}: {len(alive)} candidates x {len(subset)} "
                "dev examples",
                config.objective,
            )

        def round_done(round_index: int, m: int, ranking: list[str]) -> None:
            ctx.store.event(
                "halving_round",
                round=round_index,
                examples=m,
                ranking=[[i, board.mean(i, dev[:m])] for i in ranking],
            )

        return successive_halving(
            pool,
            dev,
            config.halving_start,
            config.halving_eta,
            score_round,
            board.mean,
            round_done,
        )

    def _ucb(
        self,
        ctx: SearchContext,
        config: APEConfig,
        board: Scoreboard,
        pool: list[str],
        dev: list[Example],
    ) -> list[str]:
        rng = ctx.rng("ape-ucb")
        orders = {i: rng.sample(dev, len(dev)) for i in pool}
        for round_index in range(1, config.ucb_rounds + 1):
            pulls = sum(len(board.scores[i]) for i in pool) // max(1, config.ucb_batch) + 1

            def bound(i: str, pulls: int = pulls) -> float:
                n = len(board.scores[i]) / max(1, config.ucb_batch)
                if n == 0:
                    return math.inf
                return board.mean(i) + config.ucb_c * math.sqrt(math.log(pulls) / n)

            chosen = sorted(pool, key=bound, reverse=True)[: config.ucb_top_k]
            work = {}
            for i in chosen:
                seen = board.scores[i]
                fresh = [e for e in orders[i] if e.id not in seen][: config.ucb_batch]
                if fresh:
                    work[i] = fresh
            if not work:
                break
            self._score(
                ctx, board, work, f"UCB round {round_index}: {len(work)} pulls", config.objective
            )
        finalists = sorted(pool, key=lambda i: board.mean(i), reverse=True)[: config.ucb_top_k]
        self._score(
            ctx, board, {i: dev for i in finalists}, "UCB finalists on all of dev", config.objective
        )
        finalists.sort(key=lambda i: board.mean(i, dev), reverse=True)
        return finalists
