from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from promptopt.core.domain import Budget, Example, GenerationRequest, Prompt, Usage
from promptopt.core.errors import ConfigError
from promptopt.data.task import Task
from promptopt.evaluation.evaluator import Evaluator
from promptopt.llm.meter import MeteredLLM
from promptopt.run.choice import search_to_budget
from promptopt.run.store import RunStore, read_events
from promptopt.strategies.ape import APE, APEConfig, clean_instruction
from promptopt.strategies.ape_proposing import forward_requests
from promptopt.strategies.base import SearchContext, build_config
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
# What the embedded 135M proposer writes instead of an instruction (real texts
# from bench/results): none of it may cost an evaluation.
JUNK = [
    "Here is the answer for your question:",
    "Output: hope",
    "I'd be happy to provide you with the answer with a single sentence of instruction.",
    "The instructions are:",
    "",
]

Reply = Callable[[GenerationRequest, int], str]

PURE = {"include_baseline": False, "format_candidates": False}
"""The paper's APE: proposals only, no start or format candidates."""


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


def context(
    tmp_path: Path,
    budget: Budget | None = None,
    seed: int = 0,
    proposer_reply: Reply = proposer_reply,
):
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
    config = APEConfig(num_subsamples=3, proposals_per_subsample=4, halving_start=4, **PURE)
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
    assert "proposal_filter" in kinds


def test_ucb_also_finds_it(tmp_path: Path) -> None:
    ctx, _, _ = context(tmp_path)
    config = APEConfig(num_subsamples=3, proposals_per_subsample=4, selection="ucb")
    result = APE().search(ctx, config)
    assert result.best.prompt.instruction == "Write the opposite of the word."
    assert result.best.dev_n == 20


def test_budget_stop_returns_best_so_far(tmp_path: Path) -> None:
    ctx, usage, _ = context(tmp_path, budget=Budget(max_calls=12 + 16 + 4))
    config = APEConfig(num_subsamples=3, proposals_per_subsample=4, halving_start=4, **PURE)
    result = search_to_budget(ctx, APE(), config)
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


@pytest.mark.parametrize(
    ("knob", "value", "allowed"),
    [
        ("halving_start", "0", "at least 1"),
        ("halving_start", "-3", "at least 1"),
        ("halving_eta", "1", "at least 2"),
        ("proposal_temperature", "-1", "at least 0"),
        ("ucb_c", "-1", "at least 0"),
        ("ucb_rounds", "0", "at least 1"),
        ("ucb_top_k", "0", "at least 1"),
        ("ucb_batch", "0", "at least 1"),
        ("proposal_max_tokens", "0", "at least 1"),
        ("num_subsamples", "0", "at least 1"),
        ("demos_per_subsample", "0", "at least 1"),
        ("proposals_per_subsample", "0", "at least 1"),
        ("resample_rounds", "-1", "at least 0"),
        ("resample_top_k", "0", "at least 1"),
        ("resample_per_candidate", "0", "at least 1"),
    ],
)
def test_every_knob_is_range_checked(knob: str, value: str, allowed: str) -> None:
    with pytest.raises(ConfigError, match=f"{knob} must be {allowed}, got {value}"):
        build_config(APEConfig, {knob: value})


def test_the_halving_loop_refuses_a_round_that_makes_no_progress(tmp_path: Path) -> None:
    """Defence in depth behind the config check: halving_start=0 once never grew its
    subset and wrote events until the disk was full."""
    ctx, _, _ = context(tmp_path)
    config = APEConfig(num_subsamples=1, proposals_per_subsample=2)
    config.halving_start = 0  # past __post_init__, as a caller mutating a config could
    with pytest.raises(ConfigError, match="successive halving made no progress in round"):
        APE().search(ctx, config)
    # Rounds still end while they drop candidates; once one is left, the next stops it.
    rounds = [e for e in read_events(tmp_path / "run") if e["event"] == "halving_round"]
    assert 1 <= len(rounds) <= 5 and len(rounds[-1]["ranking"]) == 1


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


