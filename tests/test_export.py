from __future__ import annotations

import json
from pathlib import Path

import pytest

from promptopt.errors import ConfigError
from promptopt.export import FORMAT, read_export
from promptopt.types import Example, Prompt


def test_prompt_round_trips_through_the_export(tmp_path: Path) -> None:
    prompt = Prompt(
        instruction="Add.",
        template="Q: {input}\nA:",
        demonstrations=(Example(id="1", input="1 1", target="2", demo_output="1+1=2"),),
    )
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"format": FORMAT, "format_version": 1, "prompt": prompt.to_dict()}))
    assert Prompt.from_dict(read_export(path)["prompt"]) == prompt


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
        read_export(path)
