"""InstructZero (Chen et al. 2023, arXiv 2306.03082).

Searches a low-dimensional soft prompt z in [-1, 1]^d instead of text:
1. a fixed random projection maps z to n_tokens soft-token vectors, prepended
   to the input embeddings of a local writer model (the proposer) whose prompt
   holds sampled demonstrations and asks for the instruction;
2. the writer greedily writes an instruction;
3. the target model (any backend) is scored with it on a dev subset through
   the shared evaluator (identical instructions are scored once);
4. Bayesian optimization (botorch: GP, q-log-EI) over z proposes the next soft
   prompts, after a Sobol initial design. The GP kernel is the
   instruction-coupled kernel (see promptopt/strategies/instructzero_bo.py) or a plain Matern.

`optimizer=random` draws uniform soft prompts instead of BO: the paper's
"uniform" baseline, at the same number of evaluations.

`rounds=0` keeps proposing rounds until the call budget is spent, so methods
are compared at equal cost rather than equal schedules. The last round is
shrunk to the points the budget can still pay for (a point costs one writer
call plus its dev scoring), so it is never refused half-paid. A writer that
keeps writing instructions already seen costs writer calls but teaches BO
nothing, so `patience` rounds without a new instruction end the search, and
`max_rounds` caps a search that has no budget.

The default projection_scale is 10, not 1: with 5 soft tokens at the scale of
real embeddings the 135M writer ignored z (sentiment: 3 distinct instructions
from 20 random z at scale 1, 7 at 10, and empty or off-task replies from 20
on; bench/results/instructzero_scale_diversity.md).
"""

from __future__ import annotations

import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, cast

import torch

from promptopt.core.domain import Candidate, Completion, Message, Prompt
from promptopt.core.errors import ConfigError
from promptopt.core.paths import read_prompt_template
from promptopt.data.task import Task
from promptopt.evaluation.prompting import render_demonstration
from promptopt.llm.base import soft_prompt_generate
from promptopt.strategies import instructzero_bo as bayesopt
from promptopt.strategies.ape import clean_instruction
from promptopt.strategies.base import (
    CallBound,
    SearchContext,
    SearchResult,
    check_range,
    knob,
    rank,
)


class SoftPromptWriter(Protocol):
    """What InstructZero needs of its writer (promptopt.llm.hf.HFLLM has it all)."""

    model_id: str
    hidden_size: int

    def embedding_std(self) -> float: ...
    def render(self, messages: Sequence[Message], text: str | None) -> str: ...
    def generate_from_soft_prompts(
        self, soft_prompts: torch.Tensor, text: str, *, max_tokens: int = 48
    ) -> Completion: ...


@dataclass
class InstructZeroConfig:
    intrinsic_dim: int = knob(10, "d, the dimension of the searched soft prompt z (paper: 10)")
    n_tokens: int = knob(5, "soft tokens prepended to the writer's input")
    projection_scale: float = knob(
        10.0,
        "std of the soft tokens relative to the writer's embedding std (at 1 the 135M "
        "writer wrote nearly one instruction for every z)",
    )
    initial_points: int = knob(6, "soft prompts in the Sobol initial design")
    rounds: int = knob(
        4,
        "BO rounds after the initial design; 0 = keep going until --budget is spent "
        "(or max_rounds, or patience, ends it first)",
    )
    max_rounds: int = knob(
        50, "most rounds when rounds=0 (ends a search without --budget, unless patience does)"
    )
    patience: int = knob(
        8, "stop after this many rounds in a row that wrote only already-seen instructions"
    )
    batch_per_round: int = knob(2, "soft prompts proposed per round (q)")
    dev_subset: int = knob(20, "dev examples each instruction is scored on")
    demos: int = knob(5, "train demonstrations shown to the writer")
    kernel: str = knob("coupled", "'coupled' (instruction-coupled kernel) or 'matern' (on z)")
    optimizer: str = knob("bo", "'bo', or 'random' (uniform soft prompts: the paper's baseline)")
    max_instruction_tokens: int = knob(48, "longest instruction the writer may write")
    acq_restarts: int = knob(4, "restarts when maximizing the acquisition")
    acq_raw_samples: int = knob(128, "raw samples seeding the acquisition maximization")

    def __post_init__(self) -> None:
        if self.kernel not in {"coupled", "matern"}:
            raise ConfigError(f"kernel must be 'coupled' or 'matern', not '{self.kernel}'")
        if self.optimizer not in {"bo", "random"}:
            raise ConfigError(f"optimizer must be 'bo' or 'random', not '{self.optimizer}'")
        check_range(self, "initial_points", at_least=2)  # a GP needs data
        check_range(self, "rounds", at_least=0)  # 0: until the budget is spent
        check_range(
            self,
            (
                "intrinsic_dim",
                "n_tokens",
                "batch_per_round",
                "dev_subset",
                "max_rounds",
                "patience",
                "max_instruction_tokens",
                "acq_restarts",
            ),
            at_least=1,
        )
        # botorch keeps the best `acq_restarts` of the raw samples: it needs as many.
        check_range(self, "acq_raw_samples", at_least=self.acq_restarts)
        check_range(self, "projection_scale", above=0)


