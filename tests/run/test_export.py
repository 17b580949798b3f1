from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptopt.core.domain import Example, Prompt
from promptopt.core.errors import ConfigError
from promptopt.run.export import FORMAT, load_export, locate_recorded, recorded_task


def test_prompt_round_trips_through_the_export(tmp_path: Path) -> None:
    prompt = Prompt(
        instruction="Add.",
        template="Q: {input}\nA:",
        demonstrations=(Example(id="1", input="1 1", target="2", demo_output="1+1=2"),),
    )
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"format": FORMAT, "format_version": 1, "prompt": prompt.to_dict()}))
    assert load_export(path).prompt == prompt


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"format": FORMAT, "format_version": 99, "prompt": {}}, "newer promptopt"),
        ({"format": FORMAT, "format_version": 1, "prompt": {"template": "x"}}, "malformed"),
        ([1, 2], "not a promptopt prompt export"),
        (
            {
                "format": FORMAT,
                "format_version": 1,
                "prompt": {"instruction": "x", "template": "{input}", "calibration": ["high"]},
            },
            "malformed prompt .*could not convert",
        ),
    ],
)
def test_bad_exports(tmp_path: Path, content: object, message: str) -> None:
    path = tmp_path / "p.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=message):
        load_export(path)


def test_exports_record_task_and_data_paths_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert recorded_task("antonyms", None) == ("antonyms", None)
    assert recorded_task("tasks/mine.yaml", None) == (str(tmp_path / "tasks/mine.yaml"), None)
    data_file = {"path": "d.jsonl", "input_field": "q", "target_field": "a", "metric": "exact"}
    ref, recorded = recorded_task("d.jsonl", data_file)
    assert ref == str(tmp_path / "d.jsonl") and recorded == {**data_file, "path": ref}
    assert data_file["path"] == "d.jsonl"  # the search's own spec is left alone


def test_an_old_relative_path_is_found_beside_the_export(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "project" / "tasks").mkdir(parents=True)
    (tmp_path / "project" / "tasks" / "mine.yaml").write_text("name: mine\n")
    export = tmp_path / "project" / "best.json"
    monkeypatch.chdir(tmp_path)
    assert locate_recorded("tasks/mine.yaml", export) == tmp_path / "project/tasks/mine.yaml"
    assert locate_recorded("tasks/gone.yaml", export) == Path("tasks/gone.yaml")
    monkeypatch.chdir(tmp_path / "project")  # as recorded, from where the search ran
    assert locate_recorded("tasks/mine.yaml", export) == Path("tasks/mine.yaml")
