"""The joint instruction x demonstration optimizer and the never-worse guard, on
scripted models (logic only; the embedded model runs in test_mipro_integration)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from promptopt.core.domain import Budget, Example, GenerationRequest, LogprobRequest
from promptopt.data.task import Task
from promptopt.llm.factory import ModelSpec
from promptopt.run import search as search_module
from promptopt.run.search import SearchSpec, run_search
from promptopt.strategies.mipro import Trials
from tests.fakes import ScriptedLLM, last_user_text

WORDS = [
    "apple", "banana", "cherry", "dog", "eagle", "fish", "grape", "house", "igloo", "jam",
    "kite", "lemon", "mango", "nest", "orange", "pear", "queen", "rose", "sun", "tree",
    "umbrella", "violin", "whale", "xylophone", "yak", "zebra", "anchor", "boat", "cloud", "door",
]  # fmt: skip
START = "Write the first letter of the word."


def make_task() -> Task:
    examples = [Example(id=f"w{i}", input=w, target=w[0]) for i, w in enumerate(WORDS)]
    return Task.from_examples(
        "letters",
        train=examples[:14],
        dev=examples[14:22],
        test=examples[22:],
        scorer="exact",
        instruction=START,
    )


def proposer_reply(request: GenerationRequest, sample: int) -> str:
    replies = ["I'd be happy to help you with that!", "The answer is b.", "Spell the word."]
    return replies[(request.seed + sample) % len(replies)]


def demos_help(request: GenerationRequest, sample: int) -> str:
    """Right only when demonstrations arrive as chat turns; else echoes the word."""
    word = last_user_text(request).split("Input: ")[-1].split("\n")[0]
    if any(m.role == "assistant" for m in request.messages):
        return word[0]
    return word


def start_is_best(request: GenerationRequest, sample: int) -> str:
    """Right only under the starting instruction with no demonstrations."""
    word = last_user_text(request).split("Input: ")[-1].split("\n")[0]
    plain = len(request.messages) == 1 and last_user_text(request).startswith(START + "\n")
    return word[0] if plain else "zzz"


def plug(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, target: Callable[..., str]
) -> dict[str, ScriptedLLM]:
    models = {"target": ScriptedLLM(target), "proposer": ScriptedLLM(proposer_reply)}
    monkeypatch.setattr(search_module, "build_llm", lambda spec: models[spec.model])
    monkeypatch.setattr(SearchSpec, "load_task", lambda self: make_task())
    monkeypatch.setenv("PROMPTOPT_CACHE_DIR", str(tmp_path / "cache"))
    return models


def spec(tmp_path: Path, run: str, budget: int | None = 120, **params: str) -> SearchSpec:
    return SearchSpec(
        task="letters",
        strategy="mipro",
        params={"minibatch": "4", "num_demo_sets": "4", "num_instructions": "3", **params},
        target=ModelSpec("hf", "target"),
        proposer=ModelSpec("hf", "proposer"),
        budget=Budget(max_calls=budget),
        run_dir=tmp_path / run,
        use_cache=False,
    )


def events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def test_finds_demonstrations_that_beat_the_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plug(monkeypatch, tmp_path, demos_help)
    export = run_search(spec(tmp_path, "run"))
    assert export["improved"] is True
    assert export["prompt"]["demonstrations"] and export["prompt"]["demo_format"] == "chat"
    assert export["scores"]["test"]["score"] == 1.0
    assert export["scores"]["baseline_test"]["score"] == 0.0
    assert export["usage"]["search"]["calls"] <= 120
    kinds = [e["event"] for e in events(tmp_path / "run")]
    assert "bo" in {e.get("how") for e in events(tmp_path / "run") if e["event"] == "trial"}
    assert "confirmed" in kinds and "proposal_filter" in kinds
    filtered = next(e for e in events(tmp_path / "run") if e["event"] == "proposal_filter")
    assert filtered["kept"] < filtered["sampled"]  # chit-chat and the answer never scored
    demo_ids = {d["id"] for d in export["prompt"]["demonstrations"]}
    train_ids = {e.id for e in make_task().examples("train")}
    assert demo_ids <= train_ids


def test_when_every_candidate_is_worse_the_start_is_exported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plug(monkeypatch, tmp_path, start_is_best)
    export = run_search(spec(tmp_path, "run"))
    assert export["improved"] is False
    assert export["prompt"]["instruction"] == START and not export["prompt"]["demonstrations"]
    assert export["scores"]["test"]["score"] == 1.0
    assert (
        "within noise" in export["start"]["reason"] or "no candidate" in export["start"]["reason"]
    )


def test_random_choice_is_the_baseline_it_must_beat(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plug(monkeypatch, tmp_path, demos_help)
    export = run_search(spec(tmp_path, "run", optimizer="random"))
    hows = {e.get("how") for e in events(tmp_path / "run") if e["event"] == "trial"}
    assert "bo" not in hows and "random" in hows
    assert export["usage"]["search"]["calls"] <= 120


def test_an_interrupted_search_resumes_to_the_same_result(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = plug(monkeypatch, tmp_path, demos_help)
    straight = run_search(spec(tmp_path, "straight"))
    straight_calls = models["target"].generate_calls + models["proposer"].generate_calls

    original = Trials.confirm
    seen = {"n": 0}

    def interrupted(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        seen["n"] += 1
        if seen["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(Trials, "confirm", interrupted)
    models = plug(monkeypatch, tmp_path, demos_help)
    with pytest.raises(KeyboardInterrupt):
        run_search(spec(tmp_path, "resumable"))
    before = models["target"].generate_calls + models["proposer"].generate_calls
    monkeypatch.setattr(Trials, "confirm", original)
    resumed_spec = SearchSpec.from_run_config(
        json.loads((tmp_path / "resumable" / "config.json").read_text()), tmp_path / "resumable"
    )
    resumed = run_search(resumed_spec)
    after = models["target"].generate_calls + models["proposer"].generate_calls
    assert resumed["prompt"] == straight["prompt"]
    assert resumed["usage"]["search"]["calls"] == straight["usage"]["search"]["calls"]
    # The resumed process only paid for what the interrupted one had not done.
    assert after - before < straight_calls


def biased_labels(request: LogprobRequest, word: str) -> float:
    """Prefers 'vowel' by 2 nats whatever the word, plus 1 nat for the right label:
    raw argmax says 'vowel' to everything, calibration recovers every answer."""
    word_in = last_user_text(request).split("Input: ")[-1].split("\n")[0]
    right = "vowel" if word_in[0] in "aeiou" else "consonant"
    return (2.0 if word == "vowel" else 0.0) + (1.0 if word == right else 0.0)


def test_calibration_is_a_choice_on_label_log_probability_tasks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def kind(w: str) -> str:
        return "vowel" if w[0] in "aeiou" else "consonant"

    examples = [Example(id=f"w{i}", input=w, target=kind(w)) for i, w in enumerate(WORDS)]
    task = Task.from_examples(
        "vowels",
        train=examples[:14],
        dev=examples[14:22],
        test=examples[22:],
        scorer="label",
        instruction=START,
        label_words=("vowel", "consonant"),
        scoring_mode="logprob",
    )
    target = ScriptedLLM(lambda r, s: "", logprob=biased_labels)
    models = {"target": target, "proposer": ScriptedLLM(proposer_reply)}
    monkeypatch.setattr(search_module, "build_llm", lambda spec: models[spec.model])
    monkeypatch.setattr(SearchSpec, "load_task", lambda self: task)
    export = run_search(spec(tmp_path, "run", calibration_inputs="4"))
    assert export["improved"] is True
    assert len(export["prompt"]["calibration"]) == 2
    assert export["scores"]["test"]["score"] == 1.0
    trials = [e for e in events(tmp_path / "run") if e["event"] == "trial"]
    assert {e["calibrated"] for e in trials} == {True, False}
    assert export["usage"]["search"]["calls"] <= 120


def test_bad_knobs_are_one_line_errors() -> None:
    from promptopt.core.errors import ConfigError
    from promptopt.strategies.base import build_config
    from promptopt.strategies.mipro import MiproConfig

    with pytest.raises(ConfigError, match="optimizer must be"):
        build_config(MiproConfig, {"optimizer": "tpe"})
    with pytest.raises(ConfigError, match="minibatch must be at least 1"):
        build_config(MiproConfig, {"minibatch": "0"})
