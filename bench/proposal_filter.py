"""What APE's proposal filter keeps of what the embedded proposer writes.

Runs only APE's proposal step (default config, forward mode, seed 0) with the
embedded 135M model as proposer, per task: the same requests a search sends,
then `filter_proposals` with the demonstrations shown and the grounded
candidates (start + format constraints) as known instructions. No target
model is called. Writes a markdown table of sampled / kept / rejected by
reason, the grounded candidates, and every proposal with its verdict, so a
reader can judge whether the filter drops anything that reads like an
instruction. The raw proposals go to a JSON-lines file next to it, so a changed
filter can be re-judged on the same texts without the model (`--refilter`).

    nice python bench/proposal_filter.py [--tasks gsm8k,antonyms,...] [--seed 0]
    python bench/proposal_filter.py --refilter
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

TASKS = "gsm8k,antonyms,first_word_letter,singular_to_plural,sentiment,sst2,subj,trec"


def context(task_name: str, seed: int, proposer: Any, run_dir: Path) -> Any:
    """A SearchContext like a search's. The proposal step never scores, so
    re-judging saved texts (no proposer) needs no evaluator either."""
    from promptopt.data.task import load_task
    from promptopt.evaluation.evaluator import Evaluator
    from promptopt.run.store import RunStore
    from promptopt.strategies.base import SearchContext

    task = load_task(task_name)
    return SearchContext(
        task=task,
        evaluator=Evaluator(proposer, task) if proposer is not None else None,  # type: ignore[arg-type]
        proposer=proposer,
        seed=seed,
        store=RunStore(run_dir, {"task": task_name}),
    )


def sample(task_name: str, seed: int, proposer: Any, run_root: Path) -> dict[str, Any]:
    """One task's proposal step with the model: the raw texts it wrote."""
    from promptopt.strategies.ape import APEConfig
    from promptopt.strategies.ape_proposing import forward_requests

    ctx = context(task_name, seed, proposer, run_root / f"{task_name}-sample")
    started = time.perf_counter()
    completions = proposer.generate(forward_requests(ctx, APEConfig()))
    texts = [t for c in completions for t in c.texts]
    return {"task": task_name, "seed": seed, "raw": texts, "seconds": time.perf_counter() - started}


def judge(raw: dict[str, Any], run_root: Path) -> dict[str, Any]:
    """The filter's verdicts on one task's raw proposals, as APE filters them."""
    from promptopt.strategies.ape import APEConfig
    from promptopt.strategies.ape_proposing import grounded_candidates, shown_examples
    from promptopt.strategies.proposals import filter_proposals

    ctx = context(raw["task"], raw["seed"], None, run_root / f"{raw['task']}-judge")
    config = APEConfig()
    grounded = grounded_candidates(ctx, config)
    result = filter_proposals(
        raw["raw"], shown_examples(ctx, config), known=[i for i, _ in grounded]
    )
    return {
        **raw,
        "sampled": len(raw["raw"]),
        "kept": result.kept,
        "rejected": result.rejected,
        "decisions": result.decisions,
        "grounded": grounded,
    }


def render(rows: list[dict[str, Any]], seed: int) -> str:
    """The markdown report: summary table, then each task's texts and verdicts."""
    reasons = sorted({r for row in rows for r in row["rejected"]})
    lines = [
        "# APE proposal filter on the embedded proposer",
        "",
        f"APE's proposal step only (default config: 4 subsets x 4 samples, chat "
        f"forward template, temperature 0.9, 48 tokens), seed {seed}, embedded "
        "SmolLM2-135M-Instruct as proposer; `filter_proposals` with the shown "
        "demonstrations and the grounded candidates as known instructions. "
        "Script: `bench/proposal_filter.py`.",
        "",
        "| task | sampled | kept | " + " | ".join(reasons) + " | grounded candidates |",
        "| --- | --- | --- | " + " | ".join("---" for _ in reasons) + " | --- |",
    ]
    for row in rows:
        counts = " | ".join(str(row["rejected"].get(r, 0)) for r in reasons)
        lines.append(
            f"| {row['task']} | {row['sampled']} | {len(row['kept'])} | {counts} "
            f"| {len(row['grounded'])} |"
        )
    total = Counter[str]()
    for row in rows:
        total.update(row["rejected"])
    sampled = sum(r["sampled"] for r in rows)
    kept = sum(len(r["kept"]) for r in rows)
    lines.append(
        f"| all | {sampled} | {kept} | "
        + " | ".join(str(total.get(r, 0)) for r in reasons)
        + f" | {sum(len(r['grounded']) for r in rows)} |"
    )
    for row in rows:
        lines += ["", f"## {row['task']}", "", "Grounded candidates (no proposer):", ""]
        lines += [f"- ({origin}) {text}" for text, origin in row["grounded"]]
        lines += ["", "Kept proposals:", ""]
        lines += [f"- {text}" for text in row["kept"]] or ["- (none)"]
        lines += ["", "Every proposal (cleaned) and its verdict:", ""]
        lines += [f"- `{verdict}`: {_quote(text)}" for text, verdict in row["decisions"]]
    return "\n".join(lines) + "\n"


def _quote(text: str) -> str:
    return repr(text).replace("|", "\\|")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default=TASKS)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("bench/results/proposal_filter.md"))
    parser.add_argument(
        "--refilter", action="store_true", help="re-judge the saved proposals, no model"
    )
    args = parser.parse_args()
    raw_path = args.out.with_suffix(".jsonl")
    run_root = Path(tempfile.mkdtemp(prefix="proposal-filter-"))
    if args.refilter:
        raws = [json.loads(line) for line in raw_path.read_text(encoding="utf-8").splitlines()]
    else:
        raws = sample_all(args.tasks.split(","), args.seed, run_root)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        raw_path.write_text("".join(json.dumps(r) + "\n" for r in raws), encoding="utf-8")
    rows = [judge(raw, run_root) for raw in raws]
    for row in rows:
        print(
            f"{row['task']:<20} sampled {row['sampled']:>3}  kept {len(row['kept']):>2}  "
            f"rejected {dict(sorted(row['rejected'].items()))}",
            flush=True,
        )
    args.out.write_text(render(rows, rows[0]["seed"]), encoding="utf-8")
    print(f"wrote {args.out} and {raw_path}")


def sample_all(tasks: list[str], seed: int, run_root: Path) -> list[dict[str, Any]]:
    """Every task's raw proposals from the embedded model, one thread (shared CPU)."""
    import torch

    from promptopt.llm.factory import ModelSpec, build_llm

    torch.set_num_threads(1)
    proposer = build_llm(ModelSpec("hf", "embedded"))
    raws = []
    for task_name in tasks:
        raws.append(sample(task_name, seed, proposer, run_root))
        print(f"{task_name:<20} sampled in {raws[-1]['seconds']:.0f}s", flush=True)
    return raws


if __name__ == "__main__":
    main()
