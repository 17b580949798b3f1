"""`promptopt report`: an HTML report of a search run or a comparison."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from promptopt.cli.common import console, fail, setup_logging
from promptopt.core.errors import PromptoptError


def report(
    path: Annotated[
        Path,
        typer.Argument(
            help="A search run directory (runs/...) or a compare directory (holding compare.json).",
            show_default=False,
            metavar="PATH",
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(help="Folder for report.html and its PNG charts (default: PATH/report)."),
    ] = None,
) -> None:
    """Write a self-contained HTML report (one file, charts embedded, no network).

    For a run: its dev score against model calls (every candidate as a point, the
    best so far as a line), the best prompt with its test score against the
    baseline, usage, the candidates, and the test examples the best prompt failed.

    For a compare directory: the same curves for every strategy and seed, the
    leaderboard as a chart (mean ± sd over seeds, baseline line) and as a table
    with the significance of each strategy against the best, and the best run's
    prompt and failed examples.

    Interrupted or older runs still get a report, with a note where data is missing.

    Example: promptopt report runs/20261122-101500-antonyms-ape --out /tmp/report
    """
    from promptopt.report import write_report

    setup_logging()  # warnings, e.g. unreadable lines of events.jsonl that were skipped
    try:
        written = write_report(path, out)
    except PromptoptError as error:
        raise fail(error) from None
    console.print(f"report: {written}")
