"""`promptopt eval`: re-score exported prompts and gate CI on them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from promptopt.cli.common import (
    BaseUrlOpt,
    BatchOpt,
    DeviceOpt,
    DtypeOpt,
    ModelOpt,
    RichReporter,
    console,
    fail,
)
from promptopt.errors import ConfigError, GateFailed, PromptoptError


def _print_ensemble_eval(report: dict[str, Any]) -> None:
    members = ", ".join(f"#{m['index'] + 1} {m['score']:.3f}" for m in report["members"])
    console.print(
        f"{report['task']}: ensemble score {report['score']:.3f} on {report['n']} test examples "
        f"(members: {members}; model {report['model']['model']}; "
        f"export said {report['exported_score']})"
    )


def eval_command(
    prompt: Annotated[
        Path | None,
        typer.Option(help="Prompt JSON written by `promptopt search` (not for code tasks)."),
    ] = None,
    task: Annotated[
        str | None, typer.Option(help="Task to score on (default: the prompt's own task).")
    ] = None,
    min_score: Annotated[
        float | None, typer.Option(help="Exit 10 when the test score is below this.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON result.")] = False,
    model: ModelOpt = "",
    base_url: BaseUrlOpt = None,
    api: Annotated[str, typer.Option(help="openai models: 'chat' or 'completions'.")] = "chat",
    dtype: DtypeOpt = "bfloat16",
    device: DeviceOpt = "cpu",
    batch_size: BatchOpt = 16,
    test_size: Annotated[
        int | None, typer.Option(help="Test examples (default: as in the export).")
    ] = None,
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not read or write the shared cache.")
    ] = False,
    reflexion_attempts: Annotated[
        int,
        typer.Option(
            help="Code tasks: attempts per problem; on failed visible tests the model "
            "reflects and retries (1 = no Reflexion loop)."
        ),
    ] = 1,
    allow_code_execution: Annotated[
        bool,
        typer.Option(
            "--allow-code-execution",
            help="Code tasks: run model-written code, in the sandbox (see README).",
        ),
    ] = False,
) -> None:
    """Re-score an exported prompt on the test split; gate on --min-score.

    Code tasks (--task humaneval) score the model itself as pass@1 of the
    functions it writes, with or without the Reflexion loop
    (--reflexion-attempts 3); they need --allow-code-execution. --test-size
    takes the first N problems.

    Exit codes: 0 pass, 10 score below --min-score, 2 bad prompt file or
    options, 3 data missing, 4 model unavailable.
    """
    from promptopt.code_tasks import is_code_task
    from promptopt.evaluation_run import run_eval
    from promptopt.llm.factory import parse_model_spec

    try:
        model_spec = (
            parse_model_spec(
                model,
                base_url=base_url,
                api=api,
                dtype=dtype,
                device=device,
                batch_size=batch_size,
            )
            if model
            else None
        )
        if is_code_task(task):
            report = _code_eval(
                task,
                prompt,
                reflexion_attempts,
                allow_code_execution,
                model_spec,
                test_size,
                no_cache,
            )
        else:
            if prompt is None:
                raise ConfigError(
                    "no prompt given: pass --prompt best.json (from `promptopt search`)"
                )
            if reflexion_attempts != 1:
                raise ConfigError(
                    "--reflexion-attempts applies to code tasks (--task humaneval); to search "
                    "prompts with Reflexion run `promptopt search --strategy reflexion`"
                )
            with RichReporter() as reporter:
                report = run_eval(
                    prompt,
                    task=task,
                    model=model_spec,
                    test_size=test_size,
                    use_cache=not no_cache,
                    reporter=reporter,
                )
        report["min_score"] = min_score
        report["passed"] = min_score is None or report["score"] >= min_score
        if as_json:
            print(json.dumps(report, indent=2))
        elif report.get("kind") == "ensemble":
            _print_ensemble_eval(report)
        elif "pass_at_1_by_attempts" in report:
            by = ", ".join(f"{k}: {v:.3f}" for k, v in report["pass_at_1_by_attempts"].items())
            console.print(
                f"{report['task']}: pass@1 {report['score']:.3f} on {report['n']} problems with "
                f"{report['attempts']} attempt(s) (pass@1 after attempts {by}; "
                f"model {report['model']['model']})"
            )
        else:
            console.print(
                f"{report['task']}: score {report['score']:.3f} on {report['n']} test examples "
                f"(model {report['model']['model']}; export said {report['exported_score']})"
            )
        if not report["passed"]:
            raise GateFailed(f"score {report['score']:.3f} is below --min-score {min_score}")
    except PromptoptError as error:
        raise fail(error) from None


def _code_eval(
    task: str,
    prompt: Path | None,
    attempts: int,
    allowed: bool,
    model_spec: Any,
    test_size: int | None,
    no_cache: bool,
) -> dict[str, Any]:
    """`eval --task humaneval`: the model's pass@1, with the Reflexion loop when attempts > 1."""
    from promptopt.code_eval import run_code_eval

    if prompt is not None:
        raise ConfigError(f"--prompt does not apply to the code task {task}: leave it out")
    with RichReporter() as reporter:
        return run_code_eval(
            task,
            allow_code_execution=allowed,
            attempts=attempts,
            model=model_spec,
            test_size=test_size,
            use_cache=not no_cache,
            reporter=reporter,
        )
