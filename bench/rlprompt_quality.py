"""RLPrompt vs no prompt, the manual prompt and APE on few-shot classification, 3 seeds.

Every method uses the embedded model as target (and as policy/proposer). Test
accuracy on the task's test sample, with training wall time and target-model
calls for the searches. Rows print as they finish (seeds outermost).

    python bench/rlprompt_quality.py [--tasks sst2,subj] [--seeds 0,1,2] [-p steps=30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default="sst2,subj")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--param", "-p", action="append", default=[], help="RLPrompt parameter key=value"
    )
    parser.add_argument("--out", type=Path, default=Path("bench/results/rlprompt.jsonl"))
    args = parser.parse_args()

    from promptopt.core.domain import Prompt, Usage
    from promptopt.data.task import load_task
    from promptopt.evaluation.evaluator import Evaluator
    from promptopt.llm.factory import ModelSpec, build_llm
    from promptopt.llm.stack import layered
    from promptopt.run.search import SearchSpec, run_search

    params = dict(p.split("=", 1) for p in args.param)
    runs = Path(tempfile.mkdtemp(prefix="rl-bench-"))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = []

    def record(row: dict) -> None:
        rows.append(row)
        with args.out.open("a") as handle:
            handle.write(json.dumps(row) + "\n")
        print(
            f"seed {row['seed']} {row['task']:<6} {row['method']:<9} test {row['test']:.3f} "
            f"(n={row['n']}) calls {row['calls']} {row['seconds']}s {row['prompt'][:50]!r}",
            flush=True,
        )

    llm = build_llm(ModelSpec("hf", "embedded"))
    for seed in (int(s) for s in args.seeds.split(",")):
        for task_name in args.tasks.split(","):
            task = load_task(task_name)
            test = task.examples("test")
            fixed = {"no prompt": "", "manual": task.baseline_instruction}
            for method, instruction in fixed.items():
                if seed > 0:  # deterministic: the same for every seed
                    continue
                result = Evaluator(layered(llm, Usage(), None, None, None), task).evaluate(
                    Prompt(instruction=instruction, template=task.template), test
                )
                record(
                    {
                        "task": task_name,
                        "seed": seed,
                        "method": method,
                        "test": result.score,
                        "n": result.n,
                        "calls": 0,
                        "seconds": 0.0,
                        "prompt": instruction,
                    }
                )
            for method, strategy, extra in (("ape", "ape", {}), ("rlprompt", "rlprompt", params)):
                started = time.perf_counter()
                export = run_search(
                    SearchSpec(
                        task=task_name,
                        strategy=strategy,
                        params=extra,
                        seed=seed,
                        run_dir=runs / f"{method}-{task_name}-{seed}",
                    )
                )
                usage = export["usage"]["search"]
                record(
                    {
                        "task": task_name,
                        "seed": seed,
                        "method": method,
                        "test": export["scores"]["test"]["score"],
                        "n": export["scores"]["test"]["n"],
                        "calls": usage["calls"],  # cache hits included
                        "seconds": round(time.perf_counter() - started, 1),
                        "prompt": export["prompt"]["instruction"],
                    }
                )
    print()
    print("| task | method | test accuracy mean ± sd | seeds | target calls | wall s |")
    print("| --- | --- | --- | --- | --- | --- |")
    for task_name in args.tasks.split(","):
        for method in ("no prompt", "manual", "ape", "rlprompt"):
            mine = [r for r in rows if r["task"] == task_name and r["method"] == method]
            if not mine:
                continue
            scores = [r["test"] for r in mine]
            sd = statistics.stdev(scores) if len(scores) > 1 else 0.0
            print(
                f"| {task_name} | {method} | {statistics.mean(scores):.3f} ± {sd:.3f} | "
                f"{len(mine)} | {statistics.mean(r['calls'] for r in mine):.0f} | "
                f"{statistics.mean(r['seconds'] for r in mine):.0f} |"
            )


if __name__ == "__main__":
    main()
