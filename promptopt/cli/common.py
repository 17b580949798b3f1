"""What every command shares: consoles, one-line errors, progress, option types."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from promptopt.core.errors import INTERRUPTED_EXIT_CODE, ConfigError, PromptoptError


def plain_output() -> bool:
    return bool(os.environ.get("CI")) or not sys.stdout.isatty()


PLAIN_WIDTH = 160
"""Tables in CI logs and pipes: wide enough not to crush a leaderboard into 80 columns."""
console = Console(
    no_color=plain_output(), highlight=False, width=PLAIN_WIDTH if plain_output() else None
)
err_console = Console(
    stderr=True,
    no_color=plain_output(),
    highlight=False,
    width=PLAIN_WIDTH if plain_output() else None,
)


def fail(error: PromptoptError) -> typer.Exit:
    # Escaped: an error naming `pip install 'promptopt[ray]'` or a path with brackets
    # is text, not markup.
    err_console.print(f"[bold red]error:[/] {escape(str(error))}", soft_wrap=True, markup=True)
    return typer.Exit(code=error.exit_code)


def interrupted(what_now: str) -> typer.Exit:
    """Ctrl-C: one line saying what was kept and how to go on, and exit 130, instead
    of click's bare "Aborted!" and exit 1."""
    err_console.print(f"interrupted: {what_now}", markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(code=INTERRUPTED_EXIT_CODE)


class RichReporter:
    """Progress bars on a terminal; one line per phase otherwise (CI logs)."""

    def __init__(self) -> None:
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=err_console,
            disable=plain_output(),
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
        if plain_output():
            err_console.print(description)
        self.current = self.progress.add_task(description, total=total)

    def advance(self, n: int = 1) -> None:
        if self.current is not None:
            self.progress.advance(self.current, n)

    def note(self, message: str) -> None:
        err_console.print(f"[yellow]{message}[/]")


class _ConsoleHandler(logging.Handler):
    """promptopt's log records as plain lines on stderr, beside the progress bars."""

    def emit(self, record: logging.LogRecord) -> None:
        err_console.print(self.format(record), markup=False, highlight=False, soft_wrap=True)


_HANDLER = _ConsoleHandler()


def setup_logging(verbose: bool = False, quiet: bool = False) -> None:
    """Where the library's log lines go: INFO (one line per model-loading phase off a
    terminal), DEBUG with -v (dtype and threads and why), WARNING with --quiet."""
    logger = logging.getLogger("promptopt")
    if _HANDLER not in logger.handlers:
        logger.addHandler(_HANDLER)
    logger.setLevel(logging.WARNING if quiet else logging.DEBUG if verbose else logging.INFO)


def parse_params(values: list[str]) -> dict[str, str]:
    params = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"--param expects key=value, got '{item}'")
        params[key.strip()] = value.strip()
    return params


def split_sizes(train: int | None, dev: int | None, test: int | None) -> dict[str, int]:
    sizes = {"train": train, "dev": dev, "test": test}
    return {k: v for k, v in sizes.items() if v is not None}


def _model_help() -> str:
    """The registered backends (plugins included) as `--model` can name them."""
    from promptopt.llm.backend import backends

    ways = "; ".join(b.usage or f"'{b.name}:<model>'" for b in backends())
    return f"Target model, one of: {ways} (see `promptopt models list`)."


