"""`promptopt eval` for CI: cases, gates, exit codes and report formats, on a scripted model.

Exports are written by hand here over a small arithmetic data file, and the
scripted model's accuracy depends on the instruction, so each test controls
exactly which examples a prompt gets right.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.core.domain import GenerationRequest
from promptopt.evaluation.ci_report import schema
from promptopt.run import eval_run
from tests.fakes import ScriptedLLM, last_user_text

runner = CliRunner()
TEST_SIZE = 16


@pytest.fixture(autouse=True)
def _env(data_dir: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def reply(request: GenerationRequest, sample: int) -> str:
    """'Add' prompts are always right; 'Sloppy' ones wrong when the first number is 3 (mod 8);
    'Careless' ones wrong on odd first numbers; 'Wrong' ones always wrong."""
    text = last_user_text(request)
    found = re.findall(r"What is (\d+) plus (\d+)\?", text)
    if not found:
        return "x"
    a, b = map(int, found[-1])
    right = a + b
    if "Wrong" in text or ("Careless" in text and a % 2) or ("Sloppy" in text and a % 8 == 3):
        return str(right + 1)
    return str(right)


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> ScriptedLLM:
    llm = ScriptedLLM(reply)
    monkeypatch.setattr(eval_run, "build_llm", lambda spec: llm)
    return llm


@pytest.fixture
def data(tmp_path: Path) -> Path:
    path = tmp_path / "plus.jsonl"
    rows = [{"input": f"What is {a} plus {a + 2}?", "output": str(2 * a + 2)} for a in range(60)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def export(path: Path, data: Path, instruction: str, test_size: int = TEST_SIZE) -> Path:
    """A prompt export as `promptopt search --data ...` writes it (the fields eval reads)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    body = {
        "format": "promptopt.prompt",
        "format_version": 1,
        "prompt": {"instruction": instruction, "template": "Input: {input}\nOutput:"},
        "task": {
            "name": data.stem,
            "ref": str(data),
            "sizes": {"train": 20, "dev": 4, "test": test_size},
            "data_seed": 0,
            "data_file": {
                "path": str(data),
                "input_field": "input",
                "target_field": "output",
                "metric": "numeric",
            },
        },
        "scores": {"test": {"score": 1.0, "n": test_size}},
        "models": {"target": {"spec": {"backend": "hf", "model": "embedded"}}},
    }
    path.write_text(json.dumps(body))
    return path


def run(*args: str | Path) -> Any:
    return runner.invoke(app, ["eval", *map(str, args)])


def validate(report: dict[str, Any]) -> None:
    jsonschema.validate(report, schema())


def junit_cases(path: Path) -> dict[str, ET.Element]:
    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert suite.get("tests") == str(len(cases))
    assert suite.get("failures") == str(sum(c.find("failure") is not None for c in cases))
    return {f"{c.get('classname')}::{c.get('name')}": c for c in cases}


# --------------------------------------------------------------------------- help


def test_help_documents_exit_codes_keying_and_outputs() -> None:
    result = runner.invoke(app, ["eval", "--help"], terminal_width=200)
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    for needle in ("Exit codes", "0 every gate passed", "10 a gate failed", "2 usage", "3 data"):
        assert needle in text
    for option in ("--baseline", "--alpha", "--label", "--json-out", "--junit-out"):
        assert option in text
    assert "--markdown-out" in text and "GITHUB_STEP_SUMMARY" in text and "task/label" in text


# --------------------------------------------------------------------------- outputs


