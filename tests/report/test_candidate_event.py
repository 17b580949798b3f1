"""The uniform "candidate" event every strategy writes when a dev score is known:
what the report's score-against-calls chart reads, whatever the strategy."""

from __future__ import annotations

from pathlib import Path

from promptopt.core.domain import Usage
from promptopt.run.store import RunStore, read_events
from promptopt.strategies.ape import APE, APEConfig
from promptopt.strategies.base import SearchContext
from promptopt.strategies.boosting import Boosted, BoostedConfig
from promptopt.strategies.reflexion import Reflexion
from promptopt.strategies.rlprompt import _Trainer
from tests.strategies import test_ape, test_boosting, test_reflexion


def candidates(run_dir: Path) -> list[dict]:
    return [e for e in read_events(run_dir) if e["event"] == "candidate"]


def test_record_candidate_writes_one_event_with_the_usage_so_far(tmp_path: Path) -> None:
    store = RunStore(tmp_path / "run", {"task": "t"})
    usage = Usage(calls=7, prompt_tokens=100, completion_tokens=20, cache_hits=2)
    store.usage = usage
    ctx = SearchContext(task=None, evaluator=None, proposer=None, seed=0, store=store)  # type: ignore[arg-type]
    ctx.record_candidate("Say the opposite.", 0.75, 8, "proposed")
    store.close()
    (event,) = candidates(tmp_path / "run")
    assert event == {
        "t": event["t"],
        "event": "candidate",
        "calls": 7,
        "new_calls": 5,
        "cache_hits": 2,
        "tokens": 120,
        "instruction": "Say the opposite.",
        "dev_score": 0.75,
        "dev_n": 8,
        "origin": "proposed",
    }


def _last_per_instruction(events: list[dict]) -> dict[str, tuple[float, int]]:
    return {e["instruction"]: (e["dev_score"], e["dev_n"]) for e in events}


def test_ape_records_every_dev_score_it_learns(tmp_path: Path) -> None:
    ctx, _, _ = test_ape.context(tmp_path)
    result = APE().search(ctx, APEConfig())
    events = candidates(tmp_path / "run")
    # Halving rescoring: a survivor appears again with more dev examples.
    assert len(events) > len({e["instruction"] for e in events})
    last = _last_per_instruction(events)
    assert last == {c.prompt.instruction: (c.dev_score, c.dev_n) for c in result.candidates}
    assert {e["origin"] for e in events} <= {"proposed", "start", "start+format"}


def test_reflexion_records_each_scored_prompt(tmp_path: Path) -> None:
    proposer = test_reflexion.Proposer(["Write the antonym of the word.", test_reflexion.GOOD])
    ctx, _, _ = test_reflexion.context(tmp_path, proposer)
    result = Reflexion().search(ctx, test_reflexion.cfg(minibatch=4, max_trials=5))
    last = _last_per_instruction(candidates(tmp_path / "run"))
    assert last == {c.prompt.instruction: (c.dev_score, c.dev_n) for c in result.candidates}


def test_boosting_records_each_member_when_it_has_answered_the_pool(tmp_path: Path) -> None:
    ctx, _, _ = test_boosting.context(tmp_path)
    result = Boosted().search(ctx, BoostedConfig(**test_boosting.SMALL))
    events = candidates(tmp_path / "run")
    scored = [c for c in result.candidates if c.dev_n > 0]
    assert [(e["dev_score"], e["dev_n"], e["origin"]) for e in events] == [
        (c.dev_score, c.dev_n, c.origin) for c in scored
    ]


class _Evaluator:
    def evaluate_many(self, prompts, examples):  # type: ignore[no-untyped-def]
        from promptopt.core.domain import EvalResult

        return [EvalResult(score=0.5, n=len(examples), results=[]) for _ in prompts]


def test_rlprompt_records_prompts_scored_on_dev(tmp_path: Path) -> None:
    """The trainer's dev scoring alone (the policy needs a real model)."""
    store = RunStore(tmp_path / "run", {"task": "t"})
    task = test_ape.make_task()
    ctx = SearchContext(task=task, evaluator=_Evaluator(), proposer=None, seed=0, store=store)  # type: ignore[arg-type]
    trainer = object.__new__(_Trainer)
    trainer.ctx, trainer.dev, trainer.dev_scores = ctx, task.examples("dev"), {}
    trainer.history = []
    trainer.score_on_dev(["great movie", "great movie", "awful"], origin="greedy @ step 5")
    store.close()
    events = candidates(tmp_path / "run")
    assert [(e["instruction"], e["dev_score"], e["origin"]) for e in events] == [
        ("great movie", 0.5, "greedy @ step 5"),
        ("awful", 0.5, "greedy @ step 5"),
    ]


def test_instructzero_records_each_instruction_scored_once(tmp_path: Path) -> None:
    from promptopt.strategies.instructzero import InstructZero, InstructZeroConfig
    from tests.strategies import test_instructzero

    ctx, _, _ = test_instructzero.context(tmp_path, test_instructzero.FakeWriter())
    result = InstructZero().search(ctx, InstructZeroConfig(**test_instructzero.SMALL))
    events = candidates(tmp_path / "run")
    instructions = [e["instruction"] for e in events]
    assert len(instructions) == len(set(instructions))  # identical instructions scored once
    last = _last_per_instruction(events)
    scored = {c.prompt.instruction: (c.dev_score, c.dev_n) for c in result.candidates}
    assert last == {i: scored[i] for i in last}
    assert {e["origin"] for e in events} == {"soft prompt"}
