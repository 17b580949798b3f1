"""`promptopt eval` as a CI step on the real embedded model: reports, gates, cached reruns."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from promptopt.cli import app
from promptopt.evaluation.ci_report import schema

pytestmark = pytest.mark.integration
runner = CliRunner()
TEST_SIZE = 6


@pytest.fixture(autouse=True)
def _env(data_dir: Path, isolated_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)


def antonyms_export(path: Path) -> Path:
    """A hand-written export of a valid antonyms prompt (what eval reads of a search's)."""
    path.write_text(
        json.dumps(
            {
                "format": "promptopt.prompt",
                "format_version": 1,
                "prompt": {
                    "instruction": "Write the word that means the opposite of the input word.",
                    "template": "Input: {input}\nOutput:",
                    "demonstrations": [],
                },
                "task": {
                    "name": "antonyms",
                    "ref": "antonyms",
                    "sizes": {"test": TEST_SIZE},
                    "data_seed": 0,
                },
                "scores": {"test": {"score": None, "n": TEST_SIZE}},
            }
        )
    )
    return path


def test_eval_twice_with_one_cache_makes_no_calls_the_second_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    summary = tmp_path / "summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    prompt = antonyms_export(tmp_path / "opposite.json")

    def evaluate(name: str, *extra: str) -> tuple[int, dict, Path, Path]:
        out = tmp_path / name
        result = runner.invoke(
            app,
            [
                "eval",
                "--prompt",
                str(prompt),
                "--min-score",
                "antonyms=0",
                "--json-out",
                str(out / "report.json"),
                "--junit-out",
                str(out / "junit.xml"),
                "--markdown-out",
                str(out / "summary.md"),
                *extra,
            ],
        )
        assert result.exit_code in (0, 10), result.output
        report = json.loads((out / "report.json").read_text())
        jsonschema.validate(report, schema())
        return result.exit_code, report, out / "junit.xml", out / "summary.md"

    code, first, _, _ = evaluate("first")
    assert code == 0
    (case,) = first["cases"]
    assert case["key"] == "antonyms/opposite" and case["n"] == TEST_SIZE
    assert len(case["examples"]) == TEST_SIZE and 0.0 <= case["score"] <= 1.0
    assert case["model"]["model"] == "SmolLM2-135M-Instruct"
    assert first["usage"]["calls"] == TEST_SIZE and first["usage"]["cache_hits"] == 0

    # The second run, the first's report as its baseline: all from the cache, same scores.
    code, second, junit, markdown = evaluate(
        "second", "--baseline", str(tmp_path / "first" / "report.json")
    )
    assert code == 0
    assert second["usage"]["calls"] == 0 and second["usage"]["cache_hits"] == TEST_SIZE
    assert second["cases"][0]["examples"] == case["examples"]
    regression = second["cases"][0]["gates"][1]
    assert regression["status"] == "pass" and regression["comparison"]["difference"] == 0.0

    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite is not None and suite.get("tests") == "1" and suite.get("failures") == "0"
    (testcase,) = suite.findall("testcase")
    assert testcase.get("classname") == "promptopt.antonyms" and testcase.get("name") == "opposite"
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["model_calls"] == "0" and props["cache_hits"] == str(TEST_SIZE)

    table = markdown.read_text()
    assert "| `antonyms/opposite` |" in table and "0 model calls, 6 cache hits" in table
    assert summary.read_text().count("### promptopt eval: passed") == 2

    # The gate on the real model: an unreachable threshold fails with exit 10, from the cache.
    failed = runner.invoke(app, ["eval", "--prompt", str(prompt), "--min-score", "1.01"])
    assert failed.exit_code == 10 and "below --min-score 1.01" in failed.output
    assert "0 model calls, 6 cache hits" in failed.output
