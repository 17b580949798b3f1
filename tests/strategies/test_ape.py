from __future__ import annotations

from pathlib import Path

import pytest

from promptopt.evaluate import Evaluator
from promptopt.llm.meter import MeteredLLM
from promptopt.store import RunStore, read_events
from promptopt.strategies.ape import APE, APEConfig, clean_instruction
from promptopt.strategies.base import SearchContext, build_config
from promptopt.task import Task
from promptopt.types import Budget, Example, GenerationRequest, Usage
from tests.fakes import ScriptedLLM, last_user_text

OPPOSITES = {"hot": "cold", "up": "down", "big": "small", "fast": "slow", "day": "night"}

PROPOSALS = [
    ' Write the opposite of the word."',  # the good one
    "Repeat the word.",
    '"Write the opposite of the word."',  # duplicate after cleaning
    "Translate the word to French.",
    "",
    "Say something nice.",
]


def make_task() -> Task:
    words = list(OPPOSITES.items())
    examples = [Example(id=str(i), input=w, target=o) for i, (w, o) in enumerate(words * 4)]
    return Task.from_examples(
        "opposites",
        train=examples[:5],
        dev=[Example(id=f"d{i}", input=e.input, target=e.target) for i, e in enumerate(examples)],
        test=examples[:5],
        scorer="exact",
        template="Input: {input}\nOutput:",
        instruction="Do the task.",
    )


def target_reply(request: GenerationRequest, sample: int) -> str:
    text = last_user_text(request)
    word = text.rsplit("Input: ", 1)[1].split("\n")[0]
    if "opposite" in text:
        return OPPOSITES[word]
    if "Repeat" in text:
        return word if word != "hot" else "cold"  # right once in five
    return "banana"


def proposer_reply(request: GenerationRequest, sample: int) -> str:
    return PROPOSALS[(request.seed * 7 + sample) % len(PROPOSALS)]


def context(tmp_path: Path, budget: Budget | None = None, seed: int = 0):
    usage = Usage()
    target = ScriptedLLM(target_reply)
    proposer = ScriptedLLM(proposer_reply)
    task = make_task()
    store = RunStore(tmp_path / "run", {"task": "opposites"})
    ctx = SearchContext(
        task=task,
        evaluator=Evaluator(MeteredLLM(target, usage, budget), task),
        proposer=MeteredLLM(proposer, usage, budget),
        seed=seed,
        store=store,
    )
    return ctx, usage, target


def test_clean_instruction_strips_quotes_and_preambles() -> None:
    assert clean_instruction(' The instruction was: "Add the numbers."') == "Add the numbers."
    assert clean_instruction('  Sort the list"') == "Sort the list"


def test_halving_finds_the_right_instruction_and_spends_little_on_bad_ones(
    tmp_path: Path,
) -> None:
    ctx, usage, target = context(tmp_path)
    config = APEConfig(num_subsamples=3, proposals_per_subsample=4, halving_start=4)
    result = APE().search(ctx, config)
    best = result.best
    assert best.prompt.instruction == "Write the opposite of the word."
    assert best.dev_score == 1.0 and best.dev_n == 20
    instructions = [c.prompt.instruction for c in result.candidates]
    assert len(instructions) == len(set(instructions)) == 4  # deduplicated, empty dropped
    worst = [c for c in result.candidates if c.prompt.instruction == "Say something nice."][0]
    assert worst.dev_n == 4  # eliminated in the first round
    # 4 candidates x 4 + 2 x 4 more + 1 x 12 more = 36 target calls, not 4 x 20 = 80.
    assert target.generate_calls == 4 * 4 + 2 * 4 + 1 * 12
    kinds = [e["event"] for e in read_events(tmp_path / "run")]
    assert "proposed" in kinds and kinds.count("halving_round") == 4


def test_ucb_also_finds_it(tmp_path: Path) -> None:
    ctx, _, _ = context(tmp_path)
    config = APEConfig(num_subsamples=3, proposals_per_subsample=4, selection="ucb")
    result = APE().search(ctx, config)
    assert result.best.prompt.instruction == "Write the opposite of the word."
    assert result.best.dev_n == 20


def test_budget_stop_returns_best_so_far(tmp_path: Path) -> None:
    ctx, usage, _ = context(tmp_path, budget=Budget(max_calls=12 + 16 + 4))
    config = APEConfig(num_subsamples=3, proposals_per_subsample=4, halving_start=4)
    result = APE().search(ctx, config)
    assert result.stopped_by_budget
    assert result.best.prompt.instruction == "Write the opposite of the word."
    assert usage.calls <= 32


def test_resampling_adds_variations(tmp_path: Path) -> None:
    ctx, _, _ = context(tmp_path)
    config = APEConfig(num_subsamples=2, proposals_per_subsample=3, resample_rounds=1)
    result = APE().search(ctx, config)
    origins = {c.origin for c in result.candidates}
    assert "proposed" in origins


def test_build_config_parses_and_rejects() -> None:
    config = build_config(APEConfig, {"num_subsamples": "2", "selection": "ucb"})
    assert config.num_subsamples == 2 and config.selection == "ucb"
    with pytest.raises(Exception, match="did you mean 'num_subsamples'"):
        build_config(APEConfig, {"num_subsample": "2"})
    with pytest.raises(Exception, match="expects int"):
        build_config(APEConfig, {"num_subsamples": "many"})
    with pytest.raises(Exception, match="halving' or 'ucb"):
        build_config(APEConfig, {"selection": "greedy"})


def test_likelihood_objective_uses_log_probabilities(tmp_path: Path) -> None:
    usage = Usage()

    def logprob(request, continuation: str) -> float:  # type: ignore[no-untyped-def]
        return -0.1 if "opposite" in last_user_text(request) else -5.0

    target = ScriptedLLM(target_reply, logprob=logprob)
    task = make_task()
    ctx = SearchContext(
        task=task,
        evaluator=Evaluator(MeteredLLM(target, usage), task),
        proposer=MeteredLLM(ScriptedLLM(proposer_reply), usage),
        seed=0,
        store=RunStore(tmp_path / "run", {"task": "opposites"}),
    )
    config = APEConfig(num_subsamples=3, proposals_per_subsample=4, objective="likelihood")
    result = APE().search(ctx, config)
    assert result.best.prompt.instruction == "Write the opposite of the word."
    assert result.best.dev_score == pytest.approx(-0.1)
    assert target.generate_calls == 0 and target.logprob_calls > 0
