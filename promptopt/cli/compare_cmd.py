"""`promptopt compare`: several strategies x seeds at one budget, and a leaderboard."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from promptopt.cli.common import (
    ApiOpt,
    BaseUrlOpt,
    BatchOpt,
    DataSeedOpt,
    DeviceOpt,
    DevSizeOpt,
    DtypeOpt,
    ModelOpt,
    NoCacheOpt,
    PricesOpt,
    ProposerBaseUrlOpt,
    ProposerOpt,
    ReportOpt,
    RichReporter,
    TaskOpt,
    TestSizeOpt,
    TrainSizeOpt,
    console,
    fail,
    parse_params,
    split_sizes,
    write_report_after,
)
from promptopt.errors import ConfigError, PromptoptError


def compare(
    task: TaskOpt = None,
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
    dtype: DtypeOpt = "bfloat16",
    device: DeviceOpt = "cpu",
    batch_size: BatchOpt = 16,
    data_seed: DataSeedOpt = 0,
    train_size: TrainSizeOpt = None,
    dev_size: DevSizeOpt = None,
    test_size: TestSizeOpt = None,
    no_cache: NoCacheOpt = False,
    prices: PricesOpt = None,
) -> None:
    """Run every strategy x seed at the same budget and data, then rank them.

    Each search is an ordinary run in OUT_DIR/runs/<strategy>-seed<k>/. Finished
    runs are reused and interrupted ones resumed, so rerunning with one more
    strategy only runs that one:

      promptopt compare --task antonyms --strategies ape,reflexion --seeds 3 --budget 200

      promptopt compare --task antonyms --strategies ape,reflexion,boosted --seeds 3 --budget 200

    The leaderboard shows the test score's mean and sd over seeds, calls, tokens,
    time and estimated cost, and whether each strategy differs significantly
    from the best (a paired two-sided test over the same test examples of every
    seed). OUT_DIR/compare.json holds it all; `promptopt report OUT_DIR` draws it.
    """
    from promptopt.compare import CompareSpec, parse_strategy_params, run_compare
    from promptopt.llm.factory import parse_model_spec
    from promptopt.types import Budget

    try:
        if task is None:
            raise ConfigError("no task given: pass --task NAME (see `promptopt tasks list`)")
        names = [s.strip() for s in strategies.split(",") if s.strip()]
        if not names:
            raise ConfigError("no strategy given: pass --strategies ape,reflexion")
        if seeds < 1:
            raise ConfigError(f"--seeds must be at least 1, got {seeds}")
        hf_opts = {"dtype": dtype, "device": device, "batch_size": batch_size}
        spec = CompareSpec(
            task=task,
            strategies=list(dict.fromkeys(names)),
            out_dir=out_dir,
            seeds=list(range(seeds)),
            budget=Budget(max_calls=budget, max_tokens=budget_tokens),
            params=parse_strategy_params(parse_params(param), names),
            target=parse_model_spec(model, base_url=base_url, api=api, **hf_opts),
            proposer=parse_model_spec(proposer, base_url=proposer_base_url, api=api, **hf_opts),
            sizes=split_sizes(train_size, dev_size, test_size),
            data_seed=data_seed,
            use_cache=not no_cache,
            prices=str(prices) if prices else None,
        )
        with RichReporter() as reporter:
            data = run_compare(spec, reporter)
    except PromptoptError as error:
        raise fail(error) from None
    print_leaderboard(data, out_dir)
    if report:
        write_report_after(out_dir)


def _money(value: float | None, local: bool) -> str:
    if value is None:
        return "no price known"
    return "local ($0)" if local else f"${value:.4f}"


def print_leaderboard(data: dict[str, Any], out_dir: Path) -> None:
    local = data["settings"]["target"]["backend"] == "hf" and (
        data["settings"]["proposer"]["backend"] == "hf"
    )
    seeds = len(data["seeds"])
    table = Table(title=f"{data['task']}: test score over {seeds} seed(s), best first")
    for name, justify in [
        ("strategy", "left"),
        ("test mean", "right"),
        ("sd", "right"),
        ("seeds", "right"),
        ("calls (from cache)", "right"),
        ("tokens", "right"),
        ("time s", "right"),
        ("est. cost", "right"),
        ("vs best", "left"),
    ]:
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for row in data["leaderboard"]:
        vs = row["vs_best"]
        if row["best"]:
            verdict = "best"
        elif vs is None:
            verdict = "no paired examples"
        else:
            mark = "significant" if vs["significant"] else "not significant"
            verdict = f"{vs['difference']:+.3f}, p={vs['p_value']:.3g} ({mark})"
        table.add_row(
            row["strategy"],
            f"{row['mean']:.3f}",
            f"{row['sd']:.3f}",
            str(row["n_seeds"]),
            f"{row['calls_mean']:.0f} ({row.get('cache_hits_mean', 0):.0f})",
            f"{row['tokens_mean']:.0f}",
            f"{row['wall_s_mean']:.1f}",
            _money(row["cost_usd_mean"], local),
            verdict,
        )
    console.print(table)
    if any(r["stopped_by_budget"] for r in data["runs"]):
        stopped = sorted({r["strategy"] for r in data["runs"] if r["stopped_by_budget"]})
        console.print(f"Stopped at the budget: {', '.join(stopped)} (best so far kept).")
    console.print(
        "Calls count every model request, also those the shared cache served (in "
        "brackets): each strategy gets the same work under the budget, and cached "
        "requests only make it faster."
    )
    console.print(f"Wrote {out_dir / 'compare.json'}")
