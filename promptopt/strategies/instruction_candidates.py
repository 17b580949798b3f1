"""Instruction candidates a weak proposer cannot spoil.

The list starts with what needs no proposer: the starting instruction, then
the starting instruction with each output-format constraint that the train
targets support (a number, one word, a label word...). Proposals from the
proposer (APE's forward mode) come after, filtered before any evaluation is
spent on them, so chit-chat, refusals and answer fragments never cost a call.
"""

from __future__ import annotations

from promptopt.strategies.ape import APEConfig, _demo_pair, _meta_prompt, _proposal_request
from promptopt.strategies.base import SearchContext
from promptopt.strategies.proposals import filter_proposals, format_constraints, with_constraint
from promptopt.types import GenerationRequest


def grounded_instructions(ctx: SearchContext) -> list[str]:
    """The starting instruction and its format-constrained variants."""
    start = ctx.start_prompt.instruction
    train = ctx.task.examples("train")
    variants = [with_constraint(start, c) for c in format_constraints(train, ctx.task.label_words)]
    return list(dict.fromkeys([start, *variants]))


def propose_instructions(
    ctx: SearchContext, count: int, proposals: int, seed_offset: int = 0
) -> list[str]:
    """Up to `count` distinct instructions: grounded ones first (at most half of
    the slots beyond the start), then filtered proposals, then more grounded ones
    if the proposer wrote too few usable instructions."""
    grounded = grounded_instructions(ctx)
    proposed: list[str] = []
    if proposals > 0 and count > 1:
        config = APEConfig(
            num_subsamples=max(1, proposals // 4),
            proposals_per_subsample=min(4, proposals),
        )
        requests = forward_requests(ctx, config, seed_offset)
        total = sum(r.n for r in requests)
        ctx.reporter.phase("Proposing instructions", total=total)
        completions = ctx.proposer.generate(requests)
        ctx.reporter.advance(total)
        texts = [t for c in completions for t in c.texts]
        survived = filter_proposals(texts, ctx.task.examples("train"), known=grounded)
        ctx.store.event(
            "proposal_filter",
            sampled=len(texts),
            kept=len(survived.kept),
            rejected=survived.rejected,
        )
        proposed = survived.kept
    head = grounded[: max(1, 1 + (count - 1) // 2)]
    rest = [g for g in grounded if g not in head]
    ordered = list(dict.fromkeys([*head, *proposed, *rest]))
    return ordered[:count]


def forward_requests(
    ctx: SearchContext, config: APEConfig, seed_offset: int = 0
) -> list[GenerationRequest]:
    """APE's forward-mode proposal requests: sampled train demonstrations in the
    meta-prompt, several samples each."""
    template = _meta_prompt("ape_forward", config.proposer_format)
    train = ctx.task.examples("train")
    rng = ctx.rng(f"proposal-demos-{seed_offset}")
    requests = []
    for s in range(config.num_subsamples):
        demos = rng.sample(train, min(config.demos_per_subsample, len(train)))
        shown = "\n\n".join(_demo_pair(ctx.task.template, d) for d in demos)
        requests.append(
            _proposal_request(
                config,
                template.replace("{demonstrations}", shown),
                n=config.proposals_per_subsample,
                seed=ctx.seed * 1000 + seed_offset + s,
            )
        )
    return requests
