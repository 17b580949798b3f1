"""Reflexion as a prompt search, on a scripted model: memory, prompts, stop rules, budget."""

from __future__ import annotations

from pathlib import Path

import pytest

from promptopt.core.domain import (
    Budget,
    EvalResult,
    Example,
    ExampleResult,
    GenerationRequest,
    Usage,
)
from promptopt.core.errors import BudgetExhausted, ConfigError
from promptopt.data.task import Task
from promptopt.evaluation.evaluator import Evaluator
from promptopt.llm.meter import MeteredLLM
from promptopt.run.choice import search_to_budget
from promptopt.run.store import RunStore, read_events
from promptopt.strategies.base import SearchContext, build_config
from promptopt.strategies.reflection import EpisodicMemory, clean_reflection, fill_placeholders
from promptopt.strategies.reflexion import (
    Reflexion,
    ReflexionConfig,
    format_failures,
    parse_revision,
    reflection_prompt,
    revision_prompt,
)
from tests.fakes import ScriptedLLM, last_user_text

OPPOSITES = {"hot": "cold", "up": "down", "big": "small", "fast": "slow", "day": "night"}
GOOD = "Write the opposite of the word."


def make_task(instruction: str = "Repeat the word.") -> Task:
    """Train and dev share no input, as the toolkit's splits guarantee."""
    words = list(OPPOSITES.items())
    train = [Example(id=f"t{i}", input=f"{w} ", target=o) for i, (w, o) in enumerate(words)]
    train += [Example(id=f"u{i}", input=f" {w}", target=o) for i, (w, o) in enumerate(words)]
    dev = [Example(id=f"d{i}", input=w, target=o) for i, (w, o) in enumerate(words)]
    return Task.from_examples(
        "opposites",
        train=train,
        dev=dev,
        test=dev,
        scorer="exact",
        template="Input: {input}\nOutput:",
        instruction=instruction,
    )


def target_reply(request: GenerationRequest, sample: int) -> str:
    text = last_user_text(request)
    word = text.rsplit("Input: ", 1)[1].split("\n")[0].strip()
    if "opposite" in text:
        return OPPOSITES[word]
    if "antonym" in text:  # right on two words in five
        return OPPOSITES[word] if word in ("hot", "up") else word
    return word


class Proposer:
    """Reflections and revisions from scripts, recording every prompt it reads."""

    def __init__(self, revisions: list[str], reflections: list[str] | None = None) -> None:
        self.revisions = revisions
        self.reflections = reflections or ["The answers repeat the word; ask for its opposite."]
        self.reflect_prompts: list[str] = []
        self.revise_prompts: list[str] = []

    def __call__(self, request: GenerationRequest, sample: int) -> str:
        text = last_user_text(request)
        if text.startswith("An assistant followed"):
            self.reflect_prompts.append(text)
            k = len(self.reflect_prompts) - 1
            return self.reflections[min(k, len(self.reflections) - 1)]
        self.revise_prompts.append(text)
        k = len(self.revise_prompts) - 1
        return self.revisions[min(k, len(self.revisions) - 1)]


def context(
    tmp_path: Path,
    proposer: Proposer,
    budget: Budget | None = None,
    task: Task | None = None,
    seed: int = 0,
    run: str = "run",
):
    usage = Usage()
    target = ScriptedLLM(target_reply)
    task = task or make_task()
    ctx = SearchContext(
        task=task,
        evaluator=Evaluator(MeteredLLM(target, usage, budget), task),
        proposer=MeteredLLM(ScriptedLLM(proposer), usage, budget),
        seed=seed,
        store=RunStore(tmp_path / run, {"task": "opposites"}),
    )
    return ctx, usage, target


def cfg(**values: object) -> ReflexionConfig:
    """One revision per trial unless a test asks for more: each scripted reply is one call."""
    return ReflexionConfig(**{"revisions": 1, **values})  # type: ignore[arg-type]


def kinds(tmp_path: Path, run: str = "run") -> list[str]:
    return [e["event"] for e in read_events(tmp_path / run)]


# --------------------------------------------------------------------------- pieces


