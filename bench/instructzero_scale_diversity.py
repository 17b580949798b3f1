"""How many distinct instructions does InstructZero's writer write per projection scale?

BO over z can only help if different z make the writer write different
instructions. At projection_scale 1.0 (soft tokens as large as real
embeddings) the 135M writer wrote almost the same instruction for every z, so
this probes, per task and scale, 20 uniform random z through exactly the
search's writer prompt and projection, and counts distinct instructions and
how many look like an instruction at all (a crude garbage check; the texts are
written out so a reader can judge). No target model is called.

    python bench/instructzero_scale_diversity.py [--scales 1,3,10] [--points 20]
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

TASKS = "antonyms,first_word_letter,singular_to_plural,sentiment"


def looks_like_instruction(text: str) -> bool:
    """At least 3 words, mostly letters, and no word repeated 3 times running.

    Cheap and deliberately loose: it flags empty, symbol soup and stuck-loop
    outputs, not whether the instruction is any good.
    """
    words = text.split()
    if len(words) < 3:
        return False
    letters = sum(ch.isalpha() or ch.isspace() for ch in text)
    if letters / len(text) < 0.8:
        return False
    lowered = [w.lower() for w in words]
    return not any(lowered[i] == lowered[i + 1] == lowered[i + 2] for i in range(len(words) - 2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", default=TASKS)
    parser.add_argument("--scales", default="1,3,10")
    parser.add_argument("--points", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, default=Path("bench/results/instructzero_scale_diversity.jsonl")
    )
    args = parser.parse_args()

    import torch

    from promptopt.data.task import load_task
    from promptopt.llm.factory import ModelSpec, build_llm
    from promptopt.strategies import instructzero_bo as bayesopt
    from promptopt.strategies.ape import clean_instruction
    from promptopt.strategies.instructzero import InstructZeroConfig, writer_text

    torch.set_num_threads(1)
    config = InstructZeroConfig()
    writer = build_llm(ModelSpec("hf", "embedded"))
    points = bayesopt.uniform_points(args.points, config.intrinsic_dim, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    summary = []
    for task_name in args.tasks.split(","):
        task = load_task(task_name)
        # The same demonstrations a search with this seed shows (SearchContext.rng).
        text = writer_text(
            task, writer, config.demos, random.Random(f"{args.seed}:instructzero-demos")
        )
        for scale in (float(s) for s in args.scales.split(",")):
            matrix = bayesopt.projection_matrix(
                config.intrinsic_dim,
                config.n_tokens,
                writer.hidden_size,
                writer.embedding_std(),
                scale,
                seed=args.seed,
            )
            started = time.perf_counter()
            completion = writer.generate_from_soft_prompts(
                bayesopt.project(points, matrix, config.n_tokens),
                text,
                max_tokens=config.max_instruction_tokens,
            )
            instructions = [clean_instruction(t) for t in completion.texts]
            row = {
                "task": task_name,
                "scale": scale,
                "points": args.points,
                "distinct": len(set(instructions)),
                "instruction_like": sum(looks_like_instruction(i) for i in instructions),
                "distinct_instruction_like": len(
                    {i for i in instructions if looks_like_instruction(i)}
                ),
                "mean_words": round(
                    sum(len(i.split()) for i in instructions) / len(instructions), 1
                ),
                "seconds": round(time.perf_counter() - started, 1),
                "instructions": instructions,
            }
            summary.append(row)
            with args.out.open("a") as handle:
                handle.write(json.dumps(row) + "\n")
            print(
                f"{task_name:<20} scale {scale:>5}: "
                f"{row['distinct']:>2} distinct of {args.points}, "
                f"{row['instruction_like']:>2} instruction-like "
                f"({row['distinct_instruction_like']} distinct), {row['mean_words']} words, "
                f"{row['seconds']}s",
                flush=True,
            )
            for instruction in sorted(set(instructions))[:6]:
                print(f"    {instruction[:100]!r}", flush=True)
    print()
    print("| task | scale | distinct of N | instruction-like | distinct instruction-like |")
    print("| --- | --- | --- | --- | --- |")
    for row in summary:
        print(
            f"| {row['task']} | {row['scale']:g} | {row['distinct']}/{row['points']} "
            f"| {row['instruction_like']} | {row['distinct_instruction_like']} |"
        )


if __name__ == "__main__":
    main()
