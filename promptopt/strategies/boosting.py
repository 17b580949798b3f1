"""Boosted prompt ensembles (Pitis et al., 2023, arXiv 2304.05970).

1. Start from an initial few-shot prompt: the task's instruction and `shots`
   train demonstrations (worked solutions, i.e. chain of thought, where the
   data has them, as in GSM8K). It stays the ensemble's first member.
2. Each step, run the ensemble so far on a pool of train questions with
   `samples_per_prompt` sampled answers per prompt at `temperature`; per
   question, measure the agreement of all prompts x samples and, with labels,
   whether the vote is right.
3. Pick the "hard" questions:
   - train-time (`version=train`, needs the pool's labels): the vote is wrong
     but some sampled reasoning is right, lowest agreement first; the right
     reasoning becomes the demonstration (the model supervises itself);
   - test-time (`version=test`, no labels read): the questions whose agreement
     is at least `confidence_floor`, lowest first; the majority answer's
     reasoning becomes the demonstration.
4. The hard questions form the next prompt's demonstrations; add it and repeat
   until the ensemble has `num_prompts` members.

The ensemble answers by a plurality vote over all prompts x samples (or a vote
weighted by each member's pool accuracy); see `promptopt.evaluation.ensemble` for the
exact rules. `version=bagged` builds the paper's baseline instead: members with
random train demonstrations, no pool runs.

Each member's pool samples are kept, so a step only samples its newest member;
every call goes through the shared evaluator (cache, budget, run journal), and
the run store records every step, so `--resume` replays a run's calls.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from promptopt.core.domain import VOTE_RULES, Candidate, Ensemble, Example, Prompt
from promptopt.core.errors import ConfigError
from promptopt.evaluation.ensemble import plurality, vote_key
from promptopt.strategies.base import SearchContext, SearchResult, check_range, knob
from promptopt.strategies.boosting_pool import (
    Samples,
    is_right,
    pool_stats,
    select_test_time,
    select_train_time,
    test_demo,
    train_demo,
)

VERSIONS = ("train", "test", "bagged")
DEMO_SOURCES = ("sample", "gold")


@dataclass
class BoostedConfig:
    version: str = knob(
        "train",
        "'train' (hard = vote wrong but a sample right; reads the pool's labels), 'test' "
        "(no labels: lowest agreement above confidence_floor, majority reasoning) or "
        "'bagged' (random demonstrations, the paper's baseline)",
    )
    num_prompts: int = knob(3, "prompts in the ensemble, the initial one included (paper: 10)")
    samples_per_prompt: int = knob(
        3, "sampled answers per prompt per question, in the pool runs and when answering"
    )
    shots: int = knob(3, "demonstrations per prompt (GSM8K chain-of-thought prompts often use 8)")
    pool_size: int = knob(16, "train questions the ensemble is run on each step")
    temperature: float = knob(
        0.5, "sampling temperature (self-consistency uses 0.7; 0.5 suits a 135M model)"
    )
    confidence_floor: float = knob(
        0.5, "test-time: least agreement for a question's majority answer to be trusted"
    )
    vote: str = knob(
        "plurality",
        "'plurality' over all prompts x samples, or 'weighted' by each member's smoothed "
        "pool accuracy (test-time: agreement with the vote); costs one more pool run",
    )
    demo_source: str = knob(
        "sample",
        "train-time demonstrations: 'sample' (the model's right reasoning, as the paper) "
        "or 'gold' (the data's worked solution)",
    )
    gold_fallback: bool = knob(
        True,
        "train-time, demo_source=sample: when too few hard questions have a right sample, "
        "fill with the hardest wrong ones shown with the data's solution",
    )
    instruction: str = knob("", "instruction above the demonstrations ('' = the starting prompt's)")

    def __post_init__(self) -> None:
        if self.version not in VERSIONS:
            raise ConfigError(f"version must be one of {', '.join(VERSIONS)}, not '{self.version}'")
        if self.vote not in VOTE_RULES:
            raise ConfigError(f"vote must be one of {', '.join(VOTE_RULES)}, not '{self.vote}'")
        if self.demo_source not in DEMO_SOURCES:
            raise ConfigError(
                f"demo_source must be one of {', '.join(DEMO_SOURCES)}, not '{self.demo_source}'"
            )
        check_range(self, ("num_prompts", "samples_per_prompt", "shots", "pool_size"), at_least=1)
        check_range(self, "temperature", at_least=0)
        if self.temperature <= 0 and self.samples_per_prompt > 1:
            raise ConfigError(
                f"temperature must be above 0 with samples_per_prompt="
                f"{self.samples_per_prompt}, got {self.temperature!r}: several samples per "
                "prompt need a temperature above 0; pass e.g. -p temperature=0.5 (the default) "
                "or -p samples_per_prompt=1"
            )
        check_range(self, "confidence_floor", at_least=0, at_most=1)


@dataclass
class Member:
    prompt: Prompt
    origin: str
    samples: dict[str, Samples] = field(default_factory=dict)


class Boosted:
    name = "boosted"
    chooses_demonstrations = True  # no demonstration stage after it
    Config = BoostedConfig

    def search(self, ctx: SearchContext, config: BoostedConfig) -> SearchResult:
        train = ctx.task.examples("train")
        if not train:
            raise ConfigError(f"task '{ctx.task.name}' has no train examples to build prompts from")
        reasoning = any(e.demo_output is not None for e in train)
        instruction = config.instruction or ctx.start_prompt.instruction
        initial = ctx.rng("boost-initial").sample(train, min(config.shots, len(train)))
        used = {e.id for e in initial}
        rest = [e for e in train if e.id not in used]
        ctx.rng("boost-pool").shuffle(rest)
        pool = rest[: config.pool_size]
        members = [Member(self._prompt(ctx, instruction, initial), "initial prompt")]
        ctx.store.event(
            "boost_started",
            version=config.version,
            initial_demos=[e.id for e in initial],
            pool=[e.id for e in pool],
        )
        ctx.so_far = lambda: (
            self._result(ctx, config, members, pool, stopped=True)
            if any(m.samples for m in members) or config.version == "bagged"
            else None
        )
        for step in range(1, config.num_prompts):
            if not self._affords_a_member(ctx, config, len(members), len(pool)):
                ctx.store.event("boost_stopped", step=step, reason="budget kept for the dev check")
                ctx.reporter.note(
                    f"step {step}: the budget left pays for checking {len(members)} "
                    "prompts on dev, not for another; the ensemble stops growing"
                )
                break
            if config.version == "bagged":
                demos = self._bagged_demos(ctx, train, used, config.shots, step)
                origin = "bagged: random demonstrations"
            else:
                if not pool:
                    raise ConfigError("boosting needs train questions beyond the initial shots")
                self._sample_pool(ctx, config, members, pool, step)
                demos, origin = self._next_demos(ctx, config, members, pool, reasoning, step)
                if not demos:
                    ctx.store.event("boost_stopped", step=step, reason="no hard questions")
                    ctx.reporter.note(
                        f"step {step}: no hard question left in the pool; "
                        f"the ensemble keeps {len(members)} prompts"
                    )
                    break
            used |= {d.id for d in demos}
            members.append(Member(self._prompt(ctx, instruction, demos), origin))
            ctx.store.event(
                "boost_member_added",
                step=step,
                member=len(members) - 1,
                origin=origin,
                demos=[d.id for d in demos],
            )
        if config.vote == "weighted":
            self._sample_pool(ctx, config, members, pool, len(members))
        return self._result(ctx, config, members, pool, stopped=False)

    def _affords_a_member(
        self, ctx: SearchContext, config: BoostedConfig, members: int, pool: int
    ) -> bool:
        """Whether the call budget pays for one more member and still for the check
        that decides whether the ensemble replaces the starting prompt: the vote of
        every member's samples on all of dev (`promptopt.run.choice`). Without this
        reserve the ensemble a budget-capped search builds could never be checked,
        and the start would be kept whatever the ensemble was worth."""
        left = ctx.calls_left()
        if left is None:
            return True
        samples = config.samples_per_prompt
        pool_runs = 0 if config.version == "bagged" else 1 + (config.vote == "weighted")
        check = (members + 1) * samples * len(ctx.task.examples("dev"))
        needed = pool_runs * pool * samples + check
        return needed <= left

    # -- building prompts -----------------------------------------------------------
    def _prompt(self, ctx: SearchContext, instruction: str, demos: list[Example]) -> Prompt:
        return ctx.task.prompt(instruction, demos)

    def _bagged_demos(
        self, ctx: SearchContext, train: list[Example], used: set[str], shots: int, step: int
    ) -> list[Example]:
        fresh = [e for e in train if e.id not in used] or train
        return ctx.rng(f"boost-bag-{step}").sample(fresh, min(shots, len(fresh)))

    def _next_demos(
        self,
        ctx: SearchContext,
        config: BoostedConfig,
        members: list[Member],
        pool: list[Example],
        reasoning: bool,
        step: int,
    ) -> tuple[list[Example], str]:
        used = {d.id for m in members for d in m.prompt.demonstrations}
        candidates = [e for e in pool if e.id not in used]
        answers = [m.samples for m in members]
        if config.version == "train":
            stats = pool_stats(candidates, answers, ctx.task.scorer.score)
            picked = select_train_time(
                stats, config.shots, config.demo_source, config.gold_fallback
            )
            demos = [train_demo(s, source, reasoning) for s, source in picked]
            n_sample = sum(1 for _, source in picked if source == "sample")
            origin = f"step {step}: {len(demos)} hard ({n_sample} self-supervised)"
            chosen = [s for s, _ in picked]
        else:
            stats = pool_stats(candidates, answers)
            chosen = select_test_time(stats, config.shots, config.confidence_floor)
            demos = [test_demo(s, reasoning) for s in chosen]
            origin = f"step {step}: {len(demos)} confident-but-unsure (no labels)"
        # For the log (test-time too: pool labels are read here only, never to select).
        whole = pool_stats(pool, answers, ctx.task.scorer.score)
        ctx.store.event(
            "boost_step",
            step=step,
            members=len(members),
            pool_vote_accuracy=sum(1 for s in whole if s.right) / len(whole),
            mean_agreement=sum(s.agreement for s in whole) / len(whole),
            hard=[
                {"id": s.example.id, "agreement": round(s.agreement, 4), "vote": s.answer}
                for s in chosen
            ],
        )
        return demos, origin

    # -- running the pool -----------------------------------------------------------
    def _sample_pool(
        self,
        ctx: SearchContext,
        config: BoostedConfig,
        members: list[Member],
        pool: list[Example],
        step: int,
    ) -> None:
        """Sample every member that has not yet answered the pool, in one batch."""
        todo = [m for m in members if not m.samples]
        if not todo or not pool:
            return
        ctx.reporter.phase(
            f"Step {step}: {len(todo)} prompt(s) x {len(pool)} pool questions x "
            f"{config.samples_per_prompt} samples",
            total=len(todo) * len(pool),
        )
        out = ctx.evaluator.sample_many(
            [m.prompt for m in todo],
            pool,
            n=config.samples_per_prompt,
            temperature=config.temperature,
            seed=ctx.seed,
            progress=ctx.reporter.advance,
        )
        for member, per_example in zip(todo, out, strict=True):
            member.samples = {e.id: s for e, s in zip(pool, per_example, strict=True)}
            ctx.store.event(
                "boost_sampled",
                member=members.index(member),
                pool_accuracy=_sample_accuracy(ctx, member, pool),
            )
            # A member's score is its own vote's accuracy on the train pool (boosting
            # has no dev phase): the number the result ranks members by.
            ctx.record_candidate(
                member.prompt.instruction,
                _member_vote_accuracy(ctx, member, pool),
                len(pool),
                member.origin,
            )

    # -- the result -----------------------------------------------------------------
    def _result(
        self,
        ctx: SearchContext,
        config: BoostedConfig,
        members: list[Member],
        pool: list[Example],
        stopped: bool,
    ) -> SearchResult:
        weights: tuple[float, ...] = ()
        if config.vote == "weighted":
            weights = tuple(self._weight(ctx, config, m, members, pool) for m in members)
        ensemble = Ensemble(
            members=tuple(m.prompt for m in members),
            vote=config.vote,
            samples=config.samples_per_prompt,
            temperature=max(config.temperature, 0.0),
            weights=weights,
            seed=ctx.seed,
        )
        candidates = []
        for m in members:
            own = _member_vote_accuracy(ctx, m, pool)
            candidates.append(
                Candidate(
                    prompt=m.prompt,
                    dev_score=own,
                    dev_n=len(pool) if m.samples else 0,
                    origin=m.origin,
                )
            )
        scored = [m for m in members if m.samples]
        pool_score = None
        if scored:
            stats = pool_stats(pool, [m.samples for m in scored], ctx.task.scorer.score)
            pool_score = (sum(1 for s in stats if s.right) / len(stats), len(stats))
        ctx.store.event(
            "boost_finished",
            members=len(members),
            weights=list(weights),
            pool_vote_accuracy=pool_score[0] if pool_score else None,
        )
        return SearchResult(
            candidates=candidates,
            stopped_by_budget=stopped,
            ensemble=ensemble,
            ensemble_score=pool_score,
        )

    def _weight(
        self,
        ctx: SearchContext,
        config: BoostedConfig,
        member: Member,
        members: list[Member],
        pool: list[Example],
    ) -> float:
        """Laplace-smoothed share of the member's samples that are right (train-time,
        bagged) or agree with the ensemble's vote (test-time): never 0, 0.5 unmeasured."""
        hits = total = 0
        scored = [m.samples for m in members if m.samples]
        votes = {s.example.id: vote_key(s.answer) for s in pool_stats(pool, scored)}
        for example in pool:
            for _, pred in member.samples.get(example.id, []):
                total += 1
                if config.version == "test":
                    hits += bool(pred.strip()) and vote_key(pred) == votes[example.id]
                else:
                    hits += is_right(ctx.task.scorer.score(pred, example))
        return (hits + 1) / (total + 2)


def _sample_accuracy(ctx: SearchContext, member: Member, pool: list[Example]) -> float:
    scores = [
        float(ctx.task.scorer.score(pred, e)) for e in pool for _, pred in member.samples[e.id]
    ]
    return sum(scores) / len(scores) if scores else 0.0


def _member_vote_accuracy(ctx: SearchContext, member: Member, pool: list[Example]) -> float:
    if not member.samples:
        return 0.0
    right = 0
    for e in pool:
        vote = plurality([pred for _, pred in member.samples[e.id]])
        right += bool(vote.answer) and is_right(ctx.task.scorer.score(vote.answer, e))
    return right / len(pool)
