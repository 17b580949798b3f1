"""The `promptopt` command. Only this package prints; every command lives in its own module.

Exit codes (also in README):
  0  success
  1  unexpected internal error
  2  usage or configuration error (bad option, task file, prompt file, run dir)
  3  data error (data files missing or lacking fields)
  4  model error (cannot load a model, reach a server, or no API key)
  5  budget exhausted before anything could be scored
  6  the server rejected the API key (HTTP 401/403)
  10 `eval` gate failed (--min-score or a significant regression against --baseline)
  130 interrupted (Ctrl-C); a search prints the command that resumes it
"""

from __future__ import annotations

import typer

from promptopt.cli import compare_cmd, info_cmds, report_cmd
from promptopt.cli.eval_cmd import eval_command
from promptopt.cli.search_cmd import search

app = typer.Typer(
    help=(
        "Find better prompts for LLMs. Search with a published strategy, export the best "
        "prompt as JSON, re-score it later and gate CI on it.\n\n"
        "Start: promptopt search --task gsm8k --strategy ape --out best.json\n\n"
        "Then:  promptopt eval --task gsm8k --prompt best.json --min-score 0.4\n\n"
        "Exit codes: 0 ok, 2 usage/config error, 3 data error, 4 model error, "
        "5 budget exhausted, 6 API key rejected, 10 score gate failed, 130 interrupted."
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

app.command()(search)
app.command()(compare_cmd.compare)
app.command("eval")(eval_command)
app.command()(info_cmds.version)
app.command()(report_cmd.report)
tasks_app.command("list")(info_cmds.tasks_list)
strategies_app.command("list")(info_cmds.strategies_list)
strategies_app.command("show")(info_cmds.strategies_show)
models_app.command("list")(info_cmds.models_list)
cache_app.command("stats")(info_cmds.cache_stats)
cache_app.command("clear")(info_cmds.cache_clear)


def main() -> None:
    app()
