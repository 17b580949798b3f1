"""The leaderboard of a comparison (pure): per strategy the mean test score over
seeds, usage means, and paired two-sided tests against the best strategy and
against the starting prompt, on the (seed, example id) pairs both have.

Rows are `LeaderboardRow`s while they are built and plain JSON in compare.json.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from promptopt.evaluation.stats import compare_paired
from promptopt.run.compare_files import is_num

START_LABEL = "start (baseline)"
"""The leaderboard row of the starting prompt (kind "start"); strategy rows have kind "strategy"."""


@dataclass
class LeaderboardRow:
    """One strategy (kind "strategy") or the starting prompt (kind "start")."""

    strategy: str
    kind: str
    mean: float
    sd: float
    n_seeds: int
    calls_mean: float = 0.0
    cache_hits_mean: float = 0.0
    tokens_mean: float = 0.0
    wall_s_mean: float = 0.0
    cost_usd_mean: float | None = 0.0
    best: bool = False
    vs_best: dict[str, Any] | None = None
    vs_start: dict[str, Any] | None = None
    vs_start_verdict: str | None = None
    improved: dict[str, int] | None = None
    """How many runs beat their start: {"count": k, "of": n}; None when none report it."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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


def _strategy_row(strategy: str, group: list[dict[str, Any]]) -> LeaderboardRow:
    test = [r["test_score"] for r in group]
    costs = [r.get("cost_usd") for r in group]
    return LeaderboardRow(
        strategy=strategy,
        kind="strategy",
        mean=_mean(test),
        sd=_sd(test),
        n_seeds=len(group),
        calls_mean=_mean([r["calls"] for r in group]),
        cache_hits_mean=_mean([r.get("cache_hits", 0) for r in group]),
        tokens_mean=_mean([r["tokens"] for r in group]),
        wall_s_mean=round(_mean([r["wall_s"] for r in group]), 2),
        cost_usd_mean=None
        if any(c is None for c in costs)
        else _mean([float(c) for c in costs if c is not None]),
        improved=_improved_count(group),
    )


def _start_row(runs: list[dict[str, Any]]) -> LeaderboardRow | None:
    """The starting prompt as a row: its test score over every run (the same prompt on
    the same examples, so sd is 0 unless runs disagree) and no search cost."""
    scores = [float(r["baseline_test_score"]) for r in runs if is_num(r.get("baseline_test_score"))]
    if not scores:
        return None
    return LeaderboardRow(
        strategy=START_LABEL,
        kind="start",
        mean=_mean(scores),
        sd=_sd(scores),
        n_seeds=len({r["seed"] for r in runs}),
    )


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
        return []
    start_row = _start_row(runs)
    rows += [start_row] if start_row else []
    rows.sort(key=lambda r: (-r.mean, r.calls_mean, r.kind != "start", r.strategy))
    pooled = {
        strategy: {(r["seed"], str(ex)): v for r in group for ex, v in scores(r).items()}
        for strategy, group in by_strategy.items()
    }
    seeds = sorted({r["seed"] for r in runs})
    start_pooled = {(seed, str(ex)): v for seed in seeds for ex, v in (start or {}).items()}
    best = next(r for r in rows if r.kind == "strategy")
    best.best = True
    for row in rows:
        mine = start_pooled if row.kind == "start" else pooled[row.strategy]
        if row is not best:
            row.vs_best = _paired(mine, pooled[best.strategy])
        if row.kind == "strategy":
            row.vs_start = _paired(mine, start_pooled)
            row.vs_start_verdict = start_verdict(row.vs_start)
    return [row.to_dict() for row in rows]