def test_start_and_format_candidates_enter_by_default(tmp_path: Path) -> None:
    ctx, _, _ = context(tmp_path)
    result = APE().search(ctx, APEConfig(num_subsamples=3, proposals_per_subsample=4))
    origins = {c.prompt.instruction: c.origin for c in result.candidates}
    # Every train target is one lower-case word: both constraints hold.
    assert origins["Do the task."] == "start"
    assert origins["Do the task. Answer with one word only."] == "start+format"
    assert origins["Do the task. Answer in lower case."] == "start+format"
    assert result.best.prompt.instruction == "Write the opposite of the word."


def test_start_candidate_is_the_users_start_not_the_task_baseline(tmp_path: Path) -> None:
    ctx, _, _ = context(tmp_path)
    ctx.start = Prompt(instruction="Give the opposite", template=ctx.task.template)
    result = APE().search(ctx, APEConfig(num_subsamples=1, proposals_per_subsample=2))
    origins = {c.prompt.instruction: c.origin for c in result.candidates}
    assert origins["Give the opposite"] == "start"
    assert origins["Give the opposite. Answer with one word only."] == "start+format"
    assert "Do the task." not in origins


def test_junk_proposals_cost_no_evaluation_and_ape_still_runs(tmp_path: Path) -> None:
    def junk(request: GenerationRequest, sample: int) -> str:
        return JUNK[(request.seed + sample) % len(JUNK)]

    ctx, _, target = context(tmp_path, proposer_reply=junk)
    result = APE().search(ctx, APEConfig(num_subsamples=2, proposals_per_subsample=5))
    assert {c.origin for c in result.candidates} == {"start", "start+format"}
    assert len(result.candidates) == 3
    # Halving over the 3 grounded candidates only: 3 x 4, 2 x 4 more, 1 x 12 more.
    assert target.generate_calls == 3 * 4 + 2 * 4 + 1 * 12
    events = [e for e in read_events(tmp_path / "run") if e["event"] == "proposal_filter"]
    assert len(events) == 1
    assert events[0]["sampled"] == 10 and events[0]["kept"] == 0
    assert sum(events[0]["rejected"].values()) == 10
    assert set(events[0]["rejected"]) == {
        "chit_chat",
        "answer_fragment",
        "talks_about_instruction",
        "empty",
    }


def test_without_grounded_candidates_junk_alone_is_an_error(tmp_path: Path) -> None:
    ctx, _, _ = context(tmp_path, proposer_reply=lambda request, sample: "Output: hope")
    with pytest.raises(ConfigError, match="no usable instruction"):
        APE().search(ctx, APEConfig(num_subsamples=1, proposals_per_subsample=2, **PURE))


def test_a_proposal_equal_to_the_start_is_a_duplicate(tmp_path: Path) -> None:
    ctx, _, _ = context(tmp_path, proposer_reply=lambda request, sample: "do the task")
    result = APE().search(ctx, APEConfig(num_subsamples=1, proposals_per_subsample=2))
    assert "proposed" not in {c.origin for c in result.candidates}
    event = [e for e in read_events(tmp_path / "run") if e["event"] == "proposal_filter"][0]
    assert event["rejected"] == {"duplicate": 2}


def test_resampled_variations_are_filtered_too(tmp_path: Path) -> None:
    def reply(request: GenerationRequest, sample: int) -> str:
        if "Rewrite" in last_user_text(request):
            return ["I'm sorry, I can't do that.", "Write the opposite of the word."][sample % 2]
        return proposer_reply(request, sample)

    ctx, _, _ = context(tmp_path, proposer_reply=reply)
    config = APEConfig(num_subsamples=2, proposals_per_subsample=3, resample_rounds=1)
    APE().search(ctx, config)
    events = [e for e in read_events(tmp_path / "run") if e["event"] == "proposal_filter"]
    assert [e["step"] for e in events] == ["propose", "resample 1"]
    assert events[1]["kept"] == 0
    assert set(events[1]["rejected"]) == {"refusal", "duplicate"}


def test_forward_requests_show_train_subsets_with_distinct_seeds(tmp_path: Path) -> None:
    ctx, _, _ = context(tmp_path)
    config = APEConfig(num_subsamples=3, proposals_per_subsample=2, demos_per_subsample=2)
    requests = forward_requests(ctx, config)
    assert [r.n for r in requests] == [2, 2, 2]
    assert len({r.seed for r in requests}) == 3
    assert all(last_user_text(r).count("Input: ") == 2 for r in requests)
    assert forward_requests(ctx, config) == requests  # recomputable