def test_memory_keeps_the_last_k_reflections_oldest_first() -> None:
    memory = EpisodicMemory(3)
    assert memory.render() == "(none yet)"
    for text in ["one", "  ", "two", "three", "four"]:
        memory.add(text)
    assert memory.items == ["two", "three", "four"]  # blank skipped, oldest dropped
    assert memory.render() == "1. two\n2. three\n3. four"
    assert EpisodicMemory(1, ["a", "b"]).items == ["b"]


def test_reflection_prompt_shows_instruction_and_each_failure() -> None:
    failures = [
        {"input": "hot", "expected": "cold", "got": "hot"},
        {"input": "up", "expected": "down", "got": "(nothing)"},
    ]
    text = reflection_prompt("Repeat the word.", failures)
    assert "Instruction: Repeat the word." in text
    assert "Input: hot\nExpected: cold\nGot: hot" in text
    assert "Input: up\nExpected: down\nGot: (nothing)" in text
    assert "{" not in text  # every placeholder filled


def test_revision_prompt_numbers_the_memory() -> None:
    memory = EpisodicMemory(2, ["Say the opposite.", "Use one word."])
    text = revision_prompt("Repeat the word.", memory)
    assert "Instruction: Repeat the word." in text
    assert "1. Say the opposite.\n2. Use one word." in text


def test_fill_placeholders_leaves_other_braces() -> None:
    assert fill_placeholders("{a} {b} {{x}} {c}", a="1", b="{c}") == "1 {c} {{x}} {c}"


def test_format_failures_takes_wrong_answers_first_line_and_limit() -> None:
    examples = [Example(id=str(i), input=f"w{i}", target=f"t{i}") for i in range(5)]
    results = EvalResult(
        score=0.2,
        n=5,
        results=[
            ExampleResult("0", "t0", "t0", 1.0),
            ExampleResult("1", "wrong\nmore lines", "wrong", 0.0),
            ExampleResult("2", "", "", 0.0),
            ExampleResult("3", "x" * 500, "x", 0.0),
            ExampleResult("4", "no", "no", 0.0),
        ],
    )
    failures = format_failures(examples, results, limit=3, output_chars=20)
    assert [f["input"] for f in failures] == ["w1", "w2", "w3"]
    assert failures[0] == {"input": "w1", "expected": "t1", "got": "wrong"}
    assert failures[1]["got"] == "(nothing)"
    assert failures[2]["got"] == "x" * 20


@pytest.mark.parametrize(
    ("reply", "expected"),
    [
        ("Write the antonym of the word.", "Write the antonym of the word."),
        ('Here is the improved instruction:\n"Write the antonym."', "Write the antonym."),
        ("Improved instruction: **Give the opposite word.**", "Give the opposite word."),
        ("Sure! Here's the revised instruction: `Answer with one word.`", "Answer with one word."),
        ("1. Give the opposite.\n2. Be brief.", "Give the opposite."),
        ("The new instruction is: reply with the antonym", "Reply with the antonym"),
    ],
)
def test_parse_revision_strips_preambles_quotes_and_markdown(reply: str, expected: str) -> None:
    assert parse_revision(reply, "Repeat the word.") == (expected, "")


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        ("", "empty"),
        ("   \n  ", "empty"),
        ('""', "empty"),
        ("Here is the improved instruction:", "empty"),
        ("Input: hot\nOutput: cold", "echoed an example or lesson"),
        ("ok", "too short"),
        ("repeat the word", "unchanged"),
        ("The assistant failed to give the opposite.", "describes instead of instructing"),
        ("In the provided instruction, the prompt is unclear.", "describes instead of instructing"),
    ],
)
def test_parse_revision_rejects_unusable_replies(reply: str, reason: str) -> None:
    assert parse_revision(reply, "Repeat the word.") == (None, reason)


def test_clean_reflection_keeps_the_first_paragraph() -> None:
    assert clean_reflection("Reflection: It repeated.\n\nInput: x") == "It repeated."
    assert clean_reflection("  \n ") == ""
    long = "A sentence. " * 60
    assert len(clean_reflection(long)) <= 400 and clean_reflection(long).endswith(".")


