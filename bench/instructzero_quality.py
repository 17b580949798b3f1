"""InstructZero vs its baselines at the same number of model calls, 3 seeds.

Methods: InstructZero with the instruction-coupled kernel, with a plain Matern
kernel, uniform random soft prompts (the paper's baseline), and APE. Every
search gets the same --budget in model calls (writer/proposer calls included)
and the embedded model as writer/proposer and target. The InstructZero methods
run with rounds=0, i.e. they keep proposing until the budget is spent (or the
writer stops writing new instructions for `patience` rounds, set to 50 here so
that only the budget ends a run), so they use as many calls as APE instead of
stopping at a fixed schedule.

InstructZero runs bypass the shared call cache (use_cache=False): the budget
charges only real model calls, so cache hits left by an earlier run would let
a method score more instructions than its budget and would hide its wall time.
APE's schedule is fixed, so its rows may come from the cache (--ape-cache);
their wall time then measures the cache, not the model.

Prints a row per run as it finishes (seeds outermost, so a cut-short run still
covers every method) and appends it to --out; --table-from reads one or more
such files (e.g. from two processes run side by side) and writes the markdown
table of test scores (mean ± sd), mean calls and mean wall time.

    python bench/instructzero_quality.py [--tasks ...] [--seeds 0,1,2] [--budget 160]
    python bench/instructzero_quality.py --table-from a.jsonl b.jsonl --table table.md
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

TASKS = "antonyms,first_word_letter,singular_to_plural,sentiment"
# patience 50 (at most 44 stale rounds fit in 160 calls) lets a stuck writer spend the
# budget too, so every method ends at the budget; a run whose writer never stalled 8
# rounds in a row is the same as with the default patience.
IZ = {"dev_subset": "10", "rounds": "0", "patience": "50"}
METHODS: dict[str, tuple[str, dict[str, str]]] = {
    "iz-coupled": ("instructzero", {**IZ, "kernel": "coupled"}),
    "iz-matern": ("instructzero", {**IZ, "kernel": "matern"}),
    "iz-random": ("instructzero", {**IZ, "optimizer": "random"}),
    "ape": ("ape", {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default=TASKS)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--budget", type=int, default=160)
    parser.add_argument(
        "--ape-cache", action="store_true", help="serve APE's calls from the shared cache"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/instructzero.jsonl"))
    parser.add_argument("--table-from", type=Path, nargs="*", help="only write the table")
    parser.add_argument("--table", type=Path, default=None, help="markdown table to write")
    args = parser.parse_args()

    if args.table_from:
        rows = [json.loads(line) for path in args.table_from for line in path.open()]
    else:
        import torch

        torch.set_num_threads(1)  # a shared 2-core machine: one thread per bench process
        rows = run_all(args)
    table = markdown_table(rows, args.tasks.split(","), args.methods.split(","), args.budget)
    print()
    print(table)
    if args.table:
        args.table.write_text(table)


def run_all(args: argparse.Namespace) -> list[dict[str, Any]]:
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="iz-bench-"))
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for task in args.tasks.split(","):
            for method in args.methods.split(","):
                row = run_one(method, task, seed, args.budget, runs, args.ape_cache)
                rows.append(row)
                with args.out.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(
                    f"seed {seed} {task:<20} {method:<11} test {row['test']:.3f} "
                    f"(baseline {row['baseline_test']:.3f}, n={row['test_n']}) "
                    f"{row['calls']} calls {row['distinct']} instructions "
                    f"{row['search_s']}s  {row['instruction'][:60]!r}",
                    flush=True,
                )
    return rows


def run_one(
    method: str, task: str, seed: int, budget: int, runs: Path, ape_cache: bool
) -> dict[str, Any]:
    """One search; the row records what the table needs and what explains it."""
    from promptopt.core.domain import Budget
    from promptopt.run.search import SearchSpec, run_search

    strategy, params = METHODS[method]
    shared_cache = ape_cache and strategy == "ape"
    started = time.perf_counter()
    export = run_search(
        SearchSpec(
            task=task,
            strategy=strategy,
            params=params,
            seed=seed,
            budget=Budget(max_calls=budget),
            run_dir=runs / f"{method}-{task}-{seed}",
            use_cache=shared_cache,
        )
    )
    usage = export["usage"]["search"]
    return {
        "method": method,
        "task": task,
        "seed": seed,
        "budget": budget,
        "params": params,
        "test": export["scores"]["test"]["score"],
        "baseline_test": export["scores"]["baseline_test"]["score"],
        "test_n": export["scores"]["test"]["n"],
        "calls": usage["calls"],  # cache hits included
        "charged_calls": usage["calls"],
        "shared_cache": shared_cache,
        "projection_scale": export["strategy"]["config"].get("projection_scale"),
        "distinct": len(export["leaderboard"]),
        "stopped_by_budget": export["stopped_by_budget"],
        "search_s": export["timings"]["search_s"],
        "seconds": round(time.perf_counter() - started, 1),
        "instruction": export["prompt"]["instruction"],
    }


def markdown_table(
    rows: list[dict[str, Any]], tasks: list[str], methods: list[str], budget: int
) -> str:
    """Test score mean ± sd per task and method, then calls, instructions and time per method."""
    lines = [
        f"InstructZero vs baselines at a {budget}-call budget (InstructZero: rounds=0, "
        "i.e. until the budget is spent), embedded model as writer/proposer and target, "
        "dev subset 10 for InstructZero; test score mean ± sd over seeds",
        "",
        "| task | baseline | " + " | ".join(methods) + " |",
        "| --- | --- | " + " | ".join("---" for _ in methods) + " |",
    ]
    for task in tasks:
        mine = [r for r in rows if r["task"] == task]
        if mine:
            cells = [_score_cell([r["test"] for r in mine if r["method"] == m]) for m in methods]
            lines.append(f"| {task} | {_baseline(mine)} | " + " | ".join(cells) + " |")
    per_method = [[r for r in rows if r["method"] == m and r["task"] in tasks] for m in methods]
    summaries = {
        "calls: mean (min-max)": _calls,
        "distinct candidates (mean)": lambda v: f"{statistics.mean(r['distinct'] for r in v):.1f}",
        "search wall s (mean)": _seconds,
    }
    for label, summarize in summaries.items():
        cells = [summarize(v) if v else "" for v in per_method]
        lines.append(f"| {label} | | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _score_cell(scores: list[float]) -> str:
    if not scores:
        return ""
    sd = statistics.stdev(scores) if len(scores) > 1 else 0.0
    return f"{statistics.mean(scores):.3f} ± {sd:.3f} (n_seeds={len(scores)})"


def _baseline(rows: list[dict[str, Any]]) -> str:
    """The task instruction's test score; a range when runs measured it differently.

    Each run scores the baseline in one batch with its best prompt, and batch
    composition shifts bfloat16 numerics, so runs can disagree slightly.
    """
    values = sorted({r["baseline_test"] for r in rows})
    return f"{values[0]:.3f}" if len(values) == 1 else f"{values[0]:.3f}-{values[-1]:.3f}"


def _calls(rows: list[dict[str, Any]]) -> str:
    calls = [r["calls"] for r in rows]
    return f"{statistics.mean(calls):.0f} ({min(calls)}-{max(calls)})"


def _seconds(rows: list[dict[str, Any]]) -> str:
    """Mean search time, flagged when the calls came from the cache (not model time)."""
    mean = f"{statistics.mean(r['search_s'] for r in rows):.0f}"
    return f"{mean} (cached)" if any(r["shared_cache"] for r in rows) else mean


if __name__ == "__main__":
    main()
