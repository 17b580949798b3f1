"""InstructZero vs its baselines at the same model-call budget, 3 seeds.

Methods: InstructZero with the instruction-coupled kernel, with a plain Matern
kernel, uniform random soft prompts (the paper's baseline), and APE. Every
search gets the same --budget in model calls (writer/proposer calls included)
and the embedded model as writer/proposer and target. Prints a row per run as
it finishes (seeds outermost, so a cut-short run still covers every method),
then a table of test scores (mean ± sd), calls and wall time.

    python bench/instructzero_quality.py [--tasks ...] [--seeds 0,1,2] [--budget 160]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

TASKS = "antonyms,first_word_letter,singular_to_plural,sentiment"
METHODS = {
    "iz-coupled": ("instructzero", {"kernel": "coupled", "dev_subset": "10"}),
    "iz-matern": ("instructzero", {"kernel": "matern", "dev_subset": "10"}),
    "iz-random": ("instructzero", {"optimizer": "random", "dev_subset": "10"}),
    "ape": ("ape", {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default=TASKS)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--budget", type=int, default=160)
    parser.add_argument("--out", type=Path, default=Path("bench/results/instructzero.jsonl"))
    args = parser.parse_args()

    from promptopt.search import SearchSpec, run_search
    from promptopt.types import Budget

    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="iz-bench-"))
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        for task in args.tasks.split(","):
            for method in args.methods.split(","):
                strategy, params = METHODS[method]
                started = time.perf_counter()
                export = run_search(
                    SearchSpec(
                        task=task,
                        strategy=strategy,
                        params=params,
                        seed=seed,
                        budget=Budget(max_calls=args.budget),
                        run_dir=runs / f"{method}-{task}-{seed}",
                    )
                )
                usage = export["usage"]["search"]
                row = {
                    "method": method,
                    "task": task,
                    "seed": seed,
                    "test": export["scores"]["test"]["score"],
                    "baseline_test": export["scores"]["baseline_test"]["score"],
                    "test_n": export["scores"]["test"]["n"],
                    "calls": usage["calls"] + usage["cache_hits"],
                    "seconds": round(time.perf_counter() - started, 1),
                    "instruction": export["prompt"]["instruction"],
                }
                rows.append(row)
                with args.out.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
                print(
                    f"seed {seed} {task:<20} {method:<11} test {row['test']:.3f} "
                    f"(baseline {row['baseline_test']:.3f}, n={row['test_n']}) "
                    f"{row['calls']} calls {row['seconds']}s  {row['instruction'][:60]!r}",
                    flush=True,
                )
    print()
    print("| task | method | test score mean ± sd | seeds | calls (mean) | wall s (mean) |")
    print("| --- | --- | --- | --- | --- | --- |")
    for task in args.tasks.split(","):
        for method in args.methods.split(","):
            mine = [r for r in rows if r["task"] == task and r["method"] == method]
            if not mine:
                continue
            scores = [r["test"] for r in mine]
            sd = statistics.stdev(scores) if len(scores) > 1 else 0.0
            print(
                f"| {task} | {method} | {statistics.mean(scores):.3f} ± {sd:.3f} | {len(mine)} "
                f"| {statistics.mean(r['calls'] for r in mine):.0f} "
                f"| {statistics.mean(r['seconds'] for r in mine):.0f} |"
            )


if __name__ == "__main__":
    main()
