"""Boosted prompt ensembles vs the baselines of the paper, at equal test-time calls.

For each task and seed (the search seed; the test subset is fixed by data seed 0):

- single best prompt: the best on a dev subset (greedy) of the bagged ensemble's
  few-shot prompts, answering greedily (1 call per test question);
- self-consistency: that prompt with members x samples sampled answers, voted;
- bagged ensemble: few-shot prompts with random train demonstrations;
- boosted, train-time and test-time (`promptopt.strategies.boosting`);

every ensemble answering with members x samples calls per test question. Calls
are counted per method as if it ran alone (model calls + cache hits), since
the methods share one call cache. Prints one line per run and a table per task
(mean ± sd over seeds); JSON lines go to --out.

    python bench/boosting_quality.py [--tasks gsm8k,sst2] [--seeds 0,1,2]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

# Sizes that finish on a shared 2-core CPU: gsm8k answers are ~100-token chains of
# thought (several seconds per sample for the 135M model), sst2 answers are one word.
TASKS: dict[str, dict[str, Any]] = {
    "gsm8k": {
        "test": 8,
        "max_tokens": 128,
        "generate": False,
        "config": {"num_prompts": 2, "samples_per_prompt": 2, "shots": 2, "pool_size": 6},
    },
    "sst2": {
        "test": 32,
        "max_tokens": None,
        "generate": True,  # generate-mode scoring: the label word read from sampled text
        "config": {"num_prompts": 3, "samples_per_prompt": 2, "shots": 4, "pool_size": 12},
    },
}
METHODS = ("single best", "self-consistency", "bagged", "boosted train-time", "boosted test-time")


def load(name: str) -> Any:
    from promptopt.data.task import GenerationSettings, load_task

    spec = TASKS[name]
    task = load_task(name, sizes={"test": spec["test"]}, seed=0)
    if spec["generate"]:
        task.scoring_mode = "generate"
    if spec["max_tokens"]:
        task.generation = GenerationSettings(spec["max_tokens"], task.generation.stop)
    return task


def run_seed(task: Any, name: str, seed: int, base: Any, cache: Any, runs: Path) -> list[dict]:
    from promptopt.core.domain import Ensemble, Usage
    from promptopt.evaluation.ensemble import evaluate_ensemble
    from promptopt.evaluation.evaluator import Evaluator
    from promptopt.llm.stack import layered
    from promptopt.run.store import RunStore
    from promptopt.strategies.base import SearchContext
    from promptopt.strategies.boosting import Boosted, BoostedConfig

    params = TASKS[name]["config"]
    per_question = params["num_prompts"] * params["samples_per_prompt"]
    test = task.examples("test")
    rows: list[dict] = []

    def fresh() -> tuple[Usage, Evaluator]:
        usage = Usage()
        return usage, Evaluator(layered(base, usage, None, cache, None), task)

    def record(method: str, score: float, search: int, test_calls: int, t0: float, **extra):
        row = {
            "task": name,
            "seed": seed,
            "method": method,
            "test": score,
            "test_n": len(test),
            "search_calls": search,
            "test_calls": test_calls,
            "seconds": round(time.perf_counter() - t0, 1),
            **extra,
        }
        rows.append(row)
        print(
            f"{name:<6} seed {seed} {method:<19} test {score:.3f} (n={len(test)}) "
            f"search calls {search:>4}, test calls {test_calls:>4}, {row['seconds']}s",
            flush=True,
        )

    def boosted(version: str) -> Any:
        usage, evaluator = fresh()
        config = BoostedConfig(version=version, **params)
        store = RunStore(runs / f"{name}-{seed}-{version}", {"task": name, "seed": seed})
        ctx = SearchContext(task, evaluator, evaluator.llm, seed, store)
        result = Boosted().search(ctx, config)
        store.close()
        return result.ensemble, usage.calls

    def score(ensemble: Any) -> tuple[float, int, Any]:
        usage, evaluator = fresh()
        scored = evaluate_ensemble(evaluator, ensemble, test)
        return scored.result.score, usage.calls, scored

    # Bagged first: its members are the single-best candidates too.
    t0 = time.perf_counter()
    bagged, bag_search = boosted("bagged")
    bag_score, bag_calls, _ = score(bagged)
    record("bagged", bag_score, bag_search, bag_calls, t0)

    t0 = time.perf_counter()
    usage, evaluator = fresh()
    selection = task.examples("dev")[: params["pool_size"]]
    dev = evaluator.evaluate_many(bagged.members, selection)
    best_index = max(range(len(dev)), key=lambda i: (dev[i].score, -i))
    best = bagged.members[best_index]
    select_calls = usage.calls
    usage, evaluator = fresh()
    single = evaluator.evaluate(best, test)
    record(
        "single best",
        single.score,
        select_calls,
        usage.calls,
        t0,
        dev=dev[best_index].score,
    )

    t0 = time.perf_counter()
    sc = Ensemble((best,), samples=per_question, temperature=bagged.temperature, seed=seed)
    sc_score, sc_calls, _ = score(sc)
    record("self-consistency", sc_score, select_calls, sc_calls, t0)

    for version, label in (("train", "boosted train-time"), ("test", "boosted test-time")):
        t0 = time.perf_counter()
        ensemble, search_calls = boosted(version)
        ens_score, ens_calls, scored = score(ensemble)
        record(
            label,
            ens_score,
            search_calls,
            ens_calls,
            t0,
            members=[m.score for m in scored.members],
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default="gsm8k,sst2")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--out", type=Path, default=Path("bench/results/boosting_quality.jsonl"))
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=None,
        help="call cache shared by the methods (default: a fresh temporary folder)",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (default 1: on a CPU shared with other model jobs, 2 threads "
        "per process oversubscribe it and ran 3-7x slower than 1 in our measurement)",
    )
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the script")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    if args.smoke:
        for spec in TASKS.values():
            spec["test"] = 3
            spec["config"].update(pool_size=3, shots=1)

    from promptopt.llm.cache_files import open_cache
    from promptopt.llm.factory import ModelSpec, build_llm

    base = build_llm(ModelSpec("hf", "embedded", batch_size=args.batch_size))
    runs = Path(tempfile.mkdtemp(prefix="boost-bench-"))
    cache = open_cache(args.cache_dir or runs / "cache")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    tasks = args.tasks.split(",")
    rows: list[dict] = []
    started = time.perf_counter()
    for name in tasks:
        task = load(name)
        for seed in seeds:
            new = run_seed(task, name, seed, base, cache, runs)
            rows += new
            with args.out.open("a") as handle:
                for row in new:
                    handle.write(json.dumps(row) + "\n")
    print(f"\nall runs: {time.perf_counter() - started:.0f}s")
    for name in tasks:
        spec = TASKS[name]
        config = dataclasses.replace(_config(), **spec["config"])
        print(
            f"\n{name}: test n={spec['test']}, {len(seeds)} seeds; ensembles of "
            f"{config.num_prompts} prompts x {config.samples_per_prompt} samples "
            f"(temperature {config.temperature}), {config.shots} shots, pool {config.pool_size}"
            + (f", max_tokens {spec['max_tokens']}" if spec["max_tokens"] else "")
            + (", generate-mode scoring" if spec["generate"] else "")
        )
        print("| method | test accuracy (mean ± sd) | search calls | test calls per question |")
        print("| --- | --- | --- | --- |")
        for method in METHODS:
            mine = [r for r in rows if r["task"] == name and r["method"] == method]
            if not mine:
                continue
            scores = [r["test"] for r in mine]
            sd = statistics.stdev(scores) if len(scores) > 1 else 0.0
            search = statistics.mean(r["search_calls"] for r in mine)
            per_question = statistics.mean(r["test_calls"] / r["test_n"] for r in mine)
            print(
                f"| {method} | {statistics.mean(scores):.3f} ± {sd:.3f} | {search:.0f} "
                f"| {per_question:g} |"
            )


def _config() -> Any:
    from promptopt.strategies.boosting import BoostedConfig

    return BoostedConfig()


if __name__ == "__main__":
    main()
