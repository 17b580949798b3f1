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

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.core.domain import Budget
from promptopt.core.errors import ConfigError
from promptopt.core.files import read_utf8, require_writable
from promptopt.core.registry import get_strategy
from promptopt.data.task import check_requested_sizes
from promptopt.evaluation.stats import compare_paired
from promptopt.llm.factory import ModelSpec, default_model_spec, model_identity
from promptopt.llm.pricing import load_prices
from promptopt.run.search import (
    TEST_EXAMPLES_FILE,
    SearchSpec,
    check_budget,
    check_search_inputs,
    run_search,
)
from promptopt.run.store import load_run_config, write_json_atomic
from promptopt.strategies.base import Reporter, SilentReporter, build_config
from promptopt.strategies.demo_stage import DEFAULT_DEMO_SETS

COMPARE_FILE = "compare.json"
FORMAT = "promptopt.compare"
FORMAT_VERSION = 1
START_LABEL = "start (baseline)"
"""The leaderboard row of the starting prompt (kind "start"); strategy rows have kind "strategy"."""
FIXED_SETTINGS = (
    "task",
    "budget",
    "sizes",
    "data_seed",
    "target",
    "proposer",
    "start",
    "demo_format",
    "demo_sets",
)
"""What must match for a later compare in the same DIR (params are checked per strategy).
Seeds may grow: `--seeds 5` after `--seeds 3` runs seeds 3 and 4 of the strategies given."""


@dataclass
class CompareSpec:
    task: str
    strategies: list[str]
    out_dir: Path
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    budget: Budget = field(default_factory=Budget)
    params: dict[str, dict[str, str]] = field(default_factory=dict)
    """Per-strategy parameters: {"ape": {"num_subsamples": "2"}}."""
    target: ModelSpec = field(default_factory=default_model_spec)
    proposer: ModelSpec = field(default_factory=default_model_spec)
    sizes: dict[str, int] = field(default_factory=dict)
    data_seed: int = 0
    use_cache: bool = True
    prices: str | None = None
    start: str | None = None
    """`--start` for every run: an export, a text file or an instruction."""
    demo_format: str | None = None
    demo_sets: int = DEFAULT_DEMO_SETS

    def settings(self) -> dict[str, Any]:
        return {
            "sizes": dict(sorted(self.sizes.items())),
            "data_seed": self.data_seed,
            "target": self.target.resolved().to_dict(),
            "proposer": self.proposer.resolved().to_dict(),
            "params": {s: dict(sorted(p.items())) for s, p in sorted(self.params.items())},
            "use_cache": self.use_cache,
            "start": self.start,
            "demo_format": self.demo_format,
            "demo_sets": self.demo_sets,
        }

    def search_spec(self, strategy: str, seed: int, run_dir: Path) -> SearchSpec:
        return SearchSpec(
            task=self.task,
            strategy=strategy,
            params=dict(self.params.get(strategy, {})),
            seed=seed,
            target=self.target,
            proposer=self.proposer,
            sizes=dict(self.sizes),
            data_seed=self.data_seed,
            budget=self.budget,
            run_dir=run_dir,
            use_cache=self.use_cache,
            prices=self.prices,
            start=self.start,
            demo_format=self.demo_format,
            demo_sets=self.demo_sets,
        )


def parse_strategy_params(values: dict[str, str], strategies: list[str]) -> dict[str, dict]:
    """`-p strategy.key=value` pairs (already split at '=') into per-strategy params."""
    out: dict[str, dict[str, str]] = {}
    for key, value in values.items():
        strategy, dot, name = key.partition(".")
        if not dot or not name:
            raise ConfigError(
                f"compare parameters name their strategy: write -p ape.{key}={value}, "
                f"not -p {key}={value}"
            )
        if strategy not in strategies:
            raise ConfigError(
                f"-p {key}={value} is for '{strategy}', which is not in --strategies: "
                "add it or drop the parameter"
            )
        out.setdefault(strategy, {})[name] = value
    return out