def test_one_prompt_writes_every_report_format(
    tmp_path: Path, data: Path, model: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "step_summary.md"
    summary.write_text("earlier step\n")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    best = export(tmp_path / "best.json", data, "Add the numbers.")
    out = tmp_path / "out"
    result = run(
        "--prompt",
        best,
        "--min-score",
        "0.5",
        "--json-out",
        out / "r.json",
        "--junit-out",
        out / "r.xml",
        "--markdown-out",
        out / "r.md",
    )
    assert result.exit_code == 0, result.output
    assert "plus/best: score 1.000 on 16 test examples" in result.output
    assert "PASS score 1.000 is at least --min-score 0.5" in result.output
    assert "\x1b[" not in result.output  # no colour when not on a terminal

    report = json.loads((out / "r.json").read_text())
    validate(report)
    assert report["passed"] and report["exit_code"] == 0
    (case,) = report["cases"]
    assert case["key"] == "plus/best" and case["label"] == "best" and case["task"] == "plus"
    assert case["score"] == 1.0 and case["n"] == TEST_SIZE and len(case["examples"]) == TEST_SIZE
    assert {e["score"] for e in case["examples"]} == {1.0}
    assert report["models"] == [{"kind": "fake", "model": "scripted"}]
    assert report["usage"]["calls"] == TEST_SIZE and report["usage"]["cache_hits"] == 0
    # One case: its fields at the top level too, as `eval --json` always printed them.
    assert report["score"] == 1.0 and report["n"] == TEST_SIZE and report["task"] == "plus"

    cases = junit_cases(out / "r.xml")
    assert list(cases) == ["promptopt.plus::best"]
    assert cases["promptopt.plus::best"].find("failure") is None
    assert "min_score: pass" in (cases["promptopt.plus::best"].findtext("system-out") or "")

    markdown = (out / "r.md").read_text()
    assert markdown.startswith("### promptopt eval: passed")
    assert "| `plus/best` | 1.000 | 16 | 0.5 |" in markdown
    assert f"{TEST_SIZE} model calls, 0 cache hits" in markdown
    assert summary.read_text() == "earlier step\n" + markdown + "\n"

    printed = run("--prompt", best, "--json")
    assert printed.exit_code == 0
    on_stdout = json.loads(printed.stdout)
    validate(on_stdout)
    assert on_stdout["cases"][0]["examples"] == case["examples"]


def test_cached_rerun_makes_no_model_calls(tmp_path: Path, data: Path, model: ScriptedLLM) -> None:
    best = export(tmp_path / "best.json", data, "Add the numbers.")
    first = run("--prompt", best, "--json-out", tmp_path / "1.json")
    calls = model.generate_calls
    second = run(
        "--prompt", best, "--json-out", tmp_path / "2.json", "--junit-out", tmp_path / "2.xml"
    )
    assert first.exit_code == 0 and second.exit_code == 0, second.output
    assert model.generate_calls == calls == TEST_SIZE
    again = json.loads((tmp_path / "2.json").read_text())
    assert again["usage"]["calls"] == 0 and again["usage"]["cache_hits"] == TEST_SIZE
    assert "0 model calls, 16 cache hits" in second.output
    junit = ET.parse(tmp_path / "2.xml").getroot().find("testsuite")
    assert junit is not None
    props = {p.get("name"): p.get("value") for p in junit.iter("property")}
    assert props["model_calls"] == "0" and props["cache_hits"] == str(TEST_SIZE)
    nocache = run("--prompt", best, "--no-cache", "--json")
    assert json.loads(nocache.stdout)["usage"]["calls"] == TEST_SIZE


# --------------------------------------------------------------------------- min-score gates


def test_min_score_global_and_per_task_gates(
    tmp_path: Path, data: Path, model: ScriptedLLM
) -> None:
    good = export(tmp_path / "good.json", data, "Add the numbers.")
    careless = export(tmp_path / "careless.json", data, "Careless: add the numbers.")
    both = ["--prompt", good, "--prompt", careless]
    result = run(
        *both,
        "--min-score",
        "0.9",
        "--junit-out",
        tmp_path / "j.xml",
        "--markdown-out",
        tmp_path / "m.md",
        "--json-out",
        tmp_path / "r.json",
    )
    assert result.exit_code == 10, result.output
    assert "gate failed for 1 of 2 case(s): plus/careless: score 0." in result.output
    assert "below --min-score 0.9" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    validate(report)
    assert report["exit_code"] == 10 and report["failed_cases"] == ["plus/careless"]
    assert "score" not in report  # several cases: no single case at the top level
    cases = junit_cases(tmp_path / "j.xml")
    assert cases["promptopt.plus::good"].find("failure") is None
    failure = cases["promptopt.plus::careless"].find("failure")
    assert failure is not None and "below --min-score 0.9" in (failure.get("message") or "")
    markdown = (tmp_path / "m.md").read_text()
    assert "failed (1 of 2 cases)" in markdown and "**FAIL**" in markdown

    # A per-task threshold wins over the global one.
    assert run(*both, "--min-score", "0.9", "--min-score", "plus=0.3").exit_code == 0
    assert run(*both, "--min-score", "plus=0.99").exit_code == 10


def test_several_tasks_key_cases_by_task_and_label(
    tmp_path: Path, data: Path, model: ScriptedLLM
) -> None:
    """--task repeated: every prompt on every task; the scripted model fails both tasks."""
    one = export(tmp_path / "a" / "p.json", data, "Add.")
    two = export(tmp_path / "b" / "p.json", data, "Add.")
    tasks = ["--task", "antonyms", "--task", "rhymes", "--test-size", "4"]
    clash = run("--prompt", one, "--prompt", two, *tasks)
    assert clash.exit_code == 2 and "share the key 'antonyms/p'" in clash.output
    labelled = ["--prompt", one, "--label", "first", "--prompt", two, "--label", "second"]
    result = run(
        *labelled,
        *tasks,
        "--min-score",
        "antonyms=0",
        "--min-score",
        "rhymes=0.5",
        "--json-out",
        tmp_path / "r.json",
    )
    assert result.exit_code == 10, result.output
    report = json.loads((tmp_path / "r.json").read_text())
    validate(report)
    keys = [c["key"] for c in report["cases"]]
    assert keys == ["antonyms/first", "rhymes/first", "antonyms/second", "rhymes/second"]
    assert report["failed_cases"] == ["rhymes/first", "rhymes/second"]
    assert [c["n"] for c in report["cases"]] == [4, 4, 4, 4]
    typo = run(*labelled, *tasks, "--min-score", "antonym=0.5")
    assert typo.exit_code == 2 and "names a task this run does not evaluate" in typo.output


# --------------------------------------------------------------------------- the baseline gate


def baseline_of(tmp_path: Path, data: Path, instruction: str, name: str = "base.json") -> Path:
    best = export(tmp_path / "best.json", data, instruction)
    out = tmp_path / name
    assert run("--prompt", best, "--json-out", out).exit_code == 0
    return out


@pytest.mark.parametrize(
    ("instruction", "code", "message"),
    [
        ("Add the numbers again.", 0, "PASS no significant regression: 1.000 vs baseline 1.000"),
        # 2 of 16 worse: one-sided McNemar p = 0.25, noise.
        ("Sloppy: add.", 0, "PASS no significant regression: 0.875 vs baseline 1.000 (-0.125"),
        # 9 of 16 worse: p = 1/512.
        ("Careless: add.", 10, "regression (p < alpha 0.05): 0.438 vs baseline 1.000 (-0.562"),
    ],
)
def test_baseline_gate_fails_only_on_significant_regression(
    tmp_path: Path, data: Path, model: ScriptedLLM, instruction: str, code: int, message: str
) -> None:
    base = baseline_of(tmp_path, data, "Add the numbers.")
    best = export(tmp_path / "best.json", data, instruction)  # the prompt file edited in place
    out = tmp_path / "new.json"
    result = run(
        "--prompt", best, "--baseline", base, "--json-out", out, "--markdown-out", tmp_path / "m.md"
    )
    assert result.exit_code == code, result.output
    assert message in " ".join(result.output.split())
    report = json.loads(out.read_text())
    validate(report)
    gate = report["cases"][0]["gates"][1]
    assert gate["name"] == "regression" and gate["comparison"]["method"] == "mcnemar-exact"
    assert gate["comparison"]["alternative"] == "less" and gate["comparison"]["n"] == TEST_SIZE
    assert report["baseline"]["matched"] == ["plus/best"]
    assert "| 1.000 |" in (tmp_path / "m.md").read_text()


def test_baseline_alpha_and_improvements(tmp_path: Path, data: Path, model: ScriptedLLM) -> None:
    base = baseline_of(tmp_path, data, "Careless: add.")
    better = export(tmp_path / "best.json", data, "Add.")
    assert run("--prompt", better, "--baseline", base).exit_code == 0  # better never fails
    base = baseline_of(tmp_path, data, "Add.", "base2.json")
    sloppy = export(tmp_path / "best.json", data, "Sloppy: add.")
    assert run("--prompt", sloppy, "--baseline", base).exit_code == 0
    assert run("--prompt", sloppy, "--baseline", base, "--alpha", "0.3").exit_code == 10


def test_cases_missing_from_the_baseline_are_not_gated(
    tmp_path: Path, data: Path, model: ScriptedLLM
) -> None:
    base = baseline_of(tmp_path, data, "Add.")
    other = export(tmp_path / "other.json", data, "Wrong.")
    result = run("--prompt", other, "--baseline", base, "--json")
    assert result.exit_code == 0, result.output
    assert "no case of this run is in baseline" in result.stderr and "--label" in result.stderr
    report = json.loads(result.stdout)
    assert report["cases"][0]["gates"][1]["status"] == "skipped"
    assert report["baseline"]["only_in_baseline"] == ["plus/best"]
    # --label maps the new file onto the baseline's case, which it regresses from.
    assert run("--prompt", other, "--label", "best", "--baseline", base).exit_code == 10


def test_baseline_on_other_test_examples_is_refused(
    tmp_path: Path, data: Path, model: ScriptedLLM
) -> None:
    base = baseline_of(tmp_path, data, "Add.")
    best = tmp_path / "best.json"
    calls = model.generate_calls
    result = run("--prompt", best, "--baseline", base, "--test-size", "8")
    assert result.exit_code == 2
    line = " ".join(result.output.split())
    assert "baseline" in line and "16 test examples and this run on 8" in line
    assert "rerun with --test-size 16" in line and "Traceback" not in line
    assert model.generate_calls == calls  # refused before any model call
    # Same size, other examples (the data changed): refused too.
    shifted = tmp_path / "plus2.jsonl"
    shifted.write_text(data.read_text().replace('"What is 1 ', '"What is 100 '))
    moved = export(tmp_path / "x" / "best.json", shifted, "Add.")
    report = json.loads(base.read_text())
    report["cases"][0]["key"] = "plus2/best"
    base.write_text(json.dumps(report))
    other = run("--prompt", moved, "--baseline", base)
    assert other.exit_code == 2 and "ids differing" in other.output


# --------------------------------------------------------------------------- exit codes 2, 3, 4


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--min-score", "high"], "--min-score expects a number or task=number"),
        (["--min-score", "=0.3"], "names no task"),
        (["--min-score", "0.3", "--min-score", "0.4"], "given twice"),
        (["--alpha", "1.5"], "--alpha must be between 0 and 1"),
        (["--label", "a", "--label", "b"], "give one --label per --prompt"),
        (["--label", "a/b"], "bad --label"),
        (["--baseline", "/nonexistent/base.json"], "baseline file not found"),
        (["--json-out", "."], "is a directory"),
        (["--model", "gpt"], "cannot read model 'gpt'"),
    ],
)
def test_usage_errors_exit_2(
    tmp_path: Path, data: Path, model: ScriptedLLM, extra: list[str], message: str
) -> None:
    best = export(tmp_path / "best.json", data, "Add.")
    result = run("--prompt", best, *extra)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split()) and "Traceback" not in result.output
    assert model.generate_calls == 0


