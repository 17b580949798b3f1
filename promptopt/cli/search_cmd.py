"""`promptopt search`."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from promptopt.cli.common import (
    ApiOpt,
    BaseUrlOpt,
    BatchOpt,
    DataSeedOpt,
    DemoFormatOpt,
    DemoSetsOpt,
    DeviceOpt,
    DevSizeOpt,
    DtypeOpt,
    MaxConcurrencyOpt,
    ModelOpt,
    ModelOptionOpt,
    NoCacheOpt,
    PricesOpt,
    ProposerBaseUrlOpt,
    ProposerOpt,
    ProposerOptionOpt,
    ReportOpt,
    RichReporter,
    StartOpt,
    TaskOpt,
    TestSizeOpt,
    TimeoutOpt,
    TrainSizeOpt,
    VerboseOpt,
    console,
    fail,
    interrupted,
    parse_params,
    setup_logging,
    split_sizes,
    write_report_after,
)
from promptopt.core.errors import ConfigError, PromptoptError
from promptopt.strategies.demo_stage import DEFAULT_DEMO_SETS

if TYPE_CHECKING:
    from promptopt.run.search import SearchSpec


def search(
    task: TaskOpt = None,
    strategy: Annotated[str, typer.Option(help="Search strategy (see `strategies list`).")] = "ape",
    out: Annotated[Path | None, typer.Option(help="Write the best prompt's JSON here.")] = None,
    start: StartOpt = None,
    demo_format: DemoFormatOpt = None,
    demo_sets: DemoSetsOpt = DEFAULT_DEMO_SETS,
    model: ModelOpt = "embedded",
    model_option: ModelOptionOpt = None,
    proposer_option: ProposerOptionOpt = None,
    proposer: ProposerOpt = "embedded",
    base_url: BaseUrlOpt = None,
    proposer_base_url: ProposerBaseUrlOpt = None,
    api: ApiOpt = "chat",
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "cpu",
    batch_size: BatchOpt = 16,
    timeout: TimeoutOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    seed: Annotated[int, typer.Option(help="Seed of the search (sampling, subsets).")] = 0,
    data_seed: DataSeedOpt = 0,
    train_size: TrainSizeOpt = None,
    dev_size: DevSizeOpt = None,
    test_size: TestSizeOpt = None,
    budget: Annotated[
        int | None,
        typer.Option(
            help="Max model calls for the search, counting those the cache answers (so a "
            "rerun walks the same search). A hard cap: a batch that would cross it is not "
            "sent; the best prompt so far is kept."
        ),
    ] = None,
    budget_tokens: Annotated[
        int | None,
        typer.Option(
            help="Max tokens for the search. A hard cap: a batch is not sent when its "
            "prompt tokens plus max_tokens per sample could cross it."
        ),
    ] = None,
    report: ReportOpt = True,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Print the projected model calls, tokens and cost, then exit "
            "without loading a model.",
        ),
    ] = False,
    prices: PricesOpt = None,
    param: Annotated[
        list[str],
        typer.Option(
            "--param",
            "-p",
            help="Strategy parameter key=value, repeatable (see `strategies show NAME`).",
        ),
    ] = [],  # noqa: B006
    run_dir: Annotated[Path | None, typer.Option(help="Run directory (default runs/...).")] = None,
    resume: Annotated[
        Path | None, typer.Option(help="Continue an interrupted run from its run directory.")
    ] = None,
    no_cache: NoCacheOpt = False,
    verbose: VerboseOpt = False,
    data: Annotated[
        Path | None, typer.Option(help="Quick custom task from a JSONL file (with --input-field).")
    ] = None,
    input_field: Annotated[str, typer.Option(help="--data: field holding the input.")] = "input",
    target_field: Annotated[str, typer.Option(help="--data: field holding the answer.")] = "output",
    metric: Annotated[
        str, typer.Option(help="--data: exact, numeric, contains, f1, set or module:function.")
    ] = "exact",
) -> None:
    """Search for a better prompt, report it against the starting prompt on test, export JSON.

    The starting prompt (the task's baseline, or --start) is scored on dev first
    and is kept unless the strategy's best beats it there by more than noise, so
    a search never exports a prompt that did worse on dev than the one you had.

    Proposal and selection see only the train and dev splits; the test split is
    used once at the end. Every run writes a run directory (config, events, a
    call journal) so `--resume RUN_DIR` continues an interrupted search without
    repeating model calls.

    Ctrl-C stops a search within seconds and prints the command that resumes it;
    with --resume, --timeout and --concurrency replace the run's own, and
    --base-url / --proposer-base-url give back a credential in the server URL
    (never saved) for the server the run was started with.

    Check the cost first: add --dry-run to see the model calls, tokens and
    estimated cost (API models) a search would use, e.g.
    promptopt search --task antonyms --model openai:gpt-4o-mini --budget 200 --dry-run
    """
    from promptopt.core.domain import Budget
    from promptopt.llm.factory import parse_model_spec, with_call_settings, with_model_options
    from promptopt.run.search import SearchSpec, default_run_dir, run_search
    from promptopt.run.store import load_run_config

    setup_logging(verbose)
    try:
        if resume is not None:
            if model_option or proposer_option:
                raise ConfigError(
                    "--model-option and --proposer-option cannot change a resumed run's "
                    "models: resume without them"
                )
            spec = SearchSpec.from_run_config(load_run_config(resume), run_dir=resume)
            out = out or (Path(spec.out) if spec.out else None)
            spec.target = with_call_settings(spec.target, timeout, max_concurrency)
            spec.proposer = with_call_settings(spec.proposer, timeout, max_concurrency)
            spec.give_base_urls(base_url, proposer_base_url)
        else:
            if task is None and data is None:
                raise ConfigError("no task given: pass --task NAME (see `promptopt tasks list`)")
            _refuse_code_task(task)
            hf_opts = {"dtype": dtype, "device": device, "batch_size": batch_size}
            call_opts = {"timeout": timeout, "max_concurrency": max_concurrency}
            spec = SearchSpec(
                task=task or str(data),
                strategy=strategy,
                params=parse_params(param),
                seed=seed,
                data_seed=data_seed,
                target=with_model_options(
                    parse_model_spec(model, base_url=base_url, api=api, **hf_opts, **call_opts),
                    model_option,
                ),
                proposer=with_model_options(
                    parse_model_spec(
                        proposer, base_url=proposer_base_url, api=api, **hf_opts, **call_opts
                    ),
                    proposer_option,
                    "--proposer-option",
                ),
                sizes=split_sizes(train_size, dev_size, test_size),
                budget=Budget(max_calls=budget, max_tokens=budget_tokens),
                run_dir=run_dir,
                use_cache=not no_cache,
                data_file=(
                    {
                        "path": str(data),
                        "input_field": input_field,
                        "target_field": target_field,
                        "metric": metric,
                    }
                    if data is not None
                    else None
                ),
                out=str(out) if out else None,
                start=start,
                demo_format=demo_format,
                demo_sets=demo_sets,
            )
        if prices is not None:
            spec.prices = str(prices)
        if dry_run:
            from promptopt.run.dry_run import project_search

            for line in project_search(spec).lines():
                console.print(line, soft_wrap=True)
            return
        # Named here, not inside run_search, so that Ctrl-C can say what to resume.
        spec.run_dir = spec.run_dir or default_run_dir(spec.task, spec.strategy)
        try:
            with RichReporter() as reporter:
                export = run_search(spec, reporter)
        except KeyboardInterrupt:
            raise interrupted(_how_to_resume(spec)) from None
        if out is not None:
            _write_out(out, export)
    except PromptoptError as error:
        raise fail(error) from None
    _print_search_summary(export, out)
    if report:
        write_report_after(Path(export["run_dir"]))


def _how_to_resume(spec: SearchSpec) -> str:
    """After Ctrl-C: what was kept and the exact command that continues.

    The run directory holds every finished model call (the journal), so resuming
    repeats none of them; a search stopped before it wrote its config left nothing.
    A credential in a server URL is never saved: the resume must be given it again.
    """
    from promptopt.run.spec import BASE_URL_OPTION

    run_dir = Path(str(spec.run_dir))
    if not (run_dir / "config.json").is_file():
        return "the search had not started, nothing was saved"
    command = f"promptopt search --resume {shlex.quote(str(run_dir))}"
    options = [BASE_URL_OPTION[role] for role in spec.url_credentials()]
    again = f" plus {' and '.join(options)} with the credential again" if options else ""
    return f"the run is saved in {run_dir}; resume it with `{command}`{again}"


def _write_out(out: Path, export: dict[str, Any]) -> None:
    """`--out` was checked before the search; should it fail anyway (disk full, a
    permission changed), the result is not lost: the run directory holds it."""
    from promptopt.run.export import write_export

    try:
        write_export(out, export)
    except OSError as exc:
        saved = Path(export["run_dir"]) / "result.json"
        raise ConfigError(
            f"cannot write --out {out} ({exc.strerror or exc}): the export is saved as "
            f"{saved}; copy it from there"
        ) from None


def _refuse_code_task(task: str | None) -> None:
    from promptopt.data.code_tasks import is_code_task

    if is_code_task(task):
        raise ConfigError(
            f"{task} is a code task, scored by running the model's code rather than by a "
            f"prompt search: run `promptopt eval --task {task} --allow-code-execution` "
            "(add --reflexion-attempts 3 for the Reflexion loop)"
        )


def _print_search_summary(export: dict[str, Any], out: Path | None) -> None:
    if export.get("kind") == "ensemble":
        _print_ensemble_summary(export)
    else:
        table = Table(title=f"Best prompts on dev ({export['task']['name']})")
        table.add_column("#", justify="right")
        table.add_column("instruction")
        table.add_column("demos", justify="right")
        table.add_column("dev score", justify="right")
        table.add_column("dev n", justify="right")
        table.add_column("origin")
        for rank, row in enumerate(export["leaderboard"][:8], start=1):
            table.add_row(
                str(rank),
                escape(row["instruction"]),
                str(row.get("demonstrations", 0)),
                f"{row['dev_score']:.3f}",
                str(row["dev_n"]),
                escape(row.get("origin", "")),
            )
        console.print(table)
        scores = export["scores"]
        test, base = scores["test"], scores["baseline_test"]
        console.print(
            f"Test: best prompt {test['score']:.3f} vs starting prompt {base['score']:.3f} "
            f"(n={test['n']}, {export['task']['name']})"
        )
    _print_start_verdict(export)
    usage = export["usage"]["search"]
    console.print(
        f"Search used {usage['calls']} model calls ({usage['new_calls']} new, "
        f"{usage['cache_hits']} from the cache), "
        f"{usage['prompt_tokens'] + usage['completion_tokens']} tokens "
        f"in {export['timings']['search_s']:.1f}s; run directory {export['run_dir']}"
    )
    cost = export["usage"].get("cost")
    if cost:
        console.print(f"Estimated cost of search and test: {cost['summary']}")
    if export.get("stopped_by_budget"):
        console.print("The search stopped at its budget; the best prompt so far was kept.")
    if out is not None:
        console.print(f"Wrote {out}")


def _print_start_verdict(export: dict[str, Any]) -> None:
    start = export.get("start") or {}
    if export.get("improved"):
        console.print(f"Improved on the starting prompt: {start.get('reason', '')}.")
    elif "improved" in export:
        console.print(
            "Kept the starting prompt (improved: false): no candidate beat it on dev by "
            f"more than noise; {start.get('reason', '')}."
        )


def _print_ensemble_summary(export: dict[str, Any]) -> None:
    ensemble, scores = export["ensemble"], export["scores"]
    table = Table(
        title=f"Ensemble members ({export['task']['name']}; {ensemble['samples']} samples "
        f"each at temperature {ensemble['temperature']}, {ensemble['vote']} vote)"
    )
    table.add_column("#", justify="right")
    table.add_column("how it was built")
    table.add_column("demos", justify="right")
    table.add_column("pool score", justify="right")
    table.add_column("test score", justify="right")
    for i, (member, row, test) in enumerate(
        zip(ensemble["members"], export["leaderboard"], scores["members_test"], strict=False),
        start=1,
    ):
        pool = f"{row['dev_score']:.3f}" if row["dev_n"] else "-"
        table.add_row(
            str(i), row["origin"], str(len(member["demonstrations"])), pool, f"{test['score']:.3f}"
        )
    console.print(table)
    test, base = scores["test"], scores["baseline_test"]
    pool = scores.get("pool")
    pool_note = f"; its vote on the train pool {pool['score']:.3f} (n={pool['n']})" if pool else ""
    console.print(
        f"Test: ensemble {test['score']:.3f} vs starting prompt {base['score']:.3f} "
        f"(n={test['n']}, {export['task']['name']}){pool_note}"
    )
    _print_start_verdict(export)
