"""Search quality across tasks: does a strategy beat the prompt the user started with?

For each task, runs `promptopt compare` (the library call) over the strategies x
seeds at one call budget, embedded model as target and proposer, and reads
each strategy's test mean, sd over seeds, mean calls, and its paired two-sided
p-value against the starting prompt (the task's baseline) from compare.json.
A strategy written `name:key=value` runs with that parameter in its own compare
directory and is reported as `name-value` (e.g. `mipro:optimizer=random`, the
joint optimizer choosing pairs uniformly: the baseline its GP must beat).
With --gepa, the GEPA peer (bench/gepa_peer.py; `pip install gepa==0.1.4`)
runs on the same tasks, seeds, budget and test examples.

Every run is an ordinary resumable compare run under --runs-dir, so stopping
and rerunning the bench only runs what is missing.

Writes bench/results/quality.json (one row per task x strategy:
{"task", "strategy", "seeds", "budget", "n_test", "baseline_test", "test_mean",
"test_sd", "p_vs_baseline", "calls_mean"}) and a Markdown table beside it.

    python bench/quality.py --tasks antonyms,sst2 --strategies ape,mipro --seeds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

TASKS = "gsm8k,antonyms,first_word_letter,singular_to_plural,sentiment,sst2,subj,trec"
STRATEGIES = "mipro,mipro:optimizer=random,ape,reflexion,boosted,instructzero,rlprompt"


def parse_strategy(entry: str) -> tuple[str, str, dict[str, str]]:
    """(label, strategy, params) from `name` or `name:key=value[,key=value]`."""
    name, _, rest = entry.partition(":")
    params = dict(p.split("=", 1) for p in rest.split(";") if p) if rest else {}
    label = name + "".join(f"-{v}" for v in params.values())
    return label, name, params


def compare_rows(
    task: str, entry: str, seeds: int, budget: int, test_size: int, runs_dir: Path
) -> dict[str, Any]:
    from promptopt.core.domain import Budget
    from promptopt.run.compare import CompareSpec, run_compare

    label, strategy, params = parse_strategy(entry)
    spec = CompareSpec(
        task=task,
        strategies=[strategy],
        out_dir=runs_dir / task / label,
        seeds=list(range(seeds)),
        budget=Budget(max_calls=budget),
        params={strategy: params} if params else {},
        sizes={"test": test_size},
    )
    started = time.perf_counter()
    data = run_compare(spec)
    board = {r["kind"]: r for r in data["leaderboard"]}
    row, start = board["strategy"], board.get("start")
    vs_start = row.get("vs_start") or {}
    runs = data["runs"]
    return {
        "task": task,
        "strategy": label,
        "seeds": len(runs),
        "budget": budget,
        "n_test": runs[0]["test_n"],
        "baseline_test": start["mean"] if start else None,
        "test_mean": row["mean"],
        "test_sd": row["sd"],
        "p_vs_baseline": vs_start.get("p_value"),
        "calls_mean": row["calls_mean"],
        "improved": row.get("improved"),
        "per_seed": [r["test_score"] for r in runs],
        "wall_s": round(time.perf_counter() - started, 1),
    }


def gepa_row(task: str, seeds: int, budget: int, test_size: int) -> dict[str, Any]:
    sys.path.insert(0, str(Path(__file__).parent))
    from gepa_peer import run_gepa  # bench-only peer, next to this file

    runs = [run_gepa(task, seed, budget, test_size) for seed in range(seeds)]
    return aggregate_gepa(task, runs, budget)


def aggregate_gepa(task: str, runs: list[dict[str, Any]], budget: int) -> dict[str, Any]:
    """One table row from `run_gepa`'s per-seed rows."""
    from promptopt.evaluation.stats import compare_paired

    done = [r for r in runs if r.get("test") is not None]
    notes = sorted({r["note"] for r in runs if r.get("note")})
    row: dict[str, Any] = {
        "task": task,
        "strategy": "gepa",
        "seeds": len(done),
        "budget": budget,
        "n_test": runs[0].get("n_test"),
        "baseline_test": done[0]["baseline_test"] if done else None,
        "test_mean": statistics.mean(r["test"] for r in done) if done else None,
        "test_sd": statistics.stdev([r["test"] for r in done]) if len(done) > 1 else 0.0,
        "p_vs_baseline": None,
        "calls_mean": statistics.mean(r["calls"] for r in done) if done else None,
        "per_seed": [r.get("test") for r in runs],
        "note": "; ".join(notes),
    }
    pairs = [
        (b, s)
        for r in done
        for b, s in zip(r.get("baseline_scores", []), r.get("test_scores", []), strict=False)
    ]
    if pairs:
        result = compare_paired([s for _, s in pairs], [b for b, _ in pairs])  # two-sided
        row["p_vs_baseline"] = result.p_value
    return row


