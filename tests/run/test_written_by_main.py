"""Files the code before typed results wrote (main at e9e2fe1, a one-seed APE compare
on antonyms with the scripted fake model) load, and write back unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from promptopt.core.errors import ConfigError
from promptopt.report.loading import CompareData, load
from promptopt.run.compare import load_compare
from promptopt.run.compare_results import CompareResult, RunRow
from promptopt.run.eval_run import prepare_eval
from promptopt.run.export import load_export

WRITTEN = Path(__file__).parent / "written_by_main"
RESULT = WRITTEN / "runs" / "ape-seed0" / "result.json"


def _json(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_an_export_main_wrote_loads_and_writes_back_the_same() -> None:
    export = load_export(RESULT)
    assert export.kind == "prompt" and export.task.name == "antonyms"
    assert export.scores.test is not None and export.scores.test.n == 6
    assert export.improved is False and export.start is not None
    assert export.to_dict() == _json(RESULT)
    assert export.prompts() == [export.prompt]


@pytest.mark.usefixtures("data_dir")
def test_eval_prepares_an_export_main_wrote() -> None:
    prepared = prepare_eval(RESULT)
    assert prepared.task.name == "antonyms" and len(prepared.test) == 6


def test_a_compare_main_wrote_loads_and_writes_back_the_same() -> None:
    data = _json(WRITTEN / "compare.json")
    typed = CompareResult.from_dict(data)
    assert [(r.strategy, r.seed) for r in typed.runs] == [("ape", 0)]
    assert typed.to_dict() == data
    assert load_compare(WRITTEN) == data
    report = load(WRITTEN)
    assert isinstance(report, CompareData) and report.runs[0][1] is not None


def test_a_run_row_of_an_export_is_the_row_main_wrote() -> None:
    row = RunRow.from_export(_json(RESULT), "ape", 0, "runs/ape-seed0")
    written = _json(WRITTEN / "compare.json")["runs"][0]
    assert {k: v for k, v in row.to_dict().items() if k != "wall_s"} == {
        k: v for k, v in written.items() if k != "wall_s"
    }


@pytest.mark.parametrize("name", ["export", "compare", "report"])
def test_a_newer_format_is_one_line_naming_the_file_and_the_fix(tmp_path: Path, name: str) -> None:
    copy = tmp_path / "cmp"
    shutil.copytree(WRITTEN, copy)
    file = copy / ("runs/ape-seed0/result.json" if name == "export" else "compare.json")
    data = _json(file)
    data["format_version"] = 99
    file.write_text(json.dumps(data), encoding="utf-8")
    read = {"export": load_export, "compare": lambda f: load_compare(f.parent), "report": load}
    with pytest.raises(ConfigError) as caught:
        read[name](file)
    message = str(caught.value)
    assert "\n" not in message and str(file) in message
    assert "newer promptopt (format 99" in message and "pip install -U promptopt" in message
