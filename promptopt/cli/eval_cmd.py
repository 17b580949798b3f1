"""`promptopt eval`: re-score exported prompts and gate CI on them."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Annotated, Any

import typer

from promptopt.cli.common import (
    ApiOpt,
    BaseUrlOpt,
    BatchOpt,
    DeviceOpt,
    DtypeOpt,
    MaxConcurrencyOpt,
    ModelOpt,
    ModelOptionOpt,
    NoCacheOpt,
    RichReporter,
    TimeoutOpt,
    VerboseOpt,
    console,
    err_console,
    fail,
    interrupted,
    plain_output,
    setup_logging,
)
from promptopt.core.errors import ConfigError, GateFailed, PromptoptError
from promptopt.strategies.base import SilentReporter


def _print_case(case: dict[str, Any]) -> None:
    """One line per case, then its gates (plain text: labels may hold brackets)."""
    key, model_name = case["key"], case["model"]["model"]
    exported = case.get("exported_score")
    said = f"; export said {exported:.3f}" if isinstance(exported, int | float) else ""
    if case["kind"] == "ensemble":
        members = ", ".join(f"#{m['index'] + 1} {m['score']:.3f}" for m in case["members"])
        line = (
            f"{key}: ensemble score {case['score']:.3f} on {case['n']} test examples "
            f"(members: {members}; model {model_name}{said})"
        )
    elif case["kind"] == "code":
        by = ", ".join(f"{k}: {v:.3f}" for k, v in case["pass_at_1_by_attempts"].items())
        line = (
            f"{key}: pass@1 {case['score']:.3f} on {case['n']} problems with "
            f"{case['attempts']} attempt(s) (pass@1 after attempts {by}; model {model_name})"
        )
    else:
        line = (
            f"{key}: score {case['score']:.3f} on {case['n']} test examples "
            f"(model {model_name}{said})"
        )
    console.print(line, markup=False, soft_wrap=True)
    for gate in case["gates"]:
        if gate["status"] != "skipped":
            text = f"  {gate['status'].upper()} {gate['message']}"
            console.print(text, markup=False, soft_wrap=True)


def _check_outputs(**paths: Path | None) -> None:
    """Fail before the model runs, not after, when a report could not be written
    (a directory, a path under a regular file, a folder nobody may write to)."""
    from promptopt.core.files import require_writable

    for option, path in paths.items():
        if path is not None:
            require_writable(path, "--" + option.replace("_", "-"))


def eval_command(
    prompt: Annotated[
        list[Path] | None,
        typer.Option(
            help="Prompt or ensemble JSON written by `promptopt search`; repeat for several "
            "(not for code tasks)."
        ),
    ] = None,
    task: Annotated[
        list[str] | None,
        typer.Option(
            help="Task to score on; repeat for several (every prompt is scored on every task). "
            "Default: each prompt's own task."
        ),
    ] = None,
    label: Annotated[
        list[str] | None,
        typer.Option(
            help="Name of each --prompt in reports and baselines, in --prompt order "
            "(default: the file's stem, e.g. best for best.json). Cases are keyed task/label."
        ),
    ] = None,
    min_score: Annotated[
        list[str] | None,
        typer.Option(
            help="Gate: exit 10 when a test score is below this. 0.4 for every task, "
            "antonyms=0.3 for one (wins over the global one); repeatable."
        ),
    ] = None,
    baseline: Annotated[
        Path | None,
        typer.Option(
            help="Gate: a report from an earlier `eval --json-out`; exit 10 when a case "
            "scores significantly below its baseline (one-sided paired test on the same "
            "test examples)."
        ),
    ] = None,
    alpha: Annotated[
        float,
        typer.Option(
            help="Significance level of the --baseline regression gate, for the whole run: "
            "with m cases in the baseline each is tested at alpha/m (Bonferroni)."
        ),
    ] = 0.05,
    as_json: Annotated[bool, typer.Option("--json", help="Print the JSON report.")] = False,
    json_out: Annotated[
        Path | None,
        typer.Option(help="Write the JSON report here (the input of a later --baseline)."),
    ] = None,
    junit_out: Annotated[
        Path | None, typer.Option(help="Write JUnit XML here: one testcase per task/label.")
    ] = None,
    markdown_out: Annotated[
        Path | None,
        typer.Option(
            help="Write a Markdown summary table here (also appended to "
            "$GITHUB_STEP_SUMMARY when that is set)."
        ),
    ] = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="No progress lines, only results and errors.")
    ] = False,
    model: ModelOpt = "",
    model_option: ModelOptionOpt = None,
    base_url: BaseUrlOpt = None,
    api: ApiOpt = "chat",
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "cpu",
    batch_size: BatchOpt = 16,
    timeout: TimeoutOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    test_size: Annotated[
        int | None, typer.Option(help="Test examples (default: as in the export).")
    ] = None,
    no_cache: NoCacheOpt = False,
    verbose: VerboseOpt = False,
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
    """Re-score exported prompts on the test split; gate CI on --min-score and --baseline.

    Every --prompt is scored on every --task (default: its own task); each
    pair is a case keyed task/label. With the cache directory kept, an
    unchanged rerun makes no model calls (reports count calls and cache hits).

    Code tasks (--task humaneval) score the model itself as pass@1 of the
    functions it writes, with or without the Reflexion loop
    (--reflexion-attempts 3); they need --allow-code-execution. --test-size
    takes the first N problems.

    Exit codes: 0 every gate passed; 10 a gate failed (a score below
    --min-score, or significantly below --baseline); 2 usage or configuration
    error (bad option, unreadable prompt or baseline file, baseline scored on
    other test examples); 3 data missing; 4 model unavailable; 6 API key
    rejected (HTTP 401/403).
    """
    from promptopt.data.task import check_requested_sizes
    from promptopt.evaluation import ci_report, gate
    from promptopt.llm.factory import parse_model_spec, with_call_settings, with_model_options
    from promptopt.run.eval_cases import plan_cases, run_case

    if quiet or plain_output():
        # transformers reads this when first imported: no weight-loading bars in CI logs.
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    setup_logging(verbose, quiet)
    try:
        if not 0.0 < alpha < 1.0:
            raise ConfigError(f"--alpha must be between 0 and 1, got {alpha}: e.g. --alpha 0.05")
        check_requested_sizes({"test": test_size})
        min_scores = gate.parse_min_scores(min_score)
        _check_outputs(json_out=json_out, junit_out=junit_out, markdown_out=markdown_out)
        if model_option and not model:
            raise ConfigError("--model-option sets an option of --model: give --model too")
        model_spec = (
            with_model_options(
                parse_model_spec(
                    model,
                    base_url=base_url,
                    api=api,
                    dtype=dtype,
                    device=device,
                    batch_size=batch_size,
                    timeout=timeout,
                    max_concurrency=max_concurrency,
                ),
                model_option,
            )
            if model
            else None
        )
        cases = plan_cases(
            prompt or [],
            label or [],
            task or [],
            model_spec,
            test_size,
            reflexion_attempts,
            allow_code_execution,
        )
        for prepared in (c.prepared for c in cases if c.prepared is not None):
            # Also an export's own model (no --model) takes --timeout and --concurrency.
            prepared.model = with_call_settings(prepared.model, timeout, max_concurrency)
        gate.check_min_score_tasks(min_scores, [c.task for c in cases] + list(task or []))
        base = gate.read_baseline(baseline) if baseline is not None else None
        if base is not None:
            for case in cases:
                gate.check_same_examples(base, case.key, case.example_ids)
            if not any(c.key in base.cases for c in cases):
                err_console.print(
                    f"note: no case of this run is in baseline {baseline} (baseline keys: "
                    f"{', '.join(sorted(base.cases)) or 'none'}): cases are keyed task/label; "
                    "pass --label to match",
                    markup=False,
                    soft_wrap=True,
                )
        case_alpha = gate.per_case_alpha(alpha, base, [c.key for c in cases])
        results = []
        with RichReporter() if not quiet else _Silent() as reporter:
            for case in cases:
                result = run_case(
                    case,
                    model_spec=model_spec,
                    test_size=test_size,
                    use_cache=not no_cache,
                    reflexion_attempts=reflexion_attempts,
                    allow_code_execution=allow_code_execution,
                    reporter=reporter,
                )
                gate.apply_gates(result, min_scores.for_task(case.task), base, case_alpha)
                results.append(result)
        report = ci_report.build_report(
            results, alpha=alpha, baseline=base, model_option=model or None
        )
        ci_report.write_outputs(
            report, json_out=json_out, junit_out=junit_out, markdown_out=markdown_out
        )
        if as_json:
            print(json.dumps(report, indent=2, ensure_ascii=False))
        else:
            for result in results:
                _print_case(result)
            usage = report["usage"]
            console.print(
                f"{len(results)} case(s), {len(report['failed_cases'])} failed; "
                f"{usage['calls']} model calls, {usage['cache_hits']} cache hits",
                markup=False,
                soft_wrap=True,
            )
        if not report["passed"]:
            failed = [r for r in results if not r["passed"]]
            details = "; ".join(f"{r['key']}: {', '.join(r['failures'])}" for r in failed)
            raise GateFailed(f"gate failed for {len(failed)} of {len(results)} case(s): {details}")
    except PromptoptError as error:
        raise fail(error) from None
    except KeyboardInterrupt:
        raise interrupted("no gate was checked; rerun the same command") from None


class _Silent(SilentReporter):
    """--quiet: no progress at all, as a context manager like RichReporter."""

    def __enter__(self) -> _Silent:
        return self

    def __exit__(self, *exc: object) -> None:
        return None