def markdown(rows: list[dict[str, Any]], budget: int) -> str:
    strategies = list(dict.fromkeys(r["strategy"] for r in rows))
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    lines = [
        f"Test accuracy, mean ± sd over seeds, at {budget} model calls per search "
        "(embedded SmolLM2-135M as target and proposer). p: paired two-sided test "
        "against the starting prompt (the task's baseline), pooled over seeds x examples; "
        "**bold**: p < 0.05 better, _italic_: p < 0.05 worse. ape, reflexion, "
        "instructzero and rlprompt run with the demonstration stage after them "
        "(`--demo-sets 4`, the default); bench/results/quality_before_stage.md has them "
        "without it.",
        "",
        "| task | n test | start | " + " | ".join(strategies) + " |",
        "| --- | --- | --- | " + " | ".join("---" for _ in strategies) + " |",
    ]
    for task in tasks:
        mine = {r["strategy"]: r for r in rows if r["task"] == task}
        first = next(iter(mine.values()))
        base = first["baseline_test"]
        cells = []
        for s in strategies:
            r = mine.get(s)
            if r is None or r["test_mean"] is None:
                cells.append("-" if r is None else f"not run: {r.get('note', '')}")
                continue
            text = f"{r['test_mean']:.3f} ± {r['test_sd']:.3f}"
            if r["seeds"] < 3 or r["n_test"] != first["n_test"]:
                text += f" [{r['seeds']} seed(s), n={r['n_test']}]"
            p = r["p_vs_baseline"]
            if p is not None:
                text += f" (p={p:.2g})"
                if p < 0.05 and base is not None:
                    text = f"**{text}**" if r["test_mean"] > base else f"_{text}_"
            cells.append(text)
        base_text = f"{base:.3f}" if base is not None else "-"
        lines.append(f"| {task} | {first['n_test']} | {base_text} | " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(
        "| strategy | mean gain over start (points) | tasks +10 | worse, p < 0.05 | calls |"
    )
    lines.append("| --- | --- | --- | --- | --- |")
    for s in strategies:
        mine = [r for r in rows if r["strategy"] == s and r["test_mean"] is not None]
        if not mine:
            continue
        gains = [100 * (r["test_mean"] - r["baseline_test"]) for r in mine]
        worse = [
            r["task"]
            for r in mine
            if r["p_vs_baseline"] is not None
            and r["p_vs_baseline"] < 0.05
            and r["test_mean"] < r["baseline_test"]
        ]
        calls = statistics.mean(r["calls_mean"] for r in mine)
        lines.append(
            f"| {s} | {statistics.mean(gains):+.1f} over {len(mine)} tasks | "
            f"{sum(g >= 10 for g in gains)} | {', '.join(worse) or 'none'} | {calls:.0f} |"
        )
    lines += ["", best_line(rows, tasks)]
    return "\n".join(lines) + "\n"


def best_line(rows: list[dict[str, Any]], tasks: list[str]) -> str:
    """The issue's targets: the best strategy per task, +10 points on how many tasks,
    and the mean of those best gains."""
    best = {}
    for task in tasks:
        mine = [r for r in rows if r["task"] == task and r["test_mean"] is not None]
        top = max(mine, key=lambda r: r["test_mean"] - r["baseline_test"])
        best[task] = (top["strategy"], 100 * (top["test_mean"] - top["baseline_test"]))
    cells = ", ".join(f"{t} {s} {g:+.1f}" for t, (s, g) in best.items())
    gains = [g for _, g in best.values()]
    return (
        f"Best strategy per task (points over the start): {cells}. At least +10 on "
        f"{sum(g >= 10 for g in gains)} of {len(gains)} tasks; mean "
        f"{statistics.mean(gains):+.1f}."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default=TASKS)
    parser.add_argument("--strategies", default=STRATEGIES)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--budget", type=int, default=200)
    parser.add_argument("--test-size", type=int, default=50)
    parser.add_argument("--gepa", action="store_true", help="add the GEPA peer")
    parser.add_argument("--runs-dir", type=Path, default=Path("bench/runs/quality"))
    parser.add_argument("--out", type=Path, default=Path("bench/results/quality.json"))
    parser.add_argument(
        "--merge",
        default="",
        help="only merge these quality JSON files (comma-separated; from bench runs made in "
        "parallel) into --out, with --gepa-rows, and print the table",
    )
    parser.add_argument(
        "--gepa-rows",
        type=Path,
        nargs="*",
        default=[],
        help="per-seed rows written by bench/gepa_peer.py (one or more files), to merge",
    )
    args = parser.parse_args()
    if args.merge:
        # A later file's row for the same task and strategy replaces an earlier one
        # (a rerun after a change), keeping the table's order.
        merged: dict[tuple[str, str], dict[str, Any]] = {}
        for f in args.merge.split(","):
            for r in json.loads(Path(f).read_text()):
                merged[(r["task"], r["strategy"])] = r
        if args.gepa_rows:
            peer = [r for f in args.gepa_rows for r in json.loads(f.read_text())]
            for task in dict.fromkeys(r["task"] for r in peer):
                mine = [
                    r
                    for r in peer
                    if r["task"] == task
                    and r["budget"] == args.budget
                    and r.get("n_test") == args.test_size  # same test sample as the table
                ]
                if mine:
                    merged[(task, "gepa")] = aggregate_gepa(task, mine, args.budget)
        rows = list(merged.values())
        save(args.out, rows, args.budget)
        print(markdown(rows, args.budget))
        return

    rows: list[dict[str, Any]] = []
    if args.out.exists():  # keep rows of other tasks/strategies from earlier invocations
        rows = json.loads(args.out.read_text())
    for task in args.tasks.split(","):
        entries = args.strategies.split(",") if args.strategies else []
        for entry in entries:
            row = compare_rows(task, entry, args.seeds, args.budget, args.test_size, args.runs_dir)
            rows = [r for r in rows if (r["task"], r["strategy"]) != (task, row["strategy"])]
            rows.append(row)
            print(json.dumps(row), flush=True)
            save(args.out, rows, args.budget)
        if args.gepa:
            row = gepa_row(task, args.seeds, args.budget, args.test_size)
            rows = [r for r in rows if (r["task"], r["strategy"]) != (task, "gepa")]
            rows.append(row)
            print(json.dumps(row), flush=True)
            save(args.out, rows, args.budget)
    print(markdown(rows, args.budget))


def save(out: Path, rows: list[dict[str, Any]], budget: int) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(rows, budget))


if __name__ == "__main__":
    main()
