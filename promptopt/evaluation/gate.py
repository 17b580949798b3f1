"""The gates `promptopt eval` applies in CI: minimum scores, and no significant regression.

A case is one prompt (or ensemble, or for code tasks the model) scored on one
task's test split. It is keyed `<task>/<label>`, the label being `--label` or
the prompt file's stem, so a baseline report written earlier by
`eval --json-out` finds the same case again when the prompt file is edited in
place.

The regression gate compares the case's per-example scores with the baseline's
on the same examples (matched by example id) with a one-sided paired test
(`promptopt.evaluation.stats.compare_paired`, alternative "less"). It fails only when the
new score is significantly below the old one: a lower mean alone is noise on
small test splits, and a CI gate that fails on noise gets switched off.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.core.errors import ConfigError
from promptopt.evaluation.stats import compare_paired

REPORT_FORMAT = "promptopt.eval_report"
REPORT_FORMAT_VERSION = 1


def case_key(task: str, label: str) -> str:
    return f"{task}/{label}"


@dataclass(frozen=True)
class MinScores:
    """`--min-score 0.4` (every task) and `--min-score antonyms=0.3` (one task, wins)."""

    default: float | None = None
    per_task: dict[str, float] = field(default_factory=dict)

    def for_task(self, task: str) -> float | None:
        return self.per_task.get(task, self.default)


def _threshold(text: str, item: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise ConfigError(
            f"--min-score expects a number or task=number, got '{item}': "
            "write e.g. --min-score 0.4 or --min-score antonyms=0.3"
        )
    return value


def parse_min_scores(values: list[str] | None) -> MinScores:
    default: float | None = None
    per_task: dict[str, float] = {}
    for item in values or []:
        task, sep, number = item.rpartition("=")
        if sep and not task.strip():
            raise ConfigError(f"--min-score '{item}' names no task: write task=number")
        threshold = _threshold(number.strip(), item)
        if not sep:
            if default is not None:
                raise ConfigError(
                    f"--min-score given twice without a task ({default} and {threshold}): "
                    "keep one, or write task=number for per-task thresholds"
                )
            default = threshold
        else:
            per_task[task.strip()] = threshold
    return MinScores(default, per_task)


def check_min_score_tasks(min_scores: MinScores, tasks: list[str]) -> None:
    """A per-task threshold for a task not evaluated is a typo that would never gate."""
    for name in min_scores.per_task:
        if name not in tasks:
            raise ConfigError(
                f"--min-score {name}=... names a task this run does not evaluate "
                f"(tasks: {', '.join(sorted(set(tasks)))}): fix the task name"
            )


@dataclass
class Baseline:
    """Cases of an earlier `eval --json-out` report, by key."""

    path: Path
    cases: dict[str, dict[str, Any]]


def read_baseline(path: Path) -> Baseline:
    """Load and check a baseline report; every failure is one line naming the fix."""
    fix = "write one with `promptopt eval ... --json-out FILE`"
    if not path.is_file():
        raise ConfigError(f"baseline file not found: {path}: {fix}")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"baseline {path} is not valid JSON ({exc}): {fix}") from None
    if not isinstance(data, dict) or data.get("format") != REPORT_FORMAT:
        raise ConfigError(
            f'baseline {path} is not a promptopt eval report (no "format": "{REPORT_FORMAT}"): '
            f"{fix}"
        )
    if data.get("format_version", 0) > REPORT_FORMAT_VERSION:
        raise ConfigError(
            f"baseline {path} was written by a newer promptopt "
            f"(format {data['format_version']}): upgrade"
        )
    cases: dict[str, dict[str, Any]] = {}
    for case in data.get("cases") or []:
        try:
            key = str(case["key"])
            examples = [(str(e["id"]), float(e["score"])) for e in case["examples"]]
        except (KeyError, TypeError, ValueError):
            raise ConfigError(
                f"baseline {path} has a case without per-example ids and scores: {fix}"
            ) from None
        cases[key] = {**case, "examples": [{"id": i, "score": s} for i, s in examples]}
    return Baseline(path, cases)


def check_same_examples(baseline: Baseline, key: str, ids: list[str]) -> None:
    """Refuse a paired comparison over different examples: it would compare nothing."""
    case = baseline.cases.get(key)
    if case is None:
        return
    old = [e["id"] for e in case["examples"]]
    if len(set(ids)) != len(ids) or len(set(old)) != len(old):
        raise ConfigError(
            f"case {key}: repeated example ids, so examples cannot be paired with baseline "
            f"{baseline.path}: give every example of the data a unique id"
        )
    if set(old) == set(ids):
        return
    if len(old) != len(ids):
        fix = f"rerun with --test-size {len(old)}, or write a new baseline with --json-out"
    else:
        fix = "use the baseline's data and data seed, or write a new baseline with --json-out"
    differ = len(set(old) ^ set(ids))
    raise ConfigError(
        f"case {key}: baseline {baseline.path} was scored on {len(old)} test examples and this "
        f"run on {len(ids)}, {differ} ids differing (another test split): {fix}"
    )


def per_case_alpha(alpha: float, baseline: Baseline | None, keys: list[str]) -> float:
    """Bonferroni: with m cases tested against the baseline, each at alpha / m.

    A CI job gating ten prompts at 0.05 each would fail on noise about 40% of
    the time; this keeps the chance that any unchanged case fails at most alpha.
    """
    tested = sum(1 for key in keys if baseline is not None and key in baseline.cases)
    return alpha / max(1, tested)


def min_score_gate(score: float, threshold: float | None) -> dict[str, Any]:
    if threshold is None:
        return {"name": "min_score", "status": "skipped", "message": "no --min-score"}
    passed = score >= threshold
    relation = "is at least" if passed else "is below"
    return {
        "name": "min_score",
        "status": "pass" if passed else "fail",
        "threshold": threshold,
        "message": f"score {score:.3f} {relation} --min-score {threshold:g}",
    }


def regression_gate(
    examples: list[dict[str, Any]], baseline_case: dict[str, Any] | None, alpha: float
) -> dict[str, Any]:
    """One-sided paired test of new against old on the examples both were scored on."""
    if baseline_case is None:
        return {"name": "regression", "status": "skipped", "message": "not in the baseline"}
    old_by_id = {e["id"]: e["score"] for e in baseline_case["examples"]}
    new = [float(e["score"]) for e in examples]
    old = [float(old_by_id[e["id"]]) for e in examples]
    if not new:
        return {"name": "regression", "status": "skipped", "message": "no examples to compare"}
    comparison = compare_paired(new, old, alternative="less", alpha=alpha)
    change = (
        f"{comparison.new_mean:.3f} vs baseline {comparison.old_mean:.3f} "
        f"({comparison.difference:+.3f}, one-sided p={comparison.p_value:.3g} by "
        f"{comparison.method}, n={comparison.n})"
    )
    if comparison.significant:
        status, message = "fail", f"significant regression (p < alpha {alpha:g}): {change}"
    else:
        status, message = "pass", f"no significant regression: {change}"
    return {
        "name": "regression",
        "status": status,
        "baseline_score": comparison.old_mean,
        "comparison": comparison.to_dict(),
        "message": message,
    }


def apply_gates(
    case: dict[str, Any],
    threshold: float | None,
    baseline: Baseline | None,
    alpha: float,
) -> None:
    """Record the case's gates, whether it passed, and its failure messages, in place."""
    gates = [min_score_gate(case["score"], threshold)]
    if baseline is not None:
        gates.append(regression_gate(case["examples"], baseline.cases.get(case["key"]), alpha))
    case["gates"] = gates
    case["failures"] = [g["message"] for g in gates if g["status"] == "fail"]
    case["passed"] = not case["failures"]
    case["min_score"] = threshold
