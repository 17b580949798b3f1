"""APE's proposing: the start candidates, the demonstrations shown to the proposer
and its filtered proposals. MIPRO's instruction candidates reuse them, so they
sit apart from APE's selection (halving, UCB) in `promptopt.strategies.ape`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from promptopt.core.domain import Example, GenerationRequest
from promptopt.core.paths import read_prompt_template
from promptopt.evaluation.prompting import render_demonstration
from promptopt.strategies.base import SearchContext
from promptopt.strategies.proposals import (
    ProposalFilter,
    filter_proposals,
    format_constraints,
    with_constraint,
)
from promptopt.strategies.proposals import (
    clean_instruction as clean_instruction,  # re-exported: it lived here first
)

if TYPE_CHECKING:
    from promptopt.strategies.ape import APEConfig


def grounded_candidates(ctx: SearchContext, config: APEConfig) -> list[tuple[str, str]]:
    """(instruction, origin) pairs that need no proposer: the starting instruction
    and, for each output format the train targets share, the starting instruction
    with that constraint. They keep APE useful when a small proposer writes
    nothing usable, and format is what small target models most often miss."""
    start = ctx.start_prompt.instruction
    out: list[tuple[str, str]] = []
    if config.include_baseline:
        out.append((start, "start"))
    if config.format_candidates:
        constraints = format_constraints(ctx.task.examples("train"), ctx.task.label_words)
        out += [(with_constraint(start, c), "start+format") for c in constraints]
    unique: dict[str, str] = {}
    for instruction, origin in out:
        unique.setdefault(instruction, origin)  # a constraint the start already states
    return list(unique.items())


def demo_subsets(
    ctx: SearchContext, config: APEConfig, seed_offset: int = 0
) -> list[list[Example]]:
    """The train demonstrations each forward-mode request shows, one list per
    subset; the same for the same seed, so callers can recompute them."""
    train = ctx.task.examples("train")
    rng = ctx.rng("ape-demos" if seed_offset == 0 else f"ape-demos:{seed_offset}")
    size = min(config.demos_per_subsample, len(train))
    return [rng.sample(train, size) for _ in range(config.num_subsamples)]


def shown_examples(ctx: SearchContext, config: APEConfig, seed_offset: int = 0) -> list[Example]:
    """Every demonstration the proposer sees, once: what proposals must not copy."""
    unique = {e.id: e for subset in demo_subsets(ctx, config, seed_offset) for e in subset}
    return list(unique.values())


def forward_requests(
    ctx: SearchContext, config: APEConfig, seed_offset: int = 0
) -> list[GenerationRequest]:
    """APE's forward-mode proposal requests: each shows one demonstration subset
    and asks for `proposals_per_subsample` instructions."""
    template = meta_prompt("ape_forward", config.proposer_format)
    return [
        proposal_request(
            config,
            template.replace(
                "{demonstrations}", "\n\n".join(_demo_pair(ctx.task.template, d) for d in demos)
            ),
            n=config.proposals_per_subsample,
            seed=ctx.seed * 1000 + seed_offset + s,
        )
        for s, demos in enumerate(demo_subsets(ctx, config, seed_offset))
    ]


def propose_filtered(
    ctx: SearchContext,
    config: APEConfig,
    shown: Sequence[Example],
    known: Sequence[str],
    seed_offset: int = 0,
) -> list[str]:
    """APE's forward-mode proposals, filtered before any of them costs an evaluation
    (`known` instructions count as duplicates); logs what the filter dropped."""
    requests = forward_requests(ctx, config, seed_offset)
    total = sum(r.n for r in requests)
    ctx.reporter.phase("Proposing instructions", total=total)
    completions = ctx.proposer.generate(requests)
    ctx.reporter.advance(total)
    texts = [t for c in completions for t in c.texts]
    survived = filter_proposals(texts, shown, known=known)
    log_filter(ctx, "propose", len(texts), survived)
    return survived.kept


def log_filter(ctx: SearchContext, step: str, sampled: int, survived: ProposalFilter) -> None:
    """One event per proposal batch, so a run shows what the proposer wasted."""
    ctx.store.event(
        "proposal_filter",
        step=step,
        sampled=sampled,
        kept=len(survived.kept),
        rejected=survived.rejected,
        examples=survived.examples_of_rejects,
    )


def meta_prompt(name: str, proposer_format: str) -> str:
    suffix = "_chat" if proposer_format == "chat" else ""
    return read_prompt_template(f"{name}{suffix}.txt")


def proposal_request(config: APEConfig, text: str, n: int, seed: int) -> GenerationRequest:
    """Chat proposers get a question; text proposers continue an open quotation."""
    params = {
        "max_tokens": config.proposal_max_tokens,
        "temperature": config.proposal_temperature,
        "n": n,
        "seed": seed,
    }
    if config.proposer_format == "chat":
        return GenerationRequest.chat(text.strip(), stop=("\n",), **params)
    return GenerationRequest(text=text, stop=('"', "\n"), **params)


def _demo_pair(template: str, example: Example) -> str:
    """Demonstrations shown to the proposer, in the task's own input template."""
    return render_demonstration(template, example)
