"""The demonstration stage after instruction-only strategies, on a scripted model
that answers right only when it is shown demonstrations."""

from __future__ import annotations

from pathlib import Path

from promptopt.core.domain import (
    Budget,
    Candidate,
    Example,
    GenerationRequest,
    LogprobRequest,
    Usage,
)
from promptopt.core.errors import BudgetExhausted
from promptopt.data.task import Task
from promptopt.evaluation.evaluator import Evaluator
from promptopt.llm.stack import layered
from promptopt.run.choice import search_from_start
from promptopt.run.store import RunStore, read_events
from promptopt.strategies.ape import APE, APEConfig
from promptopt.strategies.base import SearchContext, SearchResult
from promptopt.strategies.demo_stage import DEMO_SHARE
from tests.fakes import ScriptedLLM, last_user_text

OPPOSITES = {"hot": "cold", "up": "down", "big": "small", "fast": "slow", "day": "night"}


def make_task() -> Task:
    pairs = list(OPPOSITES.items())

    def split(prefix: str, n: int) -> list[Example]:
        return [Example(f"{prefix}{i}", pairs[i % 5][0], pairs[i % 5][1]) for i in range(n)]

    return Task.from_examples(
        "opposites",
        train=split("t", 10),
        dev=split("d", 20),
        test=split("x", 5),
        scorer="exact",
        template="Input: {input}\nOutput:",
        instruction="Do the task.",
    )


def target_reply(request: GenerationRequest, sample: int) -> str:
    """Right only with demonstrations shown as chat turns (more than system + query)."""
    word = last_user_text(request).rsplit("Input: ", 1)[1].split("\n")[0]
    shown = request.messages is not None and len(request.messages) > 2
    return OPPOSITES[word] if shown else "banana"


def proposer_reply(request: GenerationRequest, sample: int) -> str:
    return ["Repeat the word.", "Say something nice.", "Translate it."][sample % 3]


def context(tmp_path: Path, budget: Budget | None = None) -> tuple[SearchContext, Usage]:
    """The search's own model stack (meter, run journal) over scripted models."""
    usage, budget = Usage(), budget or Budget()
    task = make_task()
    store = RunStore(tmp_path / "run", {"task": "opposites"})
    journal = store.journal()
    ctx = SearchContext(
        task=task,
        evaluator=Evaluator(layered(ScriptedLLM(target_reply), usage, budget, None, journal), task),
        proposer=layered(ScriptedLLM(proposer_reply), usage, budget, None, journal),
        seed=0,
        store=store,
        usage=usage,
        budget=budget,
    )
    return ctx, usage


def test_ape_gains_demonstrations_from_train_only(tmp_path: Path) -> None:
    ctx, _ = context(tmp_path)
    config = APEConfig(num_subsamples=1, proposals_per_subsample=3)
    result, choice = search_from_start(ctx, APE(), config, demo_sets=4)
    assert choice.improved
    assert choice.prompt.demonstrations and choice.dev.score == 1.0
    train_ids = {e.id for e in ctx.task.examples("train")}
    for candidate in result.candidates:
        assert {d.id for d in candidate.prompt.demonstrations} <= train_ids
    assert any("random" in c.origin for c in result.candidates)
    events = [e["event"] for e in read_events(tmp_path / "run")]
    assert "demo_stage" in events and "demo_stage_round" in events


def test_no_stage_when_off_or_when_the_strategy_picks_demos(tmp_path: Path) -> None:
    config = APEConfig(num_subsamples=1, proposals_per_subsample=3)
    ctx, _ = context(tmp_path / "off")
    result, choice = search_from_start(ctx, APE(), config, demo_sets=0)
    assert not choice.improved
    assert all(not c.prompt.demonstrations for c in result.candidates)

    class PicksItsOwn(APE):
        chooses_demonstrations = True

    ctx, _ = context(tmp_path / "own")
    result, _ = search_from_start(ctx, PicksItsOwn(), config, demo_sets=4)
    assert all(not c.prompt.demonstrations for c in result.candidates)


class SpendsEverything:
    """A strategy that scores until the budget stops it, as RLPrompt does."""

    name = "spender"

    def search(self, ctx: SearchContext, config: object) -> SearchResult:
        dev = ctx.task.examples("dev")
        tried: list[Candidate] = []
        try:
            while True:  # a new instruction each time: the journal would serve a repeat
                prompt = ctx.task.prompt(f"Repeat the word ({len(tried)}).")
                score = ctx.evaluator.evaluate(prompt, dev[:1]).score
                tried.append(Candidate(prompt, score, 1, "spent"))
        except BudgetExhausted:
            pass
        return SearchResult(tried, stopped_by_budget=True)


def test_the_stage_gets_its_share_of_the_budget_and_the_cap_holds(tmp_path: Path) -> None:
    ctx, usage = context(tmp_path, Budget(max_calls=120))
    result, choice = search_from_start(ctx, SpendsEverything(), None, demo_sets=4)
    assert usage.calls <= 120 and usage.held_back_calls == 0
    held = int((120 - 20) * DEMO_SHARE)  # of what scoring the start on 20 dev examples left
    spent = [c for c in result.candidates if c.origin == "spent"]
    assert len(spent) == 120 - 20 - held  # one call each: the strategy stopped at its share
    stage = [c for c in result.candidates if c.prompt.demonstrations]
    assert stage[0].dev_n == 20  # the budget paid for halving down to one pair on all dev
    assert choice.improved and choice.prompt.demonstrations


def biased(request: LogprobRequest, word: str) -> float:
    """Prefers 'yes' by 2 nats whatever the input, plus 1 nat for the right label."""
    right = "yes" if "good" in last_user_text(request) else "no"
    return (2.0 if word == "yes" else 0.0) + (1.0 if word == right else 0.0)


def test_on_label_tasks_the_stage_also_tries_calibrated_prompts(tmp_path: Path) -> None:
    examples = [
        Example(f"e{i}", f"{'good' if i % 2 == 0 else 'bad'} thing {i}", ("yes", "no")[i % 2])
        for i in range(40)
    ]
    task = Task.from_examples(
        "yesno",
        train=examples[:10],
        dev=examples[10:30],
        test=examples[30:],
        scorer="label",
        instruction="Is it fine?",
        label_words=("yes", "no"),
        scoring_mode="logprob",
    )
    usage, budget = Usage(), Budget(max_calls=200)
    store = RunStore(tmp_path / "run", {"task": "yesno"})
    target = ScriptedLLM(lambda r, s: "", logprob=biased)
    ctx = SearchContext(
        task=task,
        evaluator=Evaluator(layered(target, usage, budget, None, store.journal()), task),
        proposer=layered(ScriptedLLM(proposer_reply), usage, budget, None, store.journal()),
        seed=0,
        store=store,
        usage=usage,
        budget=budget,
    )
    config = APEConfig(num_subsamples=1, proposals_per_subsample=3)
    result, choice = search_from_start(ctx, APE(), config, demo_sets=4)
    assert choice.improved and choice.prompt.calibration and choice.dev.score == 1.0
    assert any(c.origin.endswith("calibrated") for c in result.candidates)
    assert usage.calls <= 200