def run_dir_name(strategy: str, seed: int) -> str:
    return f"{strategy}-seed{seed}"


def _budget_dict(budget: Budget) -> dict[str, int | None]:
    return {"max_calls": budget.max_calls, "max_tokens": budget.max_tokens}


def _fixed(data: dict[str, Any]) -> dict[str, Any]:
    settings = data.get("settings", {})
    return {
        "task": data.get("task"),
        "budget": data.get("budget"),
        **{k: settings.get(k) for k in ("sizes", "data_seed")},
        # A model's timeout and concurrency may differ between compares: not its identity.
        **{k: model_identity(settings.get(k)) for k in ("target", "proposer")},
        "start": settings.get("start"),
        "demo_format": settings.get("demo_format"),
        # Compares saved before the demonstration stage existed ran without it.
        "demo_sets": settings.get("demo_sets", 0),
    }


OPTION_OF = {
    "task": "--task",
    "budget": "--budget/--budget-tokens",
    "sizes": "--train-size/--dev-size/--test-size",
    "data_seed": "--data-seed",
    "target": "--model",
    "proposer": "--proposer",
    "start": "--start",
    "demo_format": "--demo-format",
    "demo_sets": "--demo-sets",
}


def check_compatible(saved: dict[str, Any], new: dict[str, Any], out_dir: Path) -> None:
    """Refuse to mix unlike runs in one compare directory (one line, naming the fix)."""
    old_fixed, new_fixed = _fixed(saved), _fixed(new)
    for key in FIXED_SETTINGS:
        if old_fixed[key] != new_fixed[key]:
            raise ConfigError(
                f"{out_dir} holds a comparison made with {key}={old_fixed[key]!r}, not "
                f"{new_fixed[key]!r}: rerun with the same {OPTION_OF[key]} "
                "or pick another --out-dir"
            )
    old_params = saved.get("settings", {}).get("params", {})
    new_params = new.get("settings", {}).get("params", {})
    done = {r["strategy"] for r in saved.get("runs", [])}
    for strategy in done & set(new_params) | done & set(old_params):
        if strategy in new_params and old_params.get(strategy, {}) != new_params[strategy]:
            raise ConfigError(
                f"{out_dir} ran {strategy} with parameters {old_params.get(strategy, {})!r}, "
                f"not {new_params[strategy]!r}: use the same -p {strategy}.KEY=VALUE "
                "or pick another --out-dir"
            )


def load_compare(out_dir: Path) -> dict[str, Any] | None:
    path = out_dir / COMPARE_FILE
    if not path.is_file():
        return None
    fix = "delete it (runs are kept) and rerun"
    try:
        data = json.loads(read_utf8(path, "comparison", fix))
    except json.JSONDecodeError:
        raise ConfigError(f"{path} is corrupt: {fix}") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ConfigError(f"{path} is not a promptopt comparison: pick another --out-dir")
    return data


# -- one run --------------------------------------------------------------------------
def run_row(export: dict[str, Any], strategy: str, seed: int, run_dir: str) -> dict[str, Any]:
    """A compare.json run row from a search export."""
    usage = export["usage"]
    search = usage["search"]
    scores = export["scores"]
    cost = usage.get("cost") or {}
    timings = export.get("timings", {})
    return {
        "strategy": strategy,
        "seed": seed,
        "run_dir": run_dir,
        "test_score": float(scores["test"]["score"]),
        "test_n": int(scores["test"]["n"]),
        "baseline_test_score": float(scores["baseline_test"]["score"]),
        "calls": int(search["calls"]),
        "cache_hits": int(search.get("cache_hits", 0)),
        "tokens": int(search["prompt_tokens"] + search["completion_tokens"]),
        "wall_s": round(
            float(timings.get("search_s", 0)) + float(timings.get("test_eval_s", 0)), 2
        ),
        "cost_usd": cost.get("total_usd"),
        "stopped_by_budget": bool(export.get("stopped_by_budget", False)),
        "improved": _improved(export),
    }


