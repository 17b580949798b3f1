"""APE quality: baseline prompt vs APE's best prompt on the test split, 3 seeds.

For each task and seed, runs a default APE search with the embedded model as
target and proposer, then prints a table of test scores and model calls, and a
per-task mean. Results are appended as JSON lines to --out for later reading.

    python bench/ape_quality.py [--tasks antonyms,...] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

DEFAULT_TASKS = "antonyms,first_word_letter,singular_to_plural,sentiment,sst2"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default=DEFAULT_TASKS)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path("bench/results/ape_quality.jsonl"))
    parser.add_argument(
        "--param",
        "-p",
        action="append",
        default=[],
        help="APE parameter key=value (as `search -p`)",
    )
    args = parser.parse_args()

    from promptopt.run.search import SearchSpec, run_search

    params = dict(p.split("=", 1) for p in args.param)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    runs = Path(tempfile.mkdtemp(prefix="ape-bench-"))
    rows = []
    for task in args.tasks.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            t = time.perf_counter()
            export = run_search(
                SearchSpec(task=task, seed=seed, params=params, run_dir=runs / f"{task}-{seed}")
            )
            row = {
                "task": task,
                "seed": seed,
                "baseline_test": export["scores"]["baseline_test"]["score"],
                "ape_test": export["scores"]["test"]["score"],
                "test_n": export["scores"]["test"]["n"],
                "ape_dev": export["scores"]["dev"]["score"],
                "calls": export["usage"]["search"]["calls"],  # cache hits included
                "instruction": export["prompt"]["instruction"],
                "seconds": round(time.perf_counter() - t, 1),
                "params": params,
            }
            rows.append(row)
            with args.out.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(
                f"{task:<20} seed {seed}: baseline {row['baseline_test']:.3f}  "
                f"APE {row['ape_test']:.3f}  (n={row['test_n']}, {row['calls']} calls, "
                f"{row['seconds']}s)  {row['instruction'][:70]!r}",
                flush=True,
            )
    print()
    print("| task | baseline test | APE test (mean ± sd over seeds) | model calls per search |")
    print("| --- | --- | --- | --- |")
    for task in args.tasks.split(","):
        mine = [r for r in rows if r["task"] == task]
        ape = [r["ape_test"] for r in mine]
        sd = statistics.stdev(ape) if len(ape) > 1 else 0.0
        print(
            f"| {task} | {mine[0]['baseline_test']:.3f} | {statistics.mean(ape):.3f} ± {sd:.3f} "
            f"| {statistics.mean(r['calls'] for r in mine):.0f} |"
        )


if __name__ == "__main__":
    main()