class InstructZero:
    name = "instructzero"
    Config = InstructZeroConfig

    def project(self, config: InstructZeroConfig, dev_n: int) -> CallBound:
        """Each point is one writer call and its instruction scored on a dev subset;
        it drives the writer's input embeddings, so the dry run cannot simulate it."""
        rounds = config.rounds or config.max_rounds
        points = config.initial_points + rounds * config.batch_per_round
        return CallBound(points * min(config.dev_subset, dev_n), points)

    def search(self, ctx: SearchContext, config: InstructZeroConfig) -> SearchResult:
        writer = ctx.proposer_base
        if writer is None or not getattr(writer, "supports_embeddings_input", False):
            raise ConfigError(
                "instructzero needs a local transformers writer that takes input embeddings: "
                "use --proposer embedded or --proposer hf:<model> (the target may be any model)"
            )
        run = _Run(ctx, config, cast(SoftPromptWriter, writer))
        ctx.so_far = lambda: self._result(ctx, run, stopped_by_budget=True) if run.scores else None
        run.observe(run.initial_points())
        return self._result(ctx, run, stopped_by_budget=run.rounds())

    def _result(self, ctx: SearchContext, run: _Run, stopped_by_budget: bool) -> SearchResult:
        stats = run.stats()
        ctx.store.event("instructzero_stats", **stats)
        ctx.reporter.note(
            f"{stats['soft_prompts']} soft prompts wrote {stats['distinct_instructions']} "
            f"distinct instructions ({stats['not_instructions']} of them not instructions)"
        )
        return SearchResult(
            candidates=run.candidates(), stopped_by_budget=stopped_by_budget, stats=stats
        )