def _improved(export: dict[str, Any]) -> bool | None:
    """Whether the search beat its starting prompt on dev (None: the export predates it)."""
    value = export.get("improved")
    return value if isinstance(value, bool) else None


def _backfill_improved(out_dir: Path, runs: list[dict[str, Any]]) -> None:
    """Run rows saved before compare read `improved` get it from their result.json, so a
    rerun shows the counts without rerunning any search."""
    for run in runs:
        path = out_dir / run["run_dir"] / "result.json"
        if "improved" not in run and path.is_file():
            run["improved"] = _improved(read_result(path, _rerun_fix(out_dir, run)))


def _rerun_fix(out_dir: Path, run: dict[str, Any]) -> str:
    """How to get past a damaged file of a run: a compare runs a cell whose run
    directory is gone again (from the call cache, if it still holds the calls)."""
    strategy, seed = run["strategy"], run["seed"]
    return (
        f"delete {out_dir / run['run_dir']} and rerun this compare "
        f"(with {strategy} in --strategies and seed {seed}): that run is made again"
    )


def read_run_file(path: Path, fix: str) -> Any:
    """The JSON of a file a run wrote: a truncated, non-UTF-8 or garbled one (a disk
    that filled, a copy that stopped) is one line naming it and `fix`, not a traceback."""
    text = read_utf8(path, "run file", fix)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            f"{path} is damaged (not valid JSON: {exc.msg}, line {exc.lineno}): {fix}"
        ) from None


RESULT_NUMBERS = (
    "usage.search.calls",
    "usage.search.prompt_tokens",
    "usage.search.completion_tokens",
    "scores.test.score",
    "scores.test.n",
    "scores.baseline_test.score",
)
"""What a compare row needs of a run's result.json (`run_row`), all numbers."""
OPTIONAL_NUMBERS = ("usage.search.cache_hits", "timings.search_s", "timings.test_eval_s")


def read_result(path: Path, fix: str) -> dict[str, Any]:
    """A run's result.json with the fields `run_row` reads, of the types it needs."""
    export = read_run_file(path, fix)
    if not isinstance(export, dict):
        raise ConfigError(f"{path} is damaged (not a JSON object): {fix}")
    for dotted in RESULT_NUMBERS + OPTIONAL_NUMBERS:
        value = _field(export, dotted)
        if not _is_num(value) and not (value is None and dotted in OPTIONAL_NUMBERS):
            raise _wrong_field(path, dotted, "a number", value, fix)
    cost = _field(export, "usage.cost")
    if cost is not None and not isinstance(cost, dict):
        raise _wrong_field(path, "usage.cost", "an object", cost, fix)
    total = (cost or {}).get("total_usd")
    if total is not None and not _is_num(total):
        raise _wrong_field(path, "usage.cost.total_usd", "a number", total, fix)
    return export


def _field(data: dict[str, Any], dotted: str) -> Any:
    """`data` at a dotted path; None where a level is missing or not an object."""
    value: Any = data
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _wrong_field(path: Path, dotted: str, expected: str, value: Any, fix: str) -> ConfigError:
    shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
    return ConfigError(f"{path} is damaged ({dotted} must be {expected}, got {shown}): {fix}")


def _run_one(spec: CompareSpec, strategy: str, seed: int, reporter: Reporter) -> dict[str, Any]:
    """The export of one strategy x seed: reused, resumed, or run."""
    run_dir = spec.out_dir / "runs" / run_dir_name(strategy, seed)
    result = run_dir / "result.json"
    if result.is_file():
        row = {"strategy": strategy, "seed": seed, "run_dir": f"runs/{run_dir.name}"}
        return read_result(result, _rerun_fix(spec.out_dir, row))
    search_spec = spec.search_spec(strategy, seed, run_dir)
    if (run_dir / "config.json").is_file():
        load_run_config(run_dir)
        search_spec.resume = True
        reporter.note(f"resuming {run_dir_name(strategy, seed)}")
    return run_search(search_spec, reporter)


