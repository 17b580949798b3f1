"""How demonstrations reach the model: chat turns vs one text block, no search.

For each task, the task's baseline instruction with k random train
demonstrations (k = 0, and each of --ks), rendered as chat turns (the
instruction as system message, each demonstration a user/assistant pair) or as
one text block, scored on the same test examples with the embedded model.
Several demonstration draws (--draws) average out which examples were drawn.
Writes bench/results/demo_rendering.json and a Markdown table beside it.

    python bench/demo_rendering.py [--tasks antonyms,...] [--ks 3,8] [--draws 2]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import replace
from pathlib import Path

DEFAULT_TASKS = (
    "antonyms,first_word_letter,singular_to_plural,sentiment,sst2,subj,trec,translation_en-de,gsm8k"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default=DEFAULT_TASKS)
    parser.add_argument("--ks", default="3,8")
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument("--test-size", type=int, default=50)
    parser.add_argument("--out", type=Path, default=Path("bench/results/demo_rendering.json"))
    args = parser.parse_args()

    from promptopt.core.domain import Usage
    from promptopt.core.paths import cache_root
    from promptopt.data.task import list_tasks, load_task
    from promptopt.evaluation.evaluator import Evaluator
    from promptopt.llm.cache_files import open_cache
    from promptopt.llm.factory import ModelSpec, build_llm
    from promptopt.llm.stack import layered

    known = {name for name, _ in list_tasks()}
    shared = open_cache(cache_root() / "calls")
    llm = layered(build_llm(ModelSpec("hf", "embedded")), Usage(), None, shared, None)
    ks = [int(k) for k in args.ks.split(",")]
    rows = []
    for name in args.tasks.split(","):
        if name not in known:
            print(f"{name}: not a built-in task, skipped", flush=True)
            continue
        test_size = min(args.test_size, 30) if name == "gsm8k" else args.test_size
        task = load_task(name, sizes={"test": test_size})
        test, train = task.examples("test"), task.examples("train")
        evaluator = Evaluator(llm, task)
        started = time.perf_counter()
        base = evaluator.evaluate(task.baseline_prompt(), test).score
        row = {"task": name, "n_test": len(test), "no_demos": base, "by_k": {}}
        for k in ks:
            scores: dict[str, list[float]] = {"chat": [], "text": []}
            for draw in range(args.draws):
                demos = random.Random(f"{name}:{k}:{draw}").sample(train, min(k, len(train)))
                for fmt in ("chat", "text"):
                    prompt = replace(task.prompt(task.baseline_instruction, demos), demo_format=fmt)
                    scores[fmt].append(evaluator.evaluate(prompt, test).score)
            row["by_k"][str(k)] = {fmt: statistics.mean(v) for fmt, v in scores.items()}
        row["seconds"] = round(time.perf_counter() - started, 1)
        rows.append(row)
        print(json.dumps(row), flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        f"Embedded model, baseline instruction, k random train demonstrations "
        f"(mean over {args.draws} draws), test accuracy.",
        "",
        "| task | n | no demos | "
        + " | ".join(f"{k} as text | {k} as chat turns" for k in ks)
        + " |",
        "| --- | --- | --- | " + " | ".join("--- | ---" for _ in ks) + " |",
    ]
    for row in rows:
        cells = " | ".join(
            f"{row['by_k'][str(k)]['text']:.3f} | {row['by_k'][str(k)]['chat']:.3f}" for k in ks
        )
        lines.append(f"| {row['task']} | {row['n_test']} | {row['no_demos']:.3f} | {cells} |")
    for k in ks:
        chat = statistics.mean(r["by_k"][str(k)]["chat"] for r in rows)
        text = statistics.mean(r["by_k"][str(k)]["text"] for r in rows)
        wins = sum(r["by_k"][str(k)]["chat"] > r["by_k"][str(k)]["text"] for r in rows)
        lines.append("")
        lines.append(
            f"k={k}: mean over tasks chat {chat:.3f} vs text {text:.3f}; "
            f"chat higher on {wins} of {len(rows)} tasks"
        )
    args.out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
