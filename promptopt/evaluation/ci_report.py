"""What `promptopt eval` leaves for a CI system: a JSON report, JUnit XML, a Markdown summary.

The JSON report (schema: `promptopt/schemas/eval_report.schema.json`) is also
the input of a later `eval --baseline`, which is why every case carries its
per-example ids and scores. JUnit XML is what CI test tabs read (one testcase
per case); the Markdown table is for job summary pages (GitHub Actions'
$GITHUB_STEP_SUMMARY).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import xml.etree.ElementTree as ET
from importlib import resources
from pathlib import Path
from typing import Any

from promptopt import __version__
from promptopt.core.errors import ConfigError
from promptopt.evaluation.gate import REPORT_FORMAT, REPORT_FORMAT_VERSION, Baseline

USAGE_FIELDS = ("calls", "prompt_tokens", "completion_tokens", "cache_hits")


def schema() -> dict[str, Any]:
    """The JSON Schema of the report, shipped in the package."""
    text = resources.files("promptopt").joinpath("schemas/eval_report.schema.json").read_text()
    return json.loads(text)


def total_usage(cases: list[dict[str, Any]]) -> dict[str, int]:
    return {f: sum(int(c["usage"].get(f, 0)) for c in cases) for f in USAGE_FIELDS}


def build_report(
    cases: list[dict[str, Any]],
    *,
    alpha: float,
    baseline: Baseline | None,
    model_option: str | None,
) -> dict[str, Any]:
    """The whole run; with one case its fields are also at the top level, as `eval
    --json` printed them before evaluations took several prompts."""
    passed = all(c["passed"] for c in cases)
    keys = {c["key"] for c in cases}
    report: dict[str, Any] = {
        "format": REPORT_FORMAT,
        "format_version": REPORT_FORMAT_VERSION,
        "promptopt_version": __version__,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "passed": passed,
        "exit_code": 0 if passed else 10,
        "failed_cases": [c["key"] for c in cases if not c["passed"]],
        "model_option": model_option,
        "models": _distinct([c["model"] for c in cases]),
        "usage": total_usage(cases),
        "alpha": alpha,
        "baseline": None
        if baseline is None
        else {
            "path": str(baseline.path),
            "matched": sorted(keys & baseline.cases.keys()),
            "only_in_baseline": sorted(baseline.cases.keys() - keys),
        },
        "cases": cases,
    }
    if len(cases) == 1:
        single = {k: v for k, v in cases[0].items() if k not in report}
        report = {**single, **report, "model": cases[0]["model"]}
    return report


def _distinct(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen: list[dict[str, Any]] = []
    for item in items:
        if item not in seen:
            seen.append(item)
    return seen


def write_text(path: Path, text: str, what: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot write {what} {path} ({exc.strerror}): pick a writable path"
        ) from None


def to_json(report: dict[str, Any]) -> str:
    return json.dumps(report, indent=2, ensure_ascii=False) + "\n"


def to_junit(report: dict[str, Any]) -> str:
    """One testsuite, one testcase per case (classname: task, name: label)."""
    cases = report["cases"]
    seconds = f"{sum(float(c.get('seconds', 0.0)) for c in cases):.2f}"
    counts = {
        "tests": str(len(cases)),
        "failures": str(len(report["failed_cases"])),
        "errors": "0",
        "skipped": "0",
        "time": seconds,
    }
    root = ET.Element("testsuites", {"name": "promptopt eval", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": "promptopt eval", **counts})
    properties = ET.SubElement(suite, "properties")
    usage = report["usage"]
    for name, value in [
        ("models", ", ".join(m["model"] for m in report["models"])),
        ("model_calls", usage["calls"]),
        ("cache_hits", usage["cache_hits"]),
        ("alpha", report["alpha"]),
        ("baseline", (report["baseline"] or {}).get("path", "")),
    ]:
        ET.SubElement(properties, "property", {"name": name, "value": str(value)})
    for case in cases:
        testcase = ET.SubElement(
            suite,
            "testcase",
            {
                "classname": f"promptopt.{case['task']}",
                "name": case["label"],
                "time": f"{float(case.get('seconds', 0.0)):.2f}",
            },
        )
        if case["failures"]:
            failure = ET.SubElement(
                testcase, "failure", {"message": "; ".join(case["failures"]), "type": "gate"}
            )
            failure.text = "\n".join(g["message"] for g in case["gates"])
        out = ET.SubElement(testcase, "system-out")
        out.text = "\n".join(
            [f"{case['key']}: score {case['score']:.4f} on {case['n']} examples"]
            + [f"{g['name']}: {g['status']}: {g['message']}" for g in case["gates"]]
        )
    ET.indent(root)
    return '<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, "unicode") + "\n"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def to_markdown(report: dict[str, Any]) -> str:
    """A heading, a table of cases and their gates, and the model calls spent."""
    cases = report["cases"]
    failed = len(report["failed_cases"])
    verdict = "passed" if report["passed"] else f"failed ({failed} of {len(cases)} cases)"
    lines = [
        f"### promptopt eval: {verdict}",
        "",
        "| case | score | n | min score | baseline | change | p (one-sided) | result |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for case in cases:
        gates = {g["name"]: g for g in case["gates"]}
        minimum = gates["min_score"].get("threshold")
        regression = gates.get("regression", {}).get("comparison")
        lines.append(
            "| "
            + " | ".join(
                _cell(v)
                for v in (
                    f"`{case['key']}`",
                    f"{case['score']:.3f}",
                    case["n"],
                    "" if minimum is None else f"{minimum:g}",
                    "" if regression is None else f"{regression['old_mean']:.3f}",
                    "" if regression is None else f"{regression['difference']:+.3f}",
                    "" if regression is None else f"{regression['p_value']:.3g}",
                    "pass" if case["passed"] else "**FAIL**: " + "; ".join(case["failures"]),
                )
            )
            + " |"
        )
    usage = report["usage"]
    models = ", ".join(m["model"] for m in report["models"])
    lines += [
        "",
        f"Model {models}: {usage['calls']} model calls, {usage['cache_hits']} cache hits, "
        f"{usage['prompt_tokens'] + usage['completion_tokens']} tokens.",
    ]
    if report["baseline"] is not None:
        base = report["baseline"]
        lines.append(
            f"Baseline `{base['path']}`: {len(base['matched'])} cases compared "
            f"(alpha {report['alpha']:g}); only in the baseline: "
            f"{', '.join(base['only_in_baseline']) or 'none'}."
        )
    return "\n".join(lines) + "\n"


def append_step_summary(markdown: str) -> Path | None:
    """GitHub Actions shows what a step appends to $GITHUB_STEP_SUMMARY on the run page."""
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if not target:
        return None
    path = Path(target)
    try:
        with path.open("a", encoding="utf-8") as handle:
            handle.write(markdown + "\n")
    except OSError as exc:
        raise ConfigError(
            f"cannot append to $GITHUB_STEP_SUMMARY ({path}: {exc.strerror}): "
            "unset it or point it at a writable file"
        ) from None
    return path


def write_outputs(
    report: dict[str, Any],
    *,
    json_out: Path | None,
    junit_out: Path | None,
    markdown_out: Path | None,
) -> None:
    if json_out is not None:
        write_text(json_out, to_json(report), "the JSON report")
    if junit_out is not None:
        write_text(junit_out, to_junit(report), "the JUnit report")
    markdown = to_markdown(report)
    if markdown_out is not None:
        write_text(markdown_out, markdown, "the Markdown summary")
    append_step_summary(markdown)
