"""The gate logic on constructed cases and baselines: no model, no data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from promptopt.core.errors import ConfigError
from promptopt.evaluation.ci_report import build_report, schema, to_junit, to_markdown
from promptopt.evaluation.gate import (
    Baseline,
    MinScores,
    apply_gates,
    check_min_score_tasks,
    check_same_examples,
    parse_min_scores,
    read_baseline,
    regression_gate,
)


def case(key: str, scores: list[float], ids: list[str] | None = None) -> dict[str, Any]:
    task, label = key.split("/")
    ids = ids or [f"ex{i}" for i in range(len(scores))]
    return {
        "key": key,
        "task": task,
        "label": label,
        "kind": "prompt",
        "prompt_file": f"{label}.json",
        "score": sum(scores) / len(scores),
        "n": len(scores),
        "exported_score": None,
        "examples": [{"id": i, "score": s} for i, s in zip(ids, scores, strict=True)],
        "model": {"kind": "fake", "model": "scripted"},
        "usage": {"calls": 3, "prompt_tokens": 10, "completion_tokens": 2, "cache_hits": 1},
        "seconds": 0.5,
    }


def baseline(tmp_path: Path, *cases: dict[str, Any]) -> Baseline:
    path = tmp_path / "base.json"
    path.write_text(json.dumps({"format": "promptopt.eval_report", "cases": list(cases)}))
    return read_baseline(path)


def test_parse_min_scores() -> None:
    assert parse_min_scores(None) == MinScores()
    scores = parse_min_scores(["0.4", "antonyms=0.3", "sum = 0.9"])
    assert scores.for_task("antonyms") == 0.3 and scores.for_task("sum") == 0.9
    assert scores.for_task("gsm8k") == 0.4
    assert parse_min_scores(["antonyms=0.3"]).for_task("gsm8k") is None
    for bad in (["x"], ["antonyms=x"], ["=0.1"], ["nan"], ["0.1", "0.2"]):
        with pytest.raises(ConfigError):
            parse_min_scores(bad)
    with pytest.raises(ConfigError, match="antonym=.*fix the task name"):
        check_min_score_tasks(parse_min_scores(["antonym=0.3"]), ["antonyms"])


def test_regression_gate_is_one_sided_and_paired(tmp_path: Path) -> None:
    old = [1.0] * 20
    base = baseline(tmp_path, case("t/p", old))
    # Three worse of twenty: p = 1/8, noise.
    noise = regression_gate(
        case("t/p", [0.0] * 3 + [1.0] * 17)["examples"], base.cases["t/p"], 0.05
    )
    assert noise["status"] == "pass" and noise["comparison"]["p_value"] == pytest.approx(0.125)
    real = regression_gate(case("t/p", [0.0] * 8 + [1.0] * 12)["examples"], base.cases["t/p"], 0.05)
    assert real["status"] == "fail" and real["comparison"]["p_value"] == pytest.approx(1 / 256)
    # Paired by id, not by position: the same scores in another order are no change.
    reordered = case("t/p", [1.0] * 20, ids=[f"ex{i}" for i in reversed(range(20))])
    same = regression_gate(reordered["examples"], base.cases["t/p"], 0.05)
    assert same["status"] == "pass" and same["comparison"]["difference"] == 0.0
    # Better is never a regression, however large.
    low = baseline(tmp_path, case("t/p", [0.0] * 20))
    assert regression_gate(case("t/p", old)["examples"], low.cases["t/p"], 0.05)["status"] == "pass"
    assert regression_gate(case("t/p", old)["examples"], None, 0.05)["status"] == "skipped"


def test_graded_scores_use_the_paired_bootstrap(tmp_path: Path) -> None:
    old = [0.8, 0.9, 0.7, 0.85, 0.95, 0.75, 0.8, 0.9, 0.85, 0.8, 0.9, 0.7]
    base = baseline(tmp_path, case("t/p", old))
    drop = regression_gate(case("t/p", [s - 0.3 for s in old])["examples"], base.cases["t/p"], 0.05)
    assert drop["comparison"]["method"] == "paired-bootstrap" and drop["status"] == "fail"
    wobble = [s + (0.05 if i % 2 else -0.06) for i, s in enumerate(old)]
    small = regression_gate(case("t/p", wobble)["examples"], base.cases["t/p"], 0.05)
    assert small["status"] == "pass"


def test_examples_must_match_the_baseline(tmp_path: Path) -> None:
    base = baseline(tmp_path, case("t/p", [1.0] * 6))
    check_same_examples(base, "t/p", [f"ex{i}" for i in reversed(range(6))])
    check_same_examples(base, "other/p", ["a"])  # not in the baseline: nothing to pair
    with pytest.raises(ConfigError, match="6 test examples and this run on 4.*--test-size 6"):
        check_same_examples(base, "t/p", [f"ex{i}" for i in range(4)])
    with pytest.raises(ConfigError, match="2 ids differing.*data seed"):
        check_same_examples(base, "t/p", [f"ex{i}" for i in range(5)] + ["new"])


def test_apply_gates_and_every_report_format(tmp_path: Path) -> None:
    base = baseline(tmp_path, case("t/good", [1.0] * 10), case("t/gone", [1.0] * 10))
    good = case("t/good", [1.0] * 9 + [0.0])
    bad = case("t/bad", [0.0] * 10)
    apply_gates(good, 0.5, base, 0.05)
    apply_gates(bad, 0.5, base, 0.05)
    assert good["passed"] and [g["status"] for g in good["gates"]] == ["pass", "pass"]
    assert not bad["passed"] and [g["status"] for g in bad["gates"]] == ["fail", "skipped"]
    report = build_report([good, bad], alpha=0.05, baseline=base, model_option=None)
    jsonschema.validate(report, schema())
    assert report["exit_code"] == 10 and report["failed_cases"] == ["t/bad"]
    assert report["usage"] == {
        "calls": 6,
        "prompt_tokens": 20,
        "completion_tokens": 4,
        "cache_hits": 2,
    }
    assert report["baseline"]["only_in_baseline"] == ["t/gone"]

    from xml.etree import ElementTree as ET

    root = ET.fromstring(to_junit(report))
    suite = root.find("testsuite")
    assert suite is not None and suite.get("tests") == "2" and suite.get("failures") == "1"
    names = [(c.get("classname"), c.get("name")) for c in suite.iter("testcase")]
    assert names == [("promptopt.t", "good"), ("promptopt.t", "bad")]
    failure = suite.find("testcase[@name='bad']/failure")
    assert failure is not None and "below --min-score 0.5" in (failure.get("message") or "")

    markdown = to_markdown(report)
    rows = [line for line in markdown.splitlines() if line.startswith("| `")]
    assert len(rows) == 2 and rows[0].startswith("| `t/good` | 0.900 | 10 | 0.5 | 1.000 | -0.100 |")
    assert "**FAIL**" in rows[1] and "only in the baseline: t/gone" in markdown


def test_markdown_escapes_pipes() -> None:
    odd = case("t/a|b", [1.0])
    apply_gates(odd, None, None, 0.05)
    report = build_report([odd], alpha=0.05, baseline=None, model_option="embedded")
    assert "`t/a\\|b`" in to_markdown(report)


def test_the_schema_rejects_reports_without_examples() -> None:
    good = case("t/p", [1.0])
    apply_gates(good, None, None, 0.05)
    report = build_report([good], alpha=0.05, baseline=None, model_option=None)
    jsonschema.validate(report, schema())
    del report["cases"][0]["examples"]
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(report, schema())


def test_alpha_is_split_over_the_cases_the_baseline_has() -> None:
    from promptopt.evaluation.gate import Baseline, per_case_alpha

    base = Baseline(Path("old.json"), {"a/x": {}, "b/x": {}, "c/x": {}})
    assert per_case_alpha(0.05, None, ["a/x", "b/x"]) == 0.05
    assert per_case_alpha(0.05, base, ["a/x"]) == 0.05
    assert per_case_alpha(0.06, base, ["a/x", "b/x", "c/x", "new/x"]) == pytest.approx(0.02)