def test_config_is_validated() -> None:
    config = build_config(ReflexionConfig, {"memory_size": "1", "continue_from": "latest"})
    assert config.memory_size == 1 and config.continue_from == "latest"
    with pytest.raises(Exception, match="continue_from"):
        build_config(ReflexionConfig, {"continue_from": "worst"})
    with pytest.raises(Exception, match="memory_size must be at least 1"):
        build_config(ReflexionConfig, {"memory_size": "0"})


@pytest.mark.parametrize(
    ("knob", "value", "allowed"),
    [
        ("max_trials", "0", "at least 1"),
        ("patience", "0", "at least 1"),
        ("minibatch", "-1", "at least 1"),
        ("failures_shown", "0", "at least 1"),
        ("revisions", "0", "at least 1"),
        ("reflect_temperature", "-0.5", "at least 0"),
        ("revise_temperature", "-1", "at least 0"),
        ("reflect_max_tokens", "0", "at least 1"),
        ("revise_max_tokens", "0", "at least 1"),
        ("output_chars", "0", "at least 1"),
    ],
)
def test_every_knob_is_range_checked(knob: str, value: str, allowed: str) -> None:
    with pytest.raises(ConfigError, match=f"{knob} must be {allowed}, got {value}"):
        build_config(ReflexionConfig, {knob: value})


# --------------------------------------------------------------------------- the search


def test_finds_a_better_prompt_and_logs_its_history(tmp_path: Path) -> None:
    proposer = Proposer(["Write the antonym of the word.", GOOD])
    ctx, _, _ = context(tmp_path, proposer)
    result = Reflexion().search(ctx, cfg(minibatch=4, max_trials=5))
    assert result.best.prompt.instruction == GOOD
    assert result.best.dev_score == 1.0 and result.best.dev_n == 5
    origins = {c.prompt.instruction: c.origin for c in result.candidates}
    assert origins == {
        "Repeat the word.": "start",
        "Write the antonym of the word.": "trial 1",
        GOOD: "trial 2",
    }
    events = read_events(tmp_path / "run")
    trials = [e for e in events if e["event"] == "trial"]
    assert [t["instruction"] for t in trials] == [
        "Repeat the word.",
        "Write the antonym of the word.",  # continue from the best so far
    ]
    assert trials[0]["failures"][0]["got"] == trials[0]["failures"][0]["input"].strip()
    reflections = [e for e in events if e["event"] == "reflection"]
    assert reflections[1]["memory"] == [proposer.reflections[0]] * 2
    assert [e["event"] for e in events if e["event"] in ("improved", "stopped")] == [
        "improved",
        "improved",
        "stopped",
    ]
    assert events[-1]["reason"] == "perfect on dev"


def test_memory_window_reaches_the_actor(tmp_path: Path) -> None:
    reflections = [f"Lesson {i}." for i in range(1, 6)]
    revisions = [f"Answer attempt {i}." for i in range(1, 6)]
    proposer = Proposer(revisions, reflections)
    ctx, _, _ = context(tmp_path, proposer)
    Reflexion().search(ctx, cfg(minibatch=4, memory_size=2, max_trials=4, patience=9))
    assert len(proposer.revise_prompts) == 4
    assert "1. Lesson 1." in proposer.revise_prompts[0]
    assert "2. Lesson 2." in proposer.revise_prompts[1]
    last = proposer.revise_prompts[3]
    assert "1. Lesson 3.\n2. Lesson 4." in last and "Lesson 2." not in last


def test_reflector_reads_at_most_failures_shown(tmp_path: Path) -> None:
    proposer = Proposer(["Answer attempt."])
    ctx, _, _ = context(tmp_path, proposer)
    Reflexion().search(ctx, cfg(minibatch=6, failures_shown=2, max_trials=1))
    assert proposer.reflect_prompts[0].count("Expected:") == 2


def test_stops_after_patience_trials_without_improvement(tmp_path: Path) -> None:
    proposer = Proposer([f"Say the word again, version {i}." for i in range(10)])
    ctx, _, _ = context(tmp_path, proposer)
    result = Reflexion().search(ctx, cfg(minibatch=3, patience=2, max_trials=8))
    events = read_events(tmp_path / "run")
    assert kinds(tmp_path).count("trial") == 2
    assert events[-1] == {
        **events[-1],
        "event": "stopped",
        "reason": "2 trials without improvement",
    }
    assert result.best.prompt.instruction == "Repeat the word."  # ties keep the earlier prompt
    assert not result.stopped_by_budget


