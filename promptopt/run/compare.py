"""Compare strategies fairly: every strategy x seed at the same budget, task split
and models, then a leaderboard with paired significance against the best.

    DIR/runs/<strategy>-seed<k>/   one ordinary run directory per search
    DIR/compare.json               settings, one row per run, the leaderboard

A run whose result.json exists is reused as is and an interrupted one is
resumed from its journal, so rerunning `compare` (or adding a strategy) only
runs what is missing. Settings that change what the runs mean (task, budget,
sizes, models) are fixed per DIR: mixing them would compare unlike runs; more
seeds can be added later.

Significance pools the test examples over seeds: pairs are (seed, example id)
from each run's test_examples.json, compared with a two-sided paired test
(McNemar for right/wrong scores, else a paired bootstrap).

The starting prompt (what every search starts from and is kept unless beaten) is a
leaderboard row of its own, and every strategy is also tested against it: a ranking
of strategies alone cannot show that none of them beat the prompt the user had.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from promptopt.core.errors import ConfigError
from promptopt.core.files import require_writable
from promptopt.core.registry import get_strategy
from promptopt.data.task import check_requested_sizes
from promptopt.llm.pricing import load_prices
from promptopt.run.compare_files import (
    example_scores,
    read_result,
    read_run_file,
    rerun_fix,
    start_example_scores,
)
from promptopt.run.compare_jobs import run_local, run_ray
from promptopt.run.compare_results import (
    COMPARE_FILE,
    FORMAT,
    FORMAT_VERSION,
    CompareResult,
    RunRow,
    read_compare,
)
from promptopt.run.compare_spec import (
    CompareSpec,
    budget_dict,
    check_compatible,
    parse_strategy_params,
    run_dir_name,
)
from promptopt.run.leaderboard import (
    START_LABEL,
    build_leaderboard,
    pick_start_scores,
    start_verdict,
)
from promptopt.run.search import check_budget, check_search_inputs, run_search
from promptopt.run.store import load_run_config, write_json_atomic
from promptopt.strategies.base import Reporter, SilentReporter, build_config

__all__ = [
    "COMPARE_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "START_LABEL",
    "CompareResult",
    "CompareSpec",
    "RunRow",
    "build_leaderboard",
    "check_compatible",
    "example_scores",
    "load_compare",
    "parse_strategy_params",
    "pick_start_scores",
    "read_result",
    "read_run_file",
    "run_compare",
    "start_example_scores",
    "start_verdict",
]


def load_compare(out_dir: Path) -> dict[str, Any] | None:
    """DIR/compare.json as JSON (None: there is none yet)."""
    saved = read_compare(out_dir)
    return saved.to_dict() if saved is not None else None


def _backfill_improved(out_dir: Path, runs: list[RunRow]) -> None:
    """Run rows saved before compare read `improved` get it from their result.json, so a
    rerun shows the counts without rerunning any search."""
    for run in runs:
        path = out_dir / run.run_dir / "result.json"
        if run.improved is None and path.is_file():
            improved = read_result(path, rerun_fix(out_dir, run.to_dict())).get("improved")
            run.improved = improved if isinstance(improved, bool) else None


def _run_one(spec: CompareSpec, strategy: str, seed: int, reporter: Reporter) -> dict[str, Any]:
    """The export of one strategy x seed: reused, resumed, or run."""
    run_dir = spec.out_dir / "runs" / run_dir_name(strategy, seed)
    result = run_dir / "result.json"
    if result.is_file():
        row = {"strategy": strategy, "seed": seed, "run_dir": f"runs/{run_dir.name}"}
        return read_result(result, rerun_fix(spec.out_dir, row))
    search_spec = spec.search_spec(strategy, seed, run_dir)
    if (run_dir / "config.json").is_file():
        load_run_config(run_dir)
        search_spec.resume = True
        reporter.note(f"resuming {run_dir_name(strategy, seed)}")
    return run_search(search_spec, reporter)


def run_compare(
    spec: CompareSpec,
    reporter: Reporter | None = None,
    jobs: int = 1,
    ray: bool = False,
    ray_address: str | None = None,
) -> dict[str, Any]:
    """Run what is missing, then write and return DIR/compare.json. `jobs` > 1 runs that
    many cells at once in local processes, `ray` runs every cell as a Ray task (see
    compare_jobs.py); either way compare.json is the same as a sequential run's."""
    reporter = reporter or SilentReporter()
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    for strategy in spec.strategies:
        # Unknown names and bad parameters fail before any run, not after the
        # strategies listed before them have run.
        build_config(get_strategy(strategy).Config, spec.params.get(strategy, {}))
    if not spec.seeds:
        raise ConfigError("--seeds must be at least 1")
    check_budget(spec.budget)
    check_requested_sizes(spec.sizes)
    load_prices(spec.prices)
    require_writable(spec.out_dir, "--out-dir", directory=True)
    try:
        spec.out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create --out-dir {spec.out_dir} ({exc.strerror}): choose another --out-dir"
        ) from None
    saved = read_compare(spec.out_dir)
    data = CompareResult(
        task=spec.task,
        budget=budget_dict(spec.budget),
        seeds=list(spec.seeds),
        settings=spec.settings(),
    )
    if saved is not None:
        check_compatible(saved.to_dict(), data.to_dict(), spec.out_dir)
        data.settings["params"] = {**saved.settings.get("params", {}), **data.settings["params"]}
        data.runs = [r for r in saved.runs if not _deleted(spec, r)]
        data.seeds = sorted(set(saved.seeds) | set(spec.seeds))
    order = list(dict.fromkeys([r.strategy for r in data.runs] + spec.strategies))
    todo = [
        (strategy, seed)
        for strategy in spec.strategies
        for seed in spec.seeds
        if not any(r.strategy == strategy and r.seed == seed for r in data.runs)
    ]
    if todo:
        # Data and inputs once, before the first search loads a model; every run
        # shares the task, its sizes and the target, so one check holds for all.
        first = spec.search_spec(todo[0][0], todo[0][1], spec.out_dir / "runs")
        task = first.load_task()
        check_search_inputs(first, task, first.resolve_start(task))

    def add(strategy: str, seed: int, export: dict[str, Any]) -> None:
        rel = str(Path("runs") / run_dir_name(strategy, seed))
        data.runs.append(RunRow.from_export(export, strategy, seed, rel))
        data.runs.sort(key=lambda r: (order.index(r.strategy), r.seed))
        _save(spec.out_dir, data)  # progress survives an interrupted comparison

    def finished(cell: tuple[str, int]) -> None:
        add(*cell, _run_one(spec, *cell, SilentReporter()))  # reads the worker's result.json

    if todo and (ray or jobs > 1):
        (spec.out_dir / "runs").mkdir(exist_ok=True)
        if ray:
            run_ray(spec, todo, ray_address, reporter, _run_one, finished)
        else:
            run_local(spec, todo, jobs, reporter, _run_one, finished)
    else:
        for strategy, seed in todo:
            reporter.phase(f"== {strategy}, seed {seed} ==")
            add(strategy, seed, _run_one(spec, strategy, seed, reporter))
    _backfill_improved(spec.out_dir, data.runs)
    runs = [run.to_dict() for run in data.runs]
    start, data.warnings = pick_start_scores(
        runs, lambda run: start_example_scores(spec.out_dir, run)
    )
    data.leaderboard = build_leaderboard(runs, lambda run: example_scores(spec.out_dir, run), start)
    return _save(spec.out_dir, data)


def _deleted(spec: CompareSpec, run: RunRow) -> bool:
    """A run of this compare's strategies and seeds whose directory is gone: run again
    (deleting it is how a damaged run is redone, see `compare_files.rerun_fix`)."""
    asked = run.strategy in spec.strategies and run.seed in spec.seeds
    return asked and not (spec.out_dir / run.run_dir).exists()


def _save(out_dir: Path, data: CompareResult) -> dict[str, Any]:
    """Write compare.json; returns what it holds."""
    written = data.to_dict()
    write_json_atomic(out_dir / COMPARE_FILE, written)
    return written
