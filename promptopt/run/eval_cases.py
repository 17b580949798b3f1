"""The evaluations one `promptopt eval` runs, and running one of them.

Every case is planned and checked (options, prompt files, test splits, the code
execution opt-in) before any model loads, so a bad flag costs nothing; a case is
an exported prompt or ensemble on a task, or a code task scored by pass@1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptopt.core.errors import ConfigError
from promptopt.strategies.base import Reporter

CODE_LABEL = "model"
"""The label of a code-task case: there is no prompt file, the model is what is scored."""


@dataclass
class EvalCase:
    """One evaluation to run: a prepared export on a task, or a code task."""

    key: str
    task: str
    label: str
    example_ids: list[str]
    prepared: Any = None
    """A PreparedEval for prompts and ensembles; None for a code task."""


def _labels(prompts: list[Path], labels: list[str]) -> list[str]:
    if labels and len(labels) != len(prompts):
        raise ConfigError(
            f"{len(labels)} --label for {len(prompts)} --prompt: give one --label per --prompt, "
            "in the same order, or none (labels default to the prompt file's name)"
        )
    chosen = labels or [p.stem for p in prompts]
    for label in chosen:
        if not label.strip() or "/" in label:
            raise ConfigError(f"bad --label '{label}': use a non-empty name without '/'")
    return chosen


def plan_cases(
    prompts: list[Path],
    labels: list[str],
    tasks: list[str],
    model_spec: Any,
    test_size: int | None,
    reflexion_attempts: int,
    allow_code_execution: bool,
) -> list[EvalCase]:
    """Check the options and load every test split, before any model is loaded."""
    from promptopt.data.code_tasks import is_code_task, load_humaneval
    from promptopt.run.eval_run import prepare_eval
    from promptopt.sandbox.runner import require_opt_in

    code_tasks = [t for t in tasks if is_code_task(t)]
    cases: list[EvalCase] = []
    if code_tasks:
        if prompts:
            raise ConfigError(
                f"--prompt does not apply to the code task {code_tasks[0]}: leave it out "
                "(evaluate prompts for other tasks in a separate `promptopt eval`)"
            )
        others = [t for t in tasks if not is_code_task(t)]
        if others:
            raise ConfigError(
                f"no prompt given for {others[0]}: evaluate code tasks and prompts in separate "
                "`promptopt eval` runs"
            )
        if len(labels) > 1:
            raise ConfigError("code tasks take at most one --label: give one or none")
        require_opt_in(allow_code_execution)
        label = labels[0] if labels else CODE_LABEL
        for task in code_tasks:
            ids = [p.task_id for p in load_humaneval(test_size)]
            cases.append(EvalCase(f"{task}/{label}", task, label, ids))
        return cases
    if not prompts:
        raise ConfigError("no prompt given: pass --prompt best.json (from `promptopt search`)")
    if reflexion_attempts != 1:
        raise ConfigError(
            "--reflexion-attempts applies to code tasks (--task humaneval); to search "
            "prompts with Reflexion run `promptopt search --strategy reflexion`"
        )
    for path, label in zip(prompts, _labels(prompts, labels), strict=True):
        for task in tasks or [None]:
            prepared = prepare_eval(path, task=task, model=model_spec, test_size=test_size)
            name = prepared.task.name
            cases.append(EvalCase(f"{name}/{label}", name, label, prepared.example_ids, prepared))
    seen: dict[str, EvalCase] = {}
    for case in cases:
        if case.key in seen:
            raise ConfigError(
                f"two evaluations share the key '{case.key}' (task/label): give each --prompt "
                "its own --label"
            )
        seen[case.key] = case
    return cases


def run_case(
    case: EvalCase,
    *,
    model_spec: Any,
    test_size: int | None,
    use_cache: bool,
    reflexion_attempts: int,
    allow_code_execution: bool,
    reporter: Reporter,
) -> dict[str, Any]:
    from promptopt.run.eval_run import score_prepared

    if case.prepared is not None:
        result = score_prepared(case.prepared, use_cache=use_cache, reporter=reporter)
    else:
        result = _code_eval(
            case.task,
            reflexion_attempts,
            allow_code_execution,
            model_spec,
            test_size,
            use_cache,
            reporter,
        )
    return {"key": case.key, "task": case.task, "label": case.label, **result}


def _code_eval(
    task: str,
    attempts: int,
    allowed: bool,
    model_spec: Any,
    test_size: int | None,
    use_cache: bool,
    reporter: Reporter,
) -> dict[str, Any]:
    """`eval --task humaneval`: the model's pass@1, with the Reflexion loop when attempts > 1."""
    from promptopt.run.code_eval import run_code_eval

    report = run_code_eval(
        task,
        allow_code_execution=allowed,
        attempts=attempts,
        model=model_spec,
        test_size=test_size,
        use_cache=use_cache,
        reporter=reporter,
    )
    # A problem counts as solved when the answer it ends with passes the hidden tests.
    examples = [
        {"id": p["task_id"], "score": 1.0 if p["hidden"] and p["hidden"][-1] else 0.0}
        for p in report["problems"]
    ]
    return {**report, "kind": "code", "prompt_file": None, "examples": examples}
