"""Candidate demonstration sets, drawn from the train split only.

A weak proposer writes poor instructions, but demonstrations need no proposer:
shown as chat turns they teach a small model the answer format
(`../shared/FINDINGS.md`). Three ways to draw a set, as in DSPy's few-shot
optimizers:

- random: k train examples;
- balanced: for classification, the labels taken in turn, so no class is
  missing or dominant;
- bootstrapped: train examples the target model already answers right under
  the starting prompt (BootstrapFewShot's idea); on reasoning tasks the demo
  shows the model's own worked answer, which it imitates better than a human's.

Only train examples ever become demonstrations: dev selects and test reports,
so a demo drawn from either would leak the answer being scored.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

from promptopt.core.domain import EvalResult, Example
from promptopt.strategies.base import SearchContext


@dataclass(frozen=True)
class DemoSet:
    """Demonstrations and how they were drawn (for events and the leaderboard)."""

    demos: tuple[Example, ...]
    source: str

    @property
    def label(self) -> str:
        return f"{len(self.demos)} {self.source}" if self.demos else "no demos"


def bootstrapped_examples(
    pool: Sequence[Example], scored: EvalResult, reasoning: bool
) -> list[Example]:
    """The pool examples the target got right, shown with its own answer when the
    task's demonstrations are worked solutions."""
    by_id = {r.example_id: r for r in scored.results}
    right = []
    for example in pool:
        result = by_id.get(example.id)
        if result is None or result.score < 1.0:
            continue
        if reasoning and result.output.strip():
            example = replace(example, demo_output=result.output.strip())
        right.append(example)
    return right


def balanced_sample(examples: Sequence[Example], k: int, rng: random.Random) -> list[Example]:
    """k examples taking the targets (labels) in turn, each class shuffled."""
    by_label: dict[str, list[Example]] = {}
    for example in examples:
        by_label.setdefault(example.target, []).append(example)
    queues = [rng.sample(group, len(group)) for _, group in sorted(by_label.items())]
    rng.shuffle(queues)
    chosen: list[Example] = []
    while len(chosen) < k and any(queues):
        for queue in queues:
            if queue and len(chosen) < k:
                chosen.append(queue.pop())
    return chosen


def candidate_sets(
    train: Sequence[Example],
    bootstrapped: Sequence[Example],
    count: int,
    max_demos: int,
    labels: int,
    rng: random.Random,
) -> list[DemoSet]:
    """`count` distinct demo sets, the empty set first.

    Sizes cycle through 3, 1, 4, 2, ... up to `max_demos` (3 helped on the
    instruction-induction tasks where 8 hurt antonyms). Sources cycle through
    bootstrapped (when the target got any train example right) and random; for
    classification (`labels` > 0) through balanced sets of one, then two
    examples per label, and random. Classification skips bootstrapping: under a
    start the model answers with one label whatever the input (measured on
    subj), its right answers are all of that label, and one-sided
    demonstrations push it further that way, while 4 balanced ones lifted subj's
    test accuracy from 0.44 to 0.62.
    """
    sets = [DemoSet((), "none")]
    if count <= 1 or max_demos < 1 or not train:
        return sets[:count]
    sizes = [k for k in (3, 1, 4, 2, 5, 6, 7, 8) if k <= max_demos] or [max_demos]
    if labels:
        sizes = [labels * per_label for per_label in (1, 2)]
        sources = ["balanced", "balanced", "random"]
    else:
        sources = (["bootstrapped"] if bootstrapped else []) + ["random"]
    seen: set[tuple[str, ...]] = set()
    attempt = 0
    while len(sets) < count and attempt < 20 * count:
        k = sizes[attempt % len(sizes)]
        source = sources[attempt % len(sources)]
        attempt += 1
        if source == "bootstrapped":
            picked = rng.sample(list(bootstrapped), min(k, len(bootstrapped)))
        elif source == "balanced":
            picked = balanced_sample(train, k, rng)
        else:
            picked = rng.sample(list(train), min(k, len(train)))
        key = tuple(sorted(e.id for e in picked))
        if not picked or key in seen:
            continue
        seen.add(key)
        sets.append(DemoSet(tuple(picked), source))
    return sets


def draw_demo_sets(
    ctx: SearchContext, count: int, max_demos: int, bootstrap_pool: int, stream: str
) -> list[DemoSet]:
    """`count` demo sets for the search, the empty set first; bootstrapping costs up to
    `bootstrap_pool` target calls (the starting prompt on train examples), and is
    skipped for classification (see `candidate_sets`). `stream` names the seeded
    random streams, so each caller draws its own sets reproducibly."""
    train = ctx.task.examples("train")
    start = ctx.start_prompt
    pool = ctx.rng(f"{stream}-bootstrap").sample(train, min(bootstrap_pool, len(train)))
    bootstrapped: list[Example] = []
    if pool and count > 1 and not ctx.task.label_words:
        ctx.reporter.phase(f"Bootstrapping demonstrations ({len(pool)})", total=len(pool))
        scored = ctx.evaluator.evaluate(start, pool, progress=ctx.reporter.advance)
        reasoning = any(e.demo_output is not None for e in train)
        bootstrapped = bootstrapped_examples(pool, scored, reasoning)
        ctx.store.event("bootstrapped", pool=len(pool), right=[e.id for e in bootstrapped])
    sets = candidate_sets(
        train,
        bootstrapped,
        count,
        max_demos,
        labels=len(ctx.task.label_words or ()),
        rng=ctx.rng(f"{stream}-demo-sets"),
    )
    if start.demonstrations:  # a start from an export keeps its own demos as a choice
        sets.insert(1, DemoSet(start.demonstrations, "start"))
        sets = sets[: max(2, count)]
    return sets