def test_unusable_revisions_count_as_trials_without_improvement(tmp_path: Path) -> None:
    proposer = Proposer(["", "Repeat the word.", "Here is the improved instruction:"])
    ctx, usage, target = context(tmp_path, proposer)
    Reflexion().search(ctx, cfg(minibatch=3, patience=3, max_trials=8))
    revisions = [e for e in read_events(tmp_path / "run") if e["event"] == "revision"]
    assert [r["rejected"][0]["reason"] for r in revisions] == ["empty", "unchanged", "empty"]
    assert all(not r["accepted"] for r in revisions)
    # Baseline on dev, then the three minibatches only, each example asked once.
    seen = {
        i for e in read_events(tmp_path / "run") if e["event"] == "trial" for i in e["examples"]
    }
    assert target.generate_calls == 5 + len(seen) and len(seen) < 9


def test_stops_at_max_trials(tmp_path: Path) -> None:
    proposer = Proposer([f"Say the word again, version {i}." for i in range(10)])
    ctx, _, _ = context(tmp_path, proposer)
    Reflexion().search(ctx, cfg(minibatch=3, patience=9, max_trials=3))
    events = read_events(tmp_path / "run")
    assert kinds(tmp_path).count("trial") == 3
    assert events[-1]["reason"] == "max_trials reached"


def test_a_perfect_baseline_needs_no_trial(tmp_path: Path) -> None:
    proposer = Proposer([GOOD])
    ctx, usage, _ = context(tmp_path, proposer, task=make_task(GOOD))
    result = Reflexion().search(ctx, cfg())
    assert result.best.prompt.instruction == GOOD
    assert usage.calls == 5 and "trial" not in kinds(tmp_path)


def test_continue_from_latest_revises_the_last_revision(tmp_path: Path) -> None:
    proposer = Proposer(["Say the word again, please.", "Write the antonym of the word.", GOOD])
    ctx, _, _ = context(tmp_path, proposer)
    Reflexion().search(ctx, cfg(minibatch=3, patience=5, max_trials=2, continue_from="latest"))
    trials = [e for e in read_events(tmp_path / "run") if e["event"] == "trial"]
    assert trials[1]["instruction"] == "Say the word again, please."


def test_budget_stop_returns_best_so_far(tmp_path: Path) -> None:
    # baseline 5 dev + trial 1 (4 train + reflect + revise + 5 dev) = 16; trial 2 stops mid-way.
    proposer = Proposer(["Write the antonym of the word.", GOOD])
    ctx, usage, _ = context(tmp_path, proposer, budget=Budget(max_calls=16 + 5))
    result = search_to_budget(ctx, Reflexion(), cfg(minibatch=4, max_trials=5))
    assert result.stopped_by_budget
    assert result.best.prompt.instruction == "Write the antonym of the word."
    assert usage.calls <= 21
    assert "budget_exhausted" in kinds(tmp_path)


def test_budget_too_small_for_the_baseline_raises(tmp_path: Path) -> None:
    ctx, _, _ = context(tmp_path, Proposer([GOOD]), budget=Budget(max_calls=3))
    with pytest.raises(BudgetExhausted):
        Reflexion().search(ctx, cfg())


def test_same_seed_same_run(tmp_path: Path) -> None:
    """Requests are seeded per trial: a rerun asks the same questions (what resume relies on)."""

    def sampled(request: GenerationRequest, sample: int) -> str:
        text = last_user_text(request)
        if text.startswith("An assistant followed"):
            return f"Lesson {request.seed}."
        return GOOD if request.seed % 3 == 0 else f"Variant {request.seed}."

    runs = []
    for name in ("a", "b"):
        usage = Usage()
        task = make_task()
        proposer = ScriptedLLM(sampled)
        ctx = SearchContext(
            task=task,
            evaluator=Evaluator(MeteredLLM(ScriptedLLM(target_reply), usage), task),
            proposer=MeteredLLM(proposer, usage),
            seed=4,
            store=RunStore(tmp_path / name, {"task": "opposites"}),
        )
        result = Reflexion().search(ctx, cfg(minibatch=3, max_trials=4, patience=4))
        events = [
            {k: v for k, v in e.items() if k != "t"}
            for e in read_events(tmp_path / name)
            if e["event"] != "started"
        ]
        runs.append((result.best.prompt.instruction, usage.calls, events))
    assert runs[0] == runs[1]


