"""The never-worse rule and `--start` resolution."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptopt.core.domain import EvalResult, Example, ExampleResult, Prompt
from promptopt.core.errors import ConfigError
from promptopt.data.task import Task
from promptopt.run.start_guard import paired_dev, resolve_start


def result(scores: list[float]) -> EvalResult:
    rows = [ExampleResult(f"d{i}", "", "", s) for i, s in enumerate(scores)]
    return EvalResult(sum(scores) / len(scores), len(scores), rows)


@pytest.mark.parametrize(
    ("start", "candidate", "beats"),
    [
        ([0] * 20, [1, 1] + [0] * 18, True),  # 2 more right, none worse
        ([0] * 20, [1] + [0] * 19, False),  # one example is noise
        ([0] + [0] * 19, [1, 1, 1] + [0] * 17, True),
        ([1] + [0] * 19, [0, 1, 1, 1] + [0] * 16, False),  # 3 gained, 1 lost: within noise
        ([1] * 10, [1] * 10, False),  # a tie keeps the start
        ([1] * 10, [0] * 10, False),
    ],
)
def test_rule(start: list[float], candidate: list[float], beats: bool) -> None:
    assert paired_dev(result(start), result(candidate)).beats_start is beats


def test_only_common_examples_are_compared() -> None:
    start = result([0.0, 0.0, 0.0, 0.0])
    partial = EvalResult(
        1.0, 2, [ExampleResult("d0", "", "", 1.0), ExampleResult("x", "", "", 1.0)]
    )
    paired = paired_dev(start, partial)
    assert paired.n == 1 and paired.diff == 1.0


def task() -> Task:
    ex = [Example(id=f"e{i}", input=str(i), target=str(i)) for i in range(3)]
    return Task.from_examples("t", ex, ex, ex, template="Q: {input}\nA:", instruction="Echo.")


def test_start_from_text_file_and_export(tmp_path: Path) -> None:
    t = task()
    prompt, source = resolve_start("Repeat the number.", t)
    assert prompt == t.prompt("Repeat the number.") and source == "text"
    (tmp_path / "p.txt").write_text("Say it back.\n", encoding="utf-8")
    prompt, source = resolve_start(str(tmp_path / "p.txt"), t)
    assert prompt.instruction == "Say it back." and source.startswith("file")
    demo = Example(id="e0", input="0", target="0")
    exported = Prompt("Echo it.", t.template, (demo,), "chat")
    export = {"format": "promptopt.prompt", "format_version": 1, "prompt": exported.to_dict()}
    (tmp_path / "best.json").write_text(json.dumps(export), encoding="utf-8")
    prompt, source = resolve_start(str(tmp_path / "best.json"), t)
    assert prompt == exported and source.startswith("export")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("missing.json", "--start file not found"),
        ("   ", "--start is empty"),
    ],
)
def test_bad_starts_are_one_line_errors(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_start(value, task())


def test_start_for_another_template_is_refused(tmp_path: Path) -> None:
    other = Prompt("Echo.", "In: {input}\nOut:")
    export = {"format": "promptopt.prompt", "format_version": 1, "prompt": other.to_dict()}
    (tmp_path / "o.json").write_text(json.dumps(export), encoding="utf-8")
    with pytest.raises(ConfigError, match="another input template"):
        resolve_start(str(tmp_path / "o.json"), task())


def test_old_exports_keep_their_text_rendering() -> None:
    data = {"instruction": "Echo.", "template": "Q: {input}\nA:", "demonstrations": []}
    assert Prompt.from_dict(data).demo_format == "text"