ModelOpt = Annotated[str, typer.Option("--model", "-m", help=_model_help())]
ModelOptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--model-option",
        help="KEY=VALUE: set one of the target model backend's options, also those "
        "without a flag of their own (repeatable; `promptopt models list` names them).",
    ),
]
ProposerOptionOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--proposer-option",
        help="KEY=VALUE: like --model-option, for the proposer's backend (repeatable).",
    ),
]
BaseUrlOpt = Annotated[
    str | None,
    typer.Option(
        help="OpenAI-compatible server URL for an openai: model, e.g. http://127.0.0.1:8080/v1."
    ),
]
StartOpt = Annotated[
    str | None,
    typer.Option(
        help="The prompt to start from and beat: an export JSON, a text file or an "
        "instruction (default: the task's baseline). It is a candidate in every strategy, "
        "and the search returns it unless a candidate beats it on dev by more than noise."
    ),
]
DemoFormatOpt = Annotated[
    str | None,
    typer.Option(
        help="How demonstrations reach the model: 'chat' (instruction as system message, "
        "each demonstration a user/assistant turn; the default) or 'text' (one block)."
    ),
]
DemoSetsOpt = Annotated[
    int,
    typer.Option(
        help="For strategies that write instructions only (ape, instructzero, rlprompt, "
        "reflexion): after the strategy, its best instruction and the start are tried with "
        "this many demonstration sets drawn from train (the instruction alone counts as "
        "one), on a share of the budget held back for it. 0 = instructions alone. mipro "
        "and boosted choose demonstrations themselves."
    ),
]
DtypeOpt = Annotated[
    str,
    typer.Option(
        help="hf models: auto (bfloat16 where the CPU or GPU runs it natively, else float32 "
        "on CPU and float16 on GPU), float32, bfloat16 or float16."
    ),
]
VerboseOpt = Annotated[
    bool,
    typer.Option(
        "--verbose", "-v", help="Also log each local model's dtype and torch threads, and why."
    ),
]
BatchOpt = Annotated[int, typer.Option(help="hf models: sequences per forward batch.")]
TimeoutOpt = Annotated[
    float | None,
    typer.Option(
        help="openai models: seconds a server gets per request (default 60); a request "
        "that times out is tried once more, then the command fails."
    ),
]
MaxConcurrencyOpt = Annotated[
    int | None,
    typer.Option(
        "--concurrency",
        "--max-concurrency",
        help="openai models: requests in flight at once. Default: 32 for a remote API or "
        "cluster (e.g. vLLM), 4 for a server on this machine (llama.cpp answers one at a "
        "time). Lower it for a server that rate-limits.",
    ),
]
DeviceOpt = Annotated[str, typer.Option(help="hf models: torch device, e.g. cpu or cuda.")]


TaskOpt = Annotated[
    str | None,
    typer.Option(help="Built-in task name (see `tasks list`) or path to a task YAML."),
]
ProposerOpt = Annotated[
    str, typer.Option(help="Model that writes candidate prompts (same syntax as --model).")
]
ProposerBaseUrlOpt = Annotated[str | None, typer.Option(help="Server URL for an openai: proposer.")]
ApiOpt = Annotated[str, typer.Option(help="openai models: 'chat' or 'completions'.")]
DataSeedOpt = Annotated[int, typer.Option(help="Seed of the train/dev/test sampling.")]
TrainSizeOpt = Annotated[int | None, typer.Option(help="Train examples (task default).")]
DevSizeOpt = Annotated[int | None, typer.Option(help="Dev examples used to select.")]
TestSizeOpt = Annotated[int | None, typer.Option(help="Held-out test examples.")]
NoCacheOpt = Annotated[
    bool, typer.Option("--no-cache", help="Do not read or write the shared cache.")
]
PricesOpt = Annotated[
    Path | None,
    typer.Option(
        help="YAML price table (USD per million tokens) extending the shipped one; "
        "also PROMPTOPT_PRICES."
    ),
]

ReportOpt = Annotated[
    bool,
    typer.Option(
        "--report/--no-report",
        help="Write an HTML report with charts (see `promptopt report`) when done.",
    ),
]


def write_report_after(path: Path) -> None:
    """The report closes a search or compare whose results are already written, so
    no failure of it may turn their success into a traceback and exit 1: it is a
    warning with the command that retries it."""
    from promptopt.report import write_report

    try:
        html = write_report(path)
    except Exception as error:  # any: see the docstring
        detail = str(error) if isinstance(error, PromptoptError) else repr(error)
        err_console.print(
            f"no report written ({detail}): the results above are saved; "
            f"retry with `promptopt report {path}`",
            style="yellow",
            markup=False,
            soft_wrap=True,
        )
        return
    console.print(f"Report: {html}", soft_wrap=True)