def test_unreadable_baselines_exit_2(tmp_path: Path, data: Path, model: ScriptedLLM) -> None:
    best = export(tmp_path / "best.json", data, "Add.")
    garbled = tmp_path / "garbled.json"
    garbled.write_text("{oops")
    assert "is not valid JSON" in run("--prompt", best, "--baseline", garbled).output
    # An export is not a report.
    wrong = run("--prompt", best, "--baseline", best)
    assert wrong.exit_code == 2 and "not a promptopt eval report" in wrong.output
    assert "--json-out" in wrong.output
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({"format": "promptopt.eval_report", "cases": [{"key": "x"}]}))
    bad = run("--prompt", best, "--baseline", bare)
    assert bad.exit_code == 2 and "without per-example ids and scores" in bad.output


def test_missing_data_exits_3(tmp_path: Path, data: Path, model: ScriptedLLM) -> None:
    best = export(tmp_path / "best.json", tmp_path / "gone.jsonl", "Add.")
    result = run("--prompt", best)
    assert result.exit_code == 3, result.output
    assert "gone.jsonl" in result.output and "Traceback" not in result.output


def test_unreachable_model_exits_4(tmp_path: Path, data: Path) -> None:
    best = export(tmp_path / "best.json", data, "Add.")
    result = run(
        "--prompt",
        best,
        "--model",
        "openai:smol",
        "--base-url",
        "http://127.0.0.1:9/v1",
        "--json-out",
        tmp_path / "r.json",
    )
    assert result.exit_code == 4, result.output
    assert "127.0.0.1:9" in result.output and not (tmp_path / "r.json").exists()