class _Run:
    """State of one search: observed z, their instructions and score vectors."""

    def __init__(
        self, ctx: SearchContext, config: InstructZeroConfig, writer: SoftPromptWriter
    ) -> None:
        self.ctx = ctx
        self.config = config
        self.writer = writer
        self.dev = ctx.task.examples("dev")[: config.dev_subset]
        if not self.dev:
            raise ConfigError(f"task '{ctx.task.name}' has no dev examples to score on")
        demo_rng = ctx.rng("instructzero-demos")
        self.writer_text = writer_text(ctx.task, writer, config.demos, demo_rng)
        self.matrix = bayesopt.projection_matrix(
            config.intrinsic_dim,
            config.n_tokens,
            writer.hidden_size,
            writer.embedding_std(),
            config.projection_scale,
            seed=ctx.seed,
        )
        self.z: list[torch.Tensor] = []
        self.instructions: list[str] = []
        self.scores: dict[str, list[float]] = {}
        self.unscored: set[str] = set()

    # -- rounds -------------------------------------------------------------------
    def rounds(self) -> bool:
        """BO (or random) rounds until the schedule, the budget or patience ends them.

        Returns whether the budget ended the search. A round whose points the
        budget cannot pay for in full is shrunk rather than refused, so a
        budgeted run spends all but less than one point's cost.
        """
        c = self.config
        limit = c.rounds or c.max_rounds
        stale = 0
        for round_index in range(1, limit + 1):
            q = self.affordable_points()
            if q == 0:
                self.stop(
                    "budget_spent",
                    f"the call budget cannot pay for another point ({round_index - 1} rounds)",
                )
                return True
            known = len(self.scores)
            self.observe(self.next_points(round_index, q), round_index)
            stale = stale + 1 if len(self.scores) == known else 0
            if stale >= c.patience:
                self.stop("stalled", f"{stale} rounds in a row wrote no new instruction")
                return False
        return False

    def affordable_points(self) -> int:
        """Points the remaining call budget pays for: one writer call plus the dev scoring each.

        A point whose instruction was seen before costs only its writer call,
        so this errs on the safe side.
        """
        q = self.config.batch_per_round
        left = self.ctx.calls_left()
        if left is None:
            return q
        per_point = 1 + len(self.dev)
        return max(0, min(q, left // per_point))

    def stop(self, reason: str, message: str) -> None:
        self.ctx.store.event("stopped", reason=reason, message=message)
        self.ctx.reporter.note(f"stopped: {message}")

    # -- points -------------------------------------------------------------------
    def initial_points(self) -> torch.Tensor:
        c = self.config
        if c.optimizer == "random":
            return bayesopt.uniform_points(c.initial_points, c.intrinsic_dim, self.ctx.seed)
        return bayesopt.sobol_points(c.initial_points, c.intrinsic_dim, self.ctx.seed)

    def next_points(self, round_index: int, q: int) -> torch.Tensor:
        c = self.config
        seed = self.ctx.seed * 1000 + round_index
        if c.optimizer == "random":
            return bayesopt.uniform_points(q, c.intrinsic_dim, seed)
        self.ctx.reporter.phase(f"BO round {round_index}: fitting the GP, maximizing log-EI")
        points, failure = bayesopt.propose_or_explore(
            self.observations(),
            c.kernel,
            q=q,
            seed=seed,
            num_restarts=c.acq_restarts,
            raw_samples=c.acq_raw_samples,
        )
        if failure is not None:
            self.ctx.store.event("bo_failed", round=round_index, error=failure)
            self.ctx.reporter.note(f"BO round {round_index} failed ({failure}): exploring")
        return points

    def observations(self) -> bayesopt.Observations:
        vectors = [self.scores[i] for i in self.instructions]
        scores = torch.tensor(vectors, dtype=torch.float64)
        return bayesopt.Observations(
            z=torch.stack(self.z).to(torch.float64), y=scores.mean(dim=1), scores=scores
        )

    # -- write, score, record ------------------------------------------------------
    def observe(self, points: torch.Tensor, round_index: int = 0) -> None:
        instructions = self.write(points)
        self.score(instructions)
        for z, instruction in zip(points, instructions, strict=True):
            self.z.append(z.to(torch.float64))
            self.instructions.append(instruction)
            self.ctx.store.event(
                "observed",
                round=round_index,
                z=[round(float(v), 6) for v in z],
                instruction=instruction,
                score=_mean(self.scores[instruction]),
            )

    def write(self, points: torch.Tensor) -> list[str]:
        """The writer's instruction for each soft prompt.

        Through the proposer's layers, like every model call: the shared cache
        (keyed by the exact soft-prompt vectors and the writer's text) makes a
        rerun with the same seed a replay with no new writer call, the meter
        charges each soft prompt as a call within the budget, and the run journal
        replays them on `--resume`.
        """
        self.ctx.reporter.phase(f"Writing {len(points)} instructions from soft prompts")
        soft = bayesopt.project(points, self.matrix, self.config.n_tokens)
        completions = soft_prompt_generate(
            self.ctx.proposer, soft, self.writer_text, self.config.max_instruction_tokens
        )
        return [clean_instruction(c.texts[0] if c.texts else "") for c in completions]

    def score(self, instructions: list[str]) -> None:
        """Score each new instruction on the dev subset, once.

        A reply with no instruction in it (empty or a few symbols, which large
        projection scales produce now and then) is not sent to the target: BO
        sees it as scoring 0 everywhere, and it can only win if nothing else
        was written, since it ranks below every scored candidate.
        """
        unseen = list(dict.fromkeys(i for i in instructions if i not in self.scores))
        for instruction in unseen:
            if not is_instruction(instruction):
                self.scores[instruction] = [0.0] * len(self.dev)
                self.unscored.add(instruction)
        fresh = [i for i in unseen if i not in self.unscored]
        if not fresh:
            return
        prompts = [Prompt(instruction=i, template=self.ctx.task.template) for i in fresh]
        self.ctx.reporter.phase(
            f"Scoring {len(fresh)} instructions on {len(self.dev)} dev examples",
            total=len(fresh) * len(self.dev),
        )
        results = self.ctx.evaluator.evaluate_many(
            prompts, self.dev, progress=self.ctx.reporter.advance
        )
        for instruction, result in zip(fresh, results, strict=True):
            self.scores[instruction] = [r.score for r in result.results]
            self.ctx.record_candidate(instruction, result.score, result.n, "soft prompt")

    def stats(self) -> dict[str, int]:
        """Whether the soft prompt mattered: a writer that ignores z writes one
        instruction for every point, and the BO then has nothing to optimize."""
        return {
            "soft_prompts": len(self.z),
            "distinct_instructions": len(self.scores),
            "not_instructions": len(self.unscored),
        }

    def candidates(self) -> list[Candidate]:
        return rank(
            [
                Candidate(
                    prompt=Prompt(instruction=i, template=self.ctx.task.template),
                    dev_score=_mean(vector),
                    dev_n=0 if i in self.unscored else len(vector),
                    origin="soft prompt (no instruction: not scored)"
                    if i in self.unscored
                    else "soft prompt",
                )
                for i, vector in self.scores.items()
            ]
        )


def writer_text(task: Task, writer: SoftPromptWriter, demos: int, rng: random.Random) -> str:
    """The writer's chat-rendered prompt: sampled train demonstrations, then the question.

    A function of its own so bench scripts probe the writer with exactly the
    prompt a search uses.
    """
    train = task.examples("train")
    shown_demos = rng.sample(train, min(demos, len(train)))
    shown = "\n\n".join(render_demonstration(task.template, d) for d in shown_demos)
    question = read_prompt_template("instructzero_writer.txt").replace("{demonstrations}", shown)
    return writer.render((Message("user", question.strip()),), None)


def is_instruction(text: str) -> bool:
    """Whether a writer's reply holds an instruction at all: three letters or digits, one a letter.

    The same bar APE's deduplication sets for a proposal.
    """
    key = re.sub(r"[^a-z0-9 ]", "", text.lower()).strip()
    return len(key) >= 3 and re.search(r"[a-z]", key) is not None


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
