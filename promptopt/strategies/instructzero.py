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
   instruction-coupled kernel (see promptopt/bayesopt.py) or a plain Matern.

`optimizer=random` draws uniform soft prompts instead of BO: the paper's
"uniform" baseline, at the same number of evaluations.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import torch

from promptopt import bayesopt
from promptopt.errors import BudgetExhausted, ConfigError
from promptopt.paths import read_prompt_template
from promptopt.prompting import render_demonstration
from promptopt.strategies.ape import clean_instruction
from promptopt.strategies.base import SearchContext, SearchResult, knob, rank
from promptopt.types import Candidate, Message, Prompt


@dataclass
class InstructZeroConfig:
    intrinsic_dim: int = knob(10, "d, the dimension of the searched soft prompt z (paper: 10)")
    n_tokens: int = knob(5, "soft tokens prepended to the writer's input")
    projection_scale: float = knob(
        1.0, "std of the soft tokens relative to the writer's embedding std"
    )
    initial_points: int = knob(6, "soft prompts in the Sobol initial design")
    rounds: int = knob(4, "BO rounds after the initial design")
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
        if self.initial_points < 2:
            raise ConfigError("initial_points must be at least 2 (a GP needs data)")
        for name in ("intrinsic_dim", "n_tokens", "batch_per_round", "dev_subset"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be at least 1")


class InstructZero:
    name = "instructzero"
    Config = InstructZeroConfig

    def search(self, ctx: SearchContext, config: InstructZeroConfig) -> SearchResult:
        writer = ctx.proposer_base
        if writer is None or not getattr(writer, "supports_embeddings_input", False):
            raise ConfigError(
                "instructzero needs a local transformers writer that takes input embeddings: "
                "use --proposer embedded or --proposer hf:<model> (the target may be any model)"
            )
        run = _Run(ctx, config, writer)
        try:
            run.observe(run.initial_points())
            for round_index in range(1, config.rounds + 1):
                run.observe(run.next_points(round_index), round_index)
        except BudgetExhausted as stop:
            if not run.scores:
                raise
            ctx.store.event("budget_exhausted", message=str(stop))
            ctx.reporter.note(f"stopped early: {stop}")
            return SearchResult(candidates=run.candidates(), stopped_by_budget=True)
        return SearchResult(candidates=run.candidates())


class _Run:
    """State of one search: observed z, their instructions and score vectors."""

    def __init__(self, ctx: SearchContext, config: InstructZeroConfig, writer) -> None:  # type: ignore[no-untyped-def]
        self.ctx = ctx
        self.config = config
        self.writer = writer
        self.dev = ctx.task.examples("dev")[: config.dev_subset]
        if not self.dev:
            raise ConfigError(f"task '{ctx.task.name}' has no dev examples to score on")
        rng = ctx.rng("instructzero-demos")
        train = ctx.task.examples("train")
        demos = rng.sample(train, min(config.demos, len(train)))
        shown = "\n\n".join(render_demonstration(ctx.task.template, d) for d in demos)
        question = read_prompt_template("instructzero_writer.txt").replace(
            "{demonstrations}", shown
        )
        self.writer_text = writer.render((Message("user", question.strip()),), None)
        self.matrix = bayesopt.projection_matrix(
            config.intrinsic_dim,
            config.n_tokens,
            writer.hidden_size,
            writer.embedding_std(),
            config.projection_scale,
            seed=ctx.seed,
        )
        self.memo = ctx.store.aux_cache("writer")
        self.z: list[torch.Tensor] = []
        self.instructions: list[str] = []
        self.scores: dict[str, list[float]] = {}

    # -- points -------------------------------------------------------------------
    def initial_points(self) -> torch.Tensor:
        c = self.config
        if c.optimizer == "random":
            return bayesopt.uniform_points(c.initial_points, c.intrinsic_dim, self.ctx.seed)
        return bayesopt.sobol_points(c.initial_points, c.intrinsic_dim, self.ctx.seed)

    def next_points(self, round_index: int) -> torch.Tensor:
        c = self.config
        seed = self.ctx.seed * 1000 + round_index
        if c.optimizer == "random":
            return bayesopt.uniform_points(c.batch_per_round, c.intrinsic_dim, seed)
        self.ctx.reporter.phase(f"BO round {round_index}: fitting the GP, maximizing log-EI")
        return bayesopt.propose(
            self.observations(),
            c.kernel,
            q=c.batch_per_round,
            seed=seed,
            num_restarts=c.acq_restarts,
            raw_samples=c.acq_raw_samples,
        )

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
        """The writer's instruction for each soft prompt (memoized in the run dir)."""
        keys = [self._memo_key(z) for z in points]
        missing = [k for k, key in enumerate(keys) if key not in self.memo]
        if missing:
            self.ctx.reporter.phase(f"Writing {len(missing)} instructions from soft prompts")
            soft = bayesopt.project(points[missing], self.matrix, self.config.n_tokens)
            self.ctx.charge(len(missing))  # the writer is driven directly: account here
            completion = self.writer.generate_from_soft_prompts(
                soft, self.writer_text, max_tokens=self.config.max_instruction_tokens
            )
            self.ctx.charge(0, completion.prompt_tokens, completion.completion_tokens)
            for k, text in zip(missing, completion.texts, strict=True):
                self.memo.set(keys[k], clean_instruction(text))
        return [self.memo.get(key) for key in keys]

    def score(self, instructions: list[str]) -> None:
        fresh = list(dict.fromkeys(i for i in instructions if i not in self.scores))
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

    def _memo_key(self, z: torch.Tensor) -> str:
        c = self.config
        payload = {
            "z": [round(float(v), 8) for v in z],
            "seed": self.ctx.seed,
            "text": self.writer_text,
            "d": c.intrinsic_dim,
            "n_tokens": c.n_tokens,
            "scale": c.projection_scale,
            "max_tokens": c.max_instruction_tokens,
            "writer": self.writer.model_id,
        }
        return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()

    def candidates(self) -> list[Candidate]:
        return rank(
            [
                Candidate(
                    prompt=Prompt(instruction=i, template=self.ctx.task.template),
                    dev_score=_mean(vector),
                    dev_n=len(vector),
                    origin="soft prompt",
                )
                for i, vector in self.scores.items()
            ]
        )


def _mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0
