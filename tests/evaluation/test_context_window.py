"""Examples longer than a local model's context window are refused before any call."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from promptopt.core.domain import Example
from promptopt.core.errors import ConfigError
from promptopt.data.task import Task
from promptopt.evaluation.context_window import (
    ContextWindow,
    oversized_examples,
    refuse_oversized,
    window_of,
    window_on_disk,
)
from promptopt.llm.factory import ModelSpec
from promptopt.run import search
from promptopt.run.search import SearchSpec, run_search
from tests.fakes import ScriptedLLM


class WordTokenizer:
    """One token per word and no chat template; counts the texts it tokenizes."""

    chat_template = None

    def __init__(self) -> None:
        self.counted: list[int] = []

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[str]]:
        self.counted.append(len(text))
        return {"input_ids": text.split()}


def window(tokens: int = 60) -> ContextWindow:
    return ContextWindow(model="tiny", tokens=tokens, tokenizer=WordTokenizer())


def make_task(inputs: list[str], **settings: Any) -> Task:
    examples = [Example(id=f"e{i}", input=text, target="x") for i, text in enumerate(inputs)]
    return Task.from_examples(
        "words", train=examples, dev=examples[:1], test=examples[:1], **settings
    )


def test_long_examples_are_found_and_short_ones_are_not_even_tokenized() -> None:
    task = make_task(["short one", "w " * 200, "also short"])
    win = window(200)
    found = oversized_examples(win, task, [task.baseline_prompt()], ["train"])
    assert [(o.split, o.example_id, o.exact) for o in found] == [("train", "e1", True)]
    assert found[0].tokens > 200 - task.generation.max_tokens
    # A token is at least a byte: the short ones fit without counting; only e1 was counted.
    assert len(win.tokenizer.counted) == 1


def test_a_huge_example_is_counted_on_its_head_only() -> None:
    task = make_task(["w " * 200_000])
    win = window()
    (found,) = oversized_examples(win, task, [task.baseline_prompt()], ["train"])
    assert not found.exact and found.describe().startswith("over ")
    assert max(win.tokenizer.counted) < 100_000  # never the whole 400 000 characters


def test_the_answer_needs_room_too() -> None:
    """A prompt that fits the window but leaves no room for max_tokens is refused."""
    words = " ".join(["w"] * 40)
    task = make_task([words])
    prompt = task.baseline_prompt()
    assert oversized_examples(window(200), task, [prompt], ["train"]) == []
    assert oversized_examples(window(60), task, [prompt], ["train"])  # 40 + 32 > 60


def test_the_refusal_is_one_line_naming_the_example_and_the_fix() -> None:
    task = make_task(["w " * 100, "ok", "v " * 90])
    with pytest.raises(ConfigError) as error:
        refuse_oversized(window(), task, [task.baseline_prompt()], ["train"])
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith("example 'e0' (train split) of task 'words' makes a prompt of ")
    assert "tiny's context window of 60 tokens leaves after 32 for the answer" in message
    assert "; 1 more examples do not fit either" in message
    assert message.endswith("or use a model with a longer context window")


def test_window_of_a_loaded_model_under_its_layers() -> None:
    backend = SimpleNamespace(
        tokenizer=WordTokenizer(),
        model=SimpleNamespace(config=SimpleNamespace(max_position_embeddings=2048)),
        model_id="local",
    )
    found = window_of(SimpleNamespace(inner=SimpleNamespace(inner=backend)))
    assert found is not None and (found.model, found.tokens) == ("local", 2048)
    assert window_of(ScriptedLLM(lambda r, s: "x")) is None  # no tokenizer: an API-like model


def test_window_on_disk_of_the_embedded_model_and_none_for_api_models(
    isolated_cache: Path,
) -> None:
    embedded = window_on_disk(ModelSpec("hf", "embedded"))
    assert embedded is not None and embedded.tokens == 8192
    assert embedded.model == "SmolLM2-135M-Instruct"
    assert window_on_disk(ModelSpec("openai", "gpt-4o-mini")) is None
    assert window_on_disk(ModelSpec("hf", "no-such-org/no-such-model")) is None


class LocalFake(ScriptedLLM):
    """A scripted model with a tokenizer and a 64-position config, like a loaded hf model."""

    def __init__(self) -> None:
        super().__init__(lambda request, sample: "x", model_id="local-fake")
        self.tokenizer = WordTokenizer()
        self.model = SimpleNamespace(config=SimpleNamespace(max_position_embeddings=64))


def test_a_model_not_on_disk_is_checked_once_loaded_before_any_call(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake = LocalFake()
    monkeypatch.setattr(search, "window_on_disk", lambda spec: None)
    monkeypatch.setattr(search, "build_llm", lambda spec: fake)
    data = tmp_path / "qa.jsonl"
    rows = [{"input": f"q{i}", "output": "a"} for i in range(20)]
    rows[5]["input"] = "word " * 500
    data.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = SearchSpec(
        task=str(data),
        data_file={
            "path": str(data),
            "input_field": "input",
            "target_field": "output",
            "metric": "exact",
        },
        run_dir=tmp_path / "run",
        use_cache=False,
    )
    with pytest.raises(ConfigError, match="example 'qa-6' .* local-fake's context window of 64"):
        run_search(spec)
    assert fake.generate_calls == 0
