"""Reflexion quality, both uses, on the embedded model.

(a) Prompt search: for each task and seed, APE and Reflexion searches that
    spend the same number of model calls (`--budget`, charged per real call;
    the shared cache is off so neither strategy gets free calls; Reflexion's
    patience stop is lifted so the budget ends both), then the test scores of
    the baseline prompt, APE's best and Reflexion's best.
(b) Inference-time Reflexion on HumanEval: pass@1 of the first N problems
    without the loop (1 attempt) and with it (3 attempts), code run in the
    sandbox.

    python bench/reflexion_quality.py [--tasks antonyms,...] [--seeds 0,1,2]
        [--budget 100] [--humaneval 20] [--threads 1]

Torch runs one thread per process by default here: on a 2-core machine shared
with other model jobs, two OpenMP threads per process were measured 40x slower
than one (2.2 vs 86 tokens/s).
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

DEFAULT_TASKS = "antonyms,first_word_letter,singular_to_plural,sentiment"
# Defaults of both strategies, except that Reflexion's patience and trial stops are
# lifted so that, like APE, it spends the whole budget: equal calls, not equal caps.
PARAMS = {"ape": {}, "reflexion": {"patience": "1000", "max_trials": "1000"}}


def _mean_sd(values: list[float]) -> str:
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.3f} ± {sd:.3f}"


def prompt_search(args: argparse.Namespace) -> None:
    from promptopt.core.domain import Budget
    from promptopt.run.search import SearchSpec, run_search

    runs = Path(tempfile.mkdtemp(prefix="reflexion-bench-"))
    sizes = {"dev": args.dev, "test": args.test}
    rows = []
    tasks = args.tasks.split(",")
    seeds = [int(s) for s in args.seeds.split(",")]
    for task in tasks:
        for seed in seeds:
            for strategy in ("ape", "reflexion"):
                started = time.perf_counter()
                export = run_search(
                    SearchSpec(
                        task=task,
                        strategy=strategy,
                        params=PARAMS[strategy],
                        seed=seed,
                        sizes=sizes,
                        budget=Budget(max_calls=args.budget),
                        use_cache=False,
                        run_dir=runs / f"{task}-{seed}-{strategy}",
                    )
                )
                row = {
                    "task": task,
                    "seed": seed,
                    "strategy": strategy,
                    "baseline": export["scores"]["baseline_test"]["score"],
                    "test": export["scores"]["test"]["score"],
                    "n": export["scores"]["test"]["n"],
                    "calls": export["usage"]["search"]["calls"],
                    "instruction": export["prompt"]["instruction"],
                    "seconds": time.perf_counter() - started,
                }
                rows.append(row)
                if args.rows:
                    with args.rows.open("a") as handle:
                        handle.write(json.dumps(row) + "\n")
                print(
                    f"{task:<20} seed {seed} {strategy:<9}: baseline {row['baseline']:.3f}  "
                    f"best {row['test']:.3f}  (n={row['n']}, {row['calls']} calls, "
                    f"{row['seconds']:.0f}s)  {row['instruction'][:70]!r}",
                    flush=True,
                )
    print()
    print(
        f"Prompt search: test scores at equal model calls (budget {args.budget} calls, "
        f"dev {args.dev}, test {args.test}, seeds {args.seeds}; mean ± sd over seeds)"
    )
    print()
    print("| task | baseline | APE | Reflexion | calls APE | calls Reflexion |")
    print("| --- | --- | --- | --- | --- | --- |")
    # The baseline is scored in each run's test batch next to that run's best
    # prompt; bfloat16 batches of different shapes can flip a greedy answer, so
    # its score varies a little between runs: the table gives its mean.
    means = {"baseline": [], "ape": [], "reflexion": []}
    for task in tasks:
        mine = [r for r in rows if r["task"] == task]
        ape = [r for r in mine if r["strategy"] == "ape"]
        rfx = [r for r in mine if r["strategy"] == "reflexion"]
        baseline = statistics.mean(r["baseline"] for r in mine)
        means["baseline"].append(baseline)
        means["ape"].append(statistics.mean(r["test"] for r in ape))
        means["reflexion"].append(statistics.mean(r["test"] for r in rfx))
        print(
            f"| {task} | {baseline:.3f} | {_mean_sd([r['test'] for r in ape])} "
            f"| {_mean_sd([r['test'] for r in rfx])} "
            f"| {statistics.mean(r['calls'] for r in ape):.0f} "
            f"| {statistics.mean(r['calls'] for r in rfx):.0f} |"
        )
    print(
        f"| mean | {statistics.mean(means['baseline']):.3f} | {statistics.mean(means['ape']):.3f} "
        f"| {statistics.mean(means['reflexion']):.3f} | | |"
    )
    print(flush=True)


def humaneval(args: argparse.Namespace) -> None:
    from promptopt.llm.factory import ModelSpec
    from promptopt.run.code_eval import run_code_eval

    model = ModelSpec("hf", "embedded", batch_size=32)
    reports = {}
    for attempts in (1, 3):
        started = time.perf_counter()
        reports[attempts] = run_code_eval(
            "humaneval",
            allow_code_execution=True,
            attempts=attempts,
            model=model,
            test_size=args.humaneval,
        )
        report = reports[attempts]
        print(
            f"humaneval attempts {attempts}: pass@1 {report['score']:.3f} on {report['n']} "
            f"problems, by attempts {report['pass_at_1_by_attempts']}, "
            f"{report['usage']['calls']} model calls ({report['usage']['cache_hits']} cached), "
            f"{time.perf_counter() - started:.0f}s",
            flush=True,
        )
    with_loop = reports[3]
    visible = with_loop["problems_with_visible_tests"]
    fixed = [
        p["task_id"]
        for p in with_loop["problems"]
        if p["hidden"] and not p["hidden"][0] and p["hidden"][-1]
    ]
    print()
    print(
        f"HumanEval pass@1, first {with_loop['n']} problems ({visible} with docstring examples "
        "as visible tests), SmolLM2-135M-Instruct; sandbox: "
        + ", ".join(k for k, v in with_loop["sandbox"].items() if v is True)
    )
    print()
    print("| attempts | pass@1 | solved | model calls |")
    print("| --- | --- | --- | --- |")
    for attempts, report in reports.items():
        solved = round(report["score"] * report["n"])
        calls = report["usage"]["calls"] + report["usage"]["cache_hits"]
        label = f"{attempts} (no loop)" if attempts == 1 else f"{attempts} (Reflexion)"
        print(f"| {label} | {report['score']:.3f} | {solved}/{report['n']} | {calls} |")
    retried = sum(p["attempts_used"] > 1 for p in with_loop["problems"])
    print()
    print(
        f"{retried} problems failed their visible tests and were retried; fixed by the loop: "
        f"{', '.join(fixed) or 'none'}. pass@1 after each attempt of the 3-attempt run: "
        f"{with_loop['pass_at_1_by_attempts']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default=DEFAULT_TASKS)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget", type=int, default=100, help="model calls per search")
    parser.add_argument("--dev", type=int, default=12)
    parser.add_argument("--test", type=int, default=40)
    parser.add_argument("--humaneval", type=int, default=20, help="first N problems (0: skip)")
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--rows", type=Path, default=None, help="append each run as JSON here")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    if not args.skip_search:
        prompt_search(args)
    if args.humaneval:
        humaneval(args)
    print(f"\ntotal {time.perf_counter() - started:.0f}s")


if __name__ == "__main__":
    main()