def test_quiet_prints_only_results(tmp_path: Path, data: Path, model: ScriptedLLM) -> None:
    best = export(tmp_path / "best.json", data, "Add.")
    loud = run("--prompt", best)
    quiet = run("--prompt", best, "--quiet")
    assert "Loading model" in loud.stderr and "Loading model" not in quiet.stderr
    assert quiet.stdout.startswith("plus/best: score 1.000")


def test_code_task_case_in_the_reports(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`--task humaneval` is one case, keyed humaneval/model, with problems as examples."""
    from promptopt.llm import factory

    def coder(request: GenerationRequest, sample: int) -> str:
        return "```python\ndef has_close_elements(numbers, threshold):\n    return True\n```"

    monkeypatch.setattr(factory, "build_llm", lambda spec: ScriptedLLM(coder))
    args = ["--task", "humaneval", "--test-size", "1", "--allow-code-execution", "--no-cache"]
    result = run(
        *args,
        "--min-score",
        "humaneval=0.5",
        "--json-out",
        tmp_path / "r.json",
        "--junit-out",
        tmp_path / "r.xml",
    )
    assert result.exit_code == 10, result.output
    assert "humaneval/model: pass@1 0.000 on 1 problems" in result.output
    report = json.loads((tmp_path / "r.json").read_text())
    validate(report)
    (case,) = report["cases"]
    assert case["kind"] == "code" and case["examples"] == [{"id": "HumanEval/0", "score": 0.0}]
    assert "promptopt.humaneval::model" in junit_cases(tmp_path / "r.xml")
    labelled = run(*args, "--label", "smol", "--json")
    assert labelled.exit_code == 0 and json.loads(labelled.stdout)["key"] == "humaneval/smol"
