"""`promptopt compare`: several strategies x seeds at one budget, and a leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

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


def compare(
    task: TaskOpt = None,
    start: StartOpt = None,
    demo_format: DemoFormatOpt = None,
    demo_sets: DemoSetsOpt = DEFAULT_DEMO_SETS,
    strategies: Annotated[
        str, typer.Option(help="Comma-separated strategies, e.g. ape,reflexion,instructzero.")
    ] = "ape,reflexion",
    seeds: Annotated[
        int,
        typer.Option(help="Seeds per strategy (0..N-1); a later run with more adds the rest."),
    ] = 3,
    budget: Annotated[
        int | None,
        typer.Option(help="Max model calls of each search (the same for every strategy)."),
    ] = None,
    budget_tokens: Annotated[
        int | None, typer.Option(help="Max tokens of each search (the same for every strategy).")
    ] = None,
    out_dir: Annotated[
        Path, typer.Option(help="Comparison directory: runs/ and compare.json.")
    ] = Path("compare"),
    report: ReportOpt = True,
    param: Annotated[
        list[str],
        typer.Option(
            "--param",
            "-p",
            help="Strategy parameter strategy.key=value, repeatable, e.g. -p ape.num_subsamples=2.",
        ),
    ] = [],  # noqa: B006
    model: ModelOpt = "embedded",
    proposer: ProposerOpt = "embedded",
    base_url: BaseUrlOpt = None,
    proposer_base_url: ProposerBaseUrlOpt = None,
    api: ApiOpt = "chat",
    dtype: DtypeOpt = "auto",
    device: DeviceOpt = "cpu",
    batch_size: BatchOpt = 16,
    timeout: TimeoutOpt = None,
    max_concurrency: MaxConcurrencyOpt = None,
    model_option: ModelOptionOpt = None,
    proposer_option: ProposerOptionOpt = None,
    data_seed: DataSeedOpt = 0,
    train_size: TrainSizeOpt = None,
    dev_size: DevSizeOpt = None,
    test_size: TestSizeOpt = None,
    no_cache: NoCacheOpt = False,
    verbose: VerboseOpt = False,
    prices: PricesOpt = None,
    jobs: Annotated[
        int, typer.Option(help="Cells (strategy x seed) to run at once in local processes.")
    ] = 1,
    ray: Annotated[
        bool,
        typer.Option("--ray", help="Run every cell as a Ray task (pip install 'promptopt[ray]')."),
    ] = False,
    ray_address: Annotated[
        str | None,
        typer.Option(help="Ray cluster to join (implies --ray); default: a local Ray instance."),
    ] = None,
) -> None:
    """Run every strategy x seed at the same budget and data, then rank them.

    Each search is an ordinary run in OUT_DIR/runs/<strategy>-seed<k>/. Finished
    runs are reused and interrupted ones resumed, so rerunning with one more
    strategy only runs that one:

      promptopt compare --task antonyms --strategies ape,reflexion --seeds 3 --budget 200

      promptopt compare --task antonyms --strategies ape,reflexion,boosted --seeds 3 --budget 200

    The leaderboard shows the test score's mean and sd over seeds, calls, tokens,
    time and estimated cost, and whether each strategy differs significantly
    from the starting prompt (its own row) and from the best strategy (paired
    two-sided tests over the same test examples of every seed). OUT_DIR/compare.json
    holds it all; `promptopt report OUT_DIR` draws it.
    """
    from promptopt.core.domain import Budget
    from promptopt.llm.factory import parse_model_spec, with_model_options
    from promptopt.run.compare import CompareSpec, parse_strategy_params, run_compare

    setup_logging(verbose)
    try:
        if task is None:
            raise ConfigError("no task given: pass --task NAME (see `promptopt tasks list`)")
        names = [s.strip() for s in strategies.split(",") if s.strip()]
        if not names:
            raise ConfigError("no strategy given: pass --strategies ape,reflexion")
        if seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {seeds}")
        model_opts = {
            "dtype": dtype,
            "device": device,
            "batch_size": batch_size,
            "timeout": timeout,
            "max_concurrency": max_concurrency,
        }
        spec = CompareSpec(
            task=task,
            strategies=list(dict.fromkeys(names)),
            out_dir=out_dir,
            seeds=list(range(seeds)),
            budget=Budget(max_calls=budget, max_tokens=budget_tokens),
            params=parse_strategy_params(parse_params(param), names),
            target=with_model_options(
                parse_model_spec(model, base_url=base_url, api=api, **model_opts), model_option
            ),
            proposer=with_model_options(
                parse_model_spec(proposer, base_url=proposer_base_url, api=api, **model_opts),
                proposer_option,
                "--proposer-option",
            ),
            sizes=split_sizes(train_size, dev_size, test_size),
            data_seed=data_seed,
            use_cache=not no_cache,
            prices=str(prices) if prices else None,
            start=start,
            demo_format=demo_format,
            demo_sets=demo_sets,
        )
        try:
            with RichReporter() as reporter:
                data = run_compare(
                    spec, reporter, jobs=jobs, ray=ray or bool(ray_address), ray_address=ray_address
                )
        except KeyboardInterrupt:
            raise interrupted(
                f"the runs so far are saved in {out_dir}; rerun the same "
                "`promptopt compare` command to continue them"
            ) from None
    except PromptoptError as error:
        raise fail(error) from None
    print_leaderboard(data, out_dir)
    if report:
        write_report_after(out_dir)


def _money(value: float | None, local: bool) -> str:
    if value is None:
        return "no price known"
    return "local ($0)" if local else f"${value:.4f}"


def _vs_best(row: dict[str, Any]) -> str:
    vs = row["vs_best"]
    if row["best"]:
        return "best"
    if vs is None:
        return "no paired examples"
    mark = "significant" if vs["significant"] else "not significant"
    return f"{vs['difference']:+.3f}, p={vs['p_value']:.3g} ({mark})"


VERDICT_MARKUP = {"worse": "[bold red]WORSE[/]", "better": "[bold green]BETTER[/]"}
"""The vs-start marker, only when the paired test is significant: a strategy worse than
the prompt the user already had is the one result nobody should miss, so it stands out
(also in plain text, where colour is gone)."""


def _vs_start(row: dict[str, Any]) -> str:
    if row.get("kind") == "start":
        return "-"
    vs = row.get("vs_start")
    if vs is None:
        return "no paired examples"
    verdict = VERDICT_MARKUP.get(str(row.get("vs_start_verdict")), "")
    return f"{vs['difference']:+.3f}, p={vs['p_value']:.3g} {verdict}".rstrip()


def _improved(row: dict[str, Any]) -> str:
    improved = row.get("improved")
    return f"{improved['count']}/{improved['of']}" if improved else "-"


def _start_summary(board: list[dict[str, Any]]) -> str | None:
    """One line saying whether any strategy beat the start, the question the start row
    is there to answer (None: nothing was tested against the start)."""
    tested = [r for r in board if r.get("vs_start") is not None]
    if not tested:
        return None
    better = [r["strategy"] for r in tested if r.get("vs_start_verdict") == "better"]
    worse = [r["strategy"] for r in tested if r.get("vs_start_verdict") == "worse"]
    line = (
        f"Significantly better than the start prompt: {', '.join(better)}."
        if better
        else "No strategy is significantly better than the start prompt."
    )
    if worse:
        line += f" Significantly worse: {', '.join(worse)}."
    return line


def print_leaderboard(data: dict[str, Any], out_dir: Path) -> None:
    from promptopt.llm.backend import is_local

    local = is_local(data["settings"]["target"]) and is_local(data["settings"]["proposer"])
    seeds = len(data["seeds"])
    board = data["leaderboard"]
    show_improved = any(r.get("improved") for r in board)
    table = Table(title=f"{data['task']}: test score over {seeds} seed(s), best first")
    columns = [
        ("strategy", "left"),
        ("test mean", "right"),
        ("sd", "right"),
        ("seeds", "right"),
        ("calls (from cache)", "right"),
        ("tokens", "right"),
        ("time s", "right"),
        ("est. cost", "right"),
        ("vs start", "left"),
        ("vs best", "left"),
    ]
    for name, justify in columns + ([("improved", "right")] if show_improved else []):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in board:
        cells = [
            row["strategy"],
            f"{row['mean']:.3f}",
            f"{row['sd']:.3f}",
            str(row["n_seeds"]),
            f"{row['calls_mean']:.0f} ({row.get('cache_hits_mean', 0):.0f})",
            f"{row['tokens_mean']:.0f}",
            f"{row['wall_s_mean']:.1f}",
            _money(row["cost_usd_mean"], local),
            _vs_start(row),
            _vs_best(row),
        ]
        table.add_row(*cells, *([_improved(row)] if show_improved else []))
    console.print(table)
    if summary := _start_summary(board):
        console.print(summary)
    for warning in data.get("warnings") or []:
        console.print(f"[yellow]Warning:[/] {escape(warning)}")
    if any(r["stopped_by_budget"] for r in data["runs"]):
        stopped = sorted({r["strategy"] for r in data["runs"] if r["stopped_by_budget"]})
        console.print(f"Stopped at the budget: {', '.join(stopped)} (best so far kept).")
    console.print(
        "vs start and vs best: paired two-sided tests on the same test examples, pooled "
        "over seeds; WORSE/BETTER mark a significant difference from the start prompt."
        + (" improved: runs whose search beat the start prompt on dev." if show_improved else "")
    )
    console.print(
        "Calls count every model request, also those the shared cache served (in "
        "brackets): each strategy gets the same work under the budget, and cached "
        "requests only make it faster."
    )
    console.print(f"Wrote {out_dir / 'compare.json'}")