def _example_rows(out_dir: Path, run: dict[str, Any], which: str) -> dict[str, float]:
    path = out_dir / run["run_dir"] / TEST_EXAMPLES_FILE
    if not path.is_file():
        return {}
    fix = _rerun_fix(out_dir, run)
    data = read_run_file(path, fix)
    rows = data.get(which) if isinstance(data, dict) else None
    if not isinstance(data, dict) or not isinstance(rows, list | None):
        raise _wrong_field(path, which, "a list of test examples", rows, fix)
    scores: dict[str, float] = {}
    for i, row in enumerate(rows or []):
        if not isinstance(row, dict) or "id" not in row or not _is_num(row.get("score")):
            raise _wrong_field(path, f"{which}[{i}]", 'an object with "id" and "score"', row, fix)
        scores[str(row["id"])] = float(row["score"])
    return scores


def example_scores(out_dir: Path, run: dict[str, Any]) -> dict[str, float]:
    """Per test example scores of a run's best prompt, keyed by example id."""
    return _example_rows(out_dir, run, "best")


def start_example_scores(out_dir: Path, run: dict[str, Any]) -> dict[str, float]:
    """Per test example scores of a run's starting prompt ({} for runs that predate them)."""
    return _example_rows(out_dir, run, "baseline")


def pick_start_scores(
    runs: list[dict[str, Any]],
    start_scores: Callable[[dict[str, Any]], dict[str, float]],
) -> tuple[dict[str, float], list[str]]:
    """The starting prompt's per-example test scores to pair against, and warnings.

    Every run scores the same start prompt on the same test examples, so all runs
    should agree; the first run that has the scores is used and any run that
    disagrees is named in a warning (a sign of a non-deterministic model or of runs
    made with different data), rather than silently averaged away.
    """
    chosen: dict[str, float] = {}
    source = ""
    warnings: list[str] = []
    for run in runs:
        mine = start_scores(run)
        if not mine:
            continue
        if not chosen:
            chosen, source = mine, str(run["run_dir"])
        elif not _same_scores(mine, chosen):
            warnings.append(_disagreement(str(run["run_dir"]), mine, source, chosen))
    return chosen, warnings


def _same_scores(a: dict[str, float], b: dict[str, float]) -> bool:
    return a.keys() == b.keys() and all(math.isclose(a[k], b[k], abs_tol=1e-9) for k in a)


def _disagreement(
    run_dir: str, mine: dict[str, float], source: str, chosen: dict[str, float]
) -> str:
    """Say how far a run's start scores are from the chosen ones, so the cause can be found."""
    shared = set(mine) & set(chosen)
    differ = sum(1 for k in shared if not math.isclose(mine[k], chosen[k], abs_tol=1e-9))
    what = [f"scores {differ} of {len(shared)} shared test examples differently"] if differ else []
    if only := len(set(mine) ^ set(chosen)):
        what.append(f"has {only} test example id(s) the other lacks")
    return (
        f"the start prompt's test scores differ between runs: {run_dir} {' and '.join(what)} "
        f"than {source}; the leaderboard pairs against {source}"
    )


# -- the leaderboard (pure) --------------------------------------------------------------
def _mean(values: list[float]) -> float:
    return float(statistics.fmean(values)) if values else 0.0


def _sd(values: list[float]) -> float:
    return float(statistics.stdev(values)) if len(values) > 1 else 0.0


def _improved_count(group: list[dict[str, Any]]) -> dict[str, int] | None:
    """How many runs beat their start ("count" of "of" runs that report it; None: none do)."""
    known = [r["improved"] for r in group if isinstance(r.get("improved"), bool)]
    return {"count": sum(known), "of": len(known)} if known else None


