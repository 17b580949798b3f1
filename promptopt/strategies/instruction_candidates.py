"""Instruction candidates a weak proposer cannot spoil, for the joint optimizer.

The list starts with what needs no proposer (APE's grounded candidates): the
starting instruction, then the starting instruction with each output-format
constraint the train targets support (a number, one word, a label word...).
Proposals from the proposer (APE's forward mode) fill the rest, filtered
before any evaluation is spent on them, so chit-chat, refusals and answer
fragments never cost a call.
"""

from __future__ import annotations

from promptopt.strategies.ape import APEConfig
from promptopt.strategies.ape_proposing import grounded_candidates, propose_filtered
from promptopt.strategies.base import SearchContext


def propose_instructions(
    ctx: SearchContext, count: int, proposals: int, seed_offset: int = 0
) -> list[str]:
    """Up to `count` distinct instructions: the start, grounded ones (at most half
    of the slots), then filtered proposals, then more grounded ones if the
    proposer wrote too few usable instructions."""
    grounded = [instruction for instruction, _ in grounded_candidates(ctx, APEConfig())]
    proposed: list[str] = []
    if proposals > 0 and count > 1:
        config = APEConfig(
            num_subsamples=max(1, proposals // 4),
            proposals_per_subsample=min(4, proposals),
        )
        proposed = propose_filtered(ctx, config, ctx.task.examples("train"), grounded, seed_offset)
    head = grounded[: max(1, 1 + (count - 1) // 2)]
    rest = [g for g in grounded if g not in head]
    return list(dict.fromkeys([*head, *proposed, *rest]))[:count]