def test_several_revisions_per_trial_are_scored_in_one_batch(tmp_path: Path) -> None:
    def reply(request: GenerationRequest, sample: int) -> str:
        if last_user_text(request).startswith("An assistant followed"):
            return "Ask for the opposite."
        return ["The assistant should answer.", "Write the antonym of the word.", GOOD][sample]

    usage = Usage()
    task = make_task()
    target = ScriptedLLM(target_reply)
    ctx = SearchContext(
        task=task,
        evaluator=Evaluator(MeteredLLM(target, usage), task),
        proposer=MeteredLLM(ScriptedLLM(reply), usage),
        seed=0,
        store=RunStore(tmp_path / "run", {"task": "opposites"}),
    )
    result = Reflexion().search(ctx, ReflexionConfig(minibatch=3, revisions=3, max_trials=1))
    assert result.best.prompt.instruction == GOOD
    revision = next(e for e in read_events(tmp_path / "run") if e["event"] == "revision")
    assert revision["accepted"] == ["Write the antonym of the word.", GOOD]
    assert revision["rejected"][0]["reason"] == "describes instead of instructing"
    assert target.batches == [5, 3, 10]  # baseline on dev, minibatch, both revisions on dev


def test_an_interrupted_run_resumes_from_its_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stop a search in trial 2, resume it: the journal answers the finished work
    (charged as before) and the result equals an uninterrupted run's."""
    from promptopt.llm.factory import ModelSpec
    from promptopt.run import search as search_module
    from promptopt.run.search import SearchSpec, run_search

    models = {"target": ScriptedLLM(target_reply)}

    def sampled(request: GenerationRequest, sample: int) -> str:
        if last_user_text(request).startswith("An assistant followed"):
            return f"Lesson {request.seed}."
        return "Write the antonym of the word." if request.seed < 20 else GOOD

    models["proposer"] = ScriptedLLM(sampled)
    monkeypatch.setattr(
        search_module,
        "build_llm",
        lambda spec: models[spec.model],  # type: ignore[index]
    )
    monkeypatch.setattr(SearchSpec, "load_task", lambda self: make_task())
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))

    def spec(run: str, **extra: object) -> SearchSpec:
        return SearchSpec(
            task="opposites",
            strategy="reflexion",
            params={"minibatch": "3", "revisions": "1", "patience": "5", "max_trials": "3"},
            target=ModelSpec("hf", "target"),
            proposer=ModelSpec("hf", "proposer"),
            run_dir=tmp_path / run,
            use_cache=False,
            **extra,  # type: ignore[arg-type]
        )

    original = Reflexion._reflect_and_revise

    def interrupted(self, ctx, config, board, memory, current, failures, dev, trial):  # type: ignore[no-untyped-def]
        if trial == 2:
            raise KeyboardInterrupt
        return original(self, ctx, config, board, memory, current, failures, dev, trial)

    monkeypatch.setattr(Reflexion, "_reflect_and_revise", interrupted)
    with pytest.raises(KeyboardInterrupt):
        run_search(spec("resumable"))
    calls_before = models["target"].generate_calls + models["proposer"].generate_calls

    monkeypatch.setattr(Reflexion, "_reflect_and_revise", original)
    resumed = run_search(spec("resumable", resume=True))
    replayed = models["target"].generate_calls + models["proposer"].generate_calls - calls_before
    straight = run_search(spec("straight"))

    assert resumed["prompt"] == straight["prompt"]
    assert resumed["usage"]["search"]["calls"] == straight["usage"]["search"]["calls"]
    # The resumed run asked the models only for what the interrupted one had not done.
    assert replayed < straight["usage"]["search"]["calls"]
    kinds_resumed = kinds(tmp_path, "resumable")
    assert kinds_resumed[0] == "started" and "resumed" in kinds_resumed
    assert kinds_resumed[-1] == "finished"