def _strategy_row(strategy: str, group: list[dict[str, Any]]) -> dict[str, Any]:
    test = [r["test_score"] for r in group]
    costs = [r.get("cost_usd") for r in group]
    return {
        "strategy": strategy,
        "kind": "strategy",
        "mean": _mean(test),
        "sd": _sd(test),
        "n_seeds": len(group),
        "calls_mean": _mean([r["calls"] for r in group]),
        "cache_hits_mean": _mean([r.get("cache_hits", 0) for r in group]),
        "tokens_mean": _mean([r["tokens"] for r in group]),
        "wall_s_mean": round(_mean([r["wall_s"] for r in group]), 2),
        "cost_usd_mean": None
        if any(c is None for c in costs)
        else _mean([float(c) for c in costs if c is not None]),
        "best": False,
        "vs_best": None,
        "vs_start": None,
        "vs_start_verdict": None,
        "improved": _improved_count(group),
    }


def _start_row(runs: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The starting prompt as a row: its test score over every run (the same prompt on
    the same examples, so sd is 0 unless runs disagree) and no search cost."""
    scores = [
        float(r["baseline_test_score"]) for r in runs if _is_num(r.get("baseline_test_score"))
    ]
    if not scores:
        return None
    return {
        "strategy": START_LABEL,
        "kind": "start",
        "mean": _mean(scores),
        "sd": _sd(scores),
        "n_seeds": len({r["seed"] for r in runs}),
        "calls_mean": 0.0,
        "cache_hits_mean": 0.0,
        "tokens_mean": 0.0,
        "wall_s_mean": 0.0,
        "cost_usd_mean": 0.0,
        "best": False,
        "vs_best": None,
        "vs_start": None,
        "vs_start_verdict": None,
        "improved": None,
    }


def _is_num(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _paired(
    mine: dict[tuple[int, str], float], other: dict[tuple[int, str], float]
) -> dict[str, Any] | None:
    """Two-sided paired test of `mine` against `other` on the (seed, example id) pairs
    both have, in a fixed order so the bootstrap is reproducible (None: no pairs)."""
    keys = sorted(set(mine) & set(other))
    if not keys:
        return None
    result = compare_paired(
        [mine[k] for k in keys], [other[k] for k in keys], alternative="two-sided"
    )
    return result.to_dict()


def start_verdict(vs_start: dict[str, Any] | None) -> str | None:
    """The marker a reader scans for: better or worse than the start only when the
    paired test says so, else "not significant" (None: no pairs to test)."""
    if vs_start is None:
        return None
    if not vs_start["significant"]:
        return "not significant"
    return "better" if vs_start["difference"] > 0 else "worse"


def build_leaderboard(
    runs: list[dict[str, Any]],
    scores: Callable[[dict[str, Any]], dict[str, float]],
    start: dict[str, float] | None = None,
) -> list[dict[str, Any]]:
    """Per strategy: mean and sd of test score over seeds, usage means, a paired
    two-sided test against the best strategy and one against the starting prompt,
    both on the (seed, example id) pairs the two have; plus a row for the start.

    `scores(run)` gives a run's per-example test scores by example id, `start` the
    starting prompt's (the same for every seed; None or {}: no test against it).
    Best first: highest mean, then fewer calls, then name; the start row ranks
    among the strategies (ahead on ties: it costs no search) but is never "best".
    The best strategy has vs_best None; the start row has vs_start None.
    """
    by_strategy: dict[str, list[dict[str, Any]]] = {}
    for run in sorted(runs, key=lambda r: r["seed"]):
        by_strategy.setdefault(run["strategy"], []).append(run)
    rows = [_strategy_row(strategy, group) for strategy, group in by_strategy.items()]
    if not rows:
        return rows
    start_row = _start_row(runs)
    rows += [start_row] if start_row else []
    rows.sort(key=lambda r: (-r["mean"], r["calls_mean"], r["kind"] != "start", r["strategy"]))
    pooled = {
        strategy: {(r["seed"], str(ex)): v for r in group for ex, v in scores(r).items()}
        for strategy, group in by_strategy.items()
    }
    seeds = sorted({r["seed"] for r in runs})
    start_pooled = {(seed, str(ex)): v for seed in seeds for ex, v in (start or {}).items()}
    best = next(r for r in rows if r["kind"] == "strategy")
    best["best"] = True
    for row in rows:
        mine = start_pooled if row["kind"] == "start" else pooled[row["strategy"]]
        if row is not best:
            row["vs_best"] = _paired(mine, pooled[best["strategy"]])
        if row["kind"] == "strategy":
            row["vs_start"] = _paired(mine, start_pooled)
            row["vs_start_verdict"] = start_verdict(row["vs_start"])
    return rows


# -- the whole comparison -----------------------------------------------------------------
def run_compare(spec: CompareSpec, reporter: Reporter | None = None) -> dict[str, Any]:
    """Run what is missing, then write and return DIR/compare.json."""
    reporter = reporter or SilentReporter()
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
    saved = load_compare(spec.out_dir)
    data: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "task": spec.task,
        "budget": _budget_dict(spec.budget),
        "seeds": list(spec.seeds),
        "settings": spec.settings(),
        "runs": [],
        "warnings": [],
        "leaderboard": [],
    }
    if saved is not None:
        check_compatible(saved, data, spec.out_dir)
        data["settings"]["params"] = {
            **saved.get("settings", {}).get("params", {}),
            **data["settings"]["params"],
        }
        data["runs"] = [r for r in saved.get("runs", []) if not _deleted(spec, r)]
        data["seeds"] = sorted(set(saved.get("seeds") or []) | set(spec.seeds))
    order = list(dict.fromkeys([r["strategy"] for r in data["runs"]] + spec.strategies))
    todo = [
        (strategy, seed)
        for strategy in spec.strategies
        for seed in spec.seeds
        if not any(r["strategy"] == strategy and r["seed"] == seed for r in data["runs"])
    ]
    if todo:
        # Data and inputs once, before the first search loads a model; every run
        # shares the task, its sizes and the target, so one check holds for all.
        first = spec.search_spec(todo[0][0], todo[0][1], spec.out_dir / "runs")
        task = first.load_task()
        check_search_inputs(first, task, first.resolve_start(task))
    for strategy, seed in todo:
        reporter.phase(f"== {strategy}, seed {seed} ==")
        export = _run_one(spec, strategy, seed, reporter)
        rel = str(Path("runs") / run_dir_name(strategy, seed))
        data["runs"].append(run_row(export, strategy, seed, rel))
        data["runs"].sort(key=lambda r: (order.index(r["strategy"]), r["seed"]))
        _save(spec.out_dir, data)  # progress survives an interrupted comparison
    _backfill_improved(spec.out_dir, data["runs"])
    start, data["warnings"] = pick_start_scores(
        data["runs"], lambda run: start_example_scores(spec.out_dir, run)
    )
    data["leaderboard"] = build_leaderboard(
        data["runs"], lambda run: example_scores(spec.out_dir, run), start
    )
    _save(spec.out_dir, data)
    return data


def _deleted(spec: CompareSpec, run: dict[str, Any]) -> bool:
    """A run of this compare's strategies and seeds whose directory is gone: run again
    (deleting it is how a damaged run is redone, see `_rerun_fix`)."""
    asked = run.get("strategy") in spec.strategies and run.get("seed") in spec.seeds
    return asked and not (spec.out_dir / str(run.get("run_dir", ""))).exists()


def _save(out_dir: Path, data: dict[str, Any]) -> None:
    write_json_atomic(out_dir / COMPARE_FILE, data)
