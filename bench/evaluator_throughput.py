"""Evaluator throughput on the embedded model versus one-at-a-time and a bare batched loop.

Same model, same dtype, same prompts, same run. Prints tokens/s and examples/s
for each path and the two ratios the design targets:
  evaluator / bare batched loop   (target >= 0.8: the evaluator adds little)
  evaluator / one request at a time

    python bench/evaluator_throughput.py [--examples 64] [--new-tokens 32] [--batch 32]
        [--dtype auto]

--dtype auto (the default) is what promptopt picks on this machine; the line
above the table says which dtype that was and why.
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import torch

from promptopt.core.domain import Message, Usage
from promptopt.data.task import GenerationSettings, load_task
from promptopt.evaluation.evaluator import Evaluator
from promptopt.evaluation.prompting import render_user_message
from promptopt.llm.hf import HFLLM
from promptopt.llm.stack import layered


def bare_generate(
    llm: HFLLM, texts: list[str], batch: int, new_tokens: int, stop: tuple[str, ...] = ()
) -> int:
    """The ceiling, as a user would write it: left-padded batches through
    `model.generate`, greedy, with the stop strings given. Returns the tokens kept
    (up to EOS or a stop)."""
    tok, model = llm.tokenizer, llm.model
    tok.padding_side = "left"
    eos = llm._eos_ids()
    extra: dict[str, Any] = {"stop_strings": list(stop), "tokenizer": tok} if stop else {}
    generated = 0
    for start in range(0, len(texts), batch):
        enc = tok(
            texts[start : start + batch],
            return_tensors="pt",
            padding=True,
            add_special_tokens=False,
        )
        with torch.inference_mode():
            out = model.generate(
                **enc,
                max_new_tokens=new_tokens,
                do_sample=False,
                pad_token_id=tok.pad_token_id,
                **extra,
            )
        for row in out[:, enc["input_ids"].shape[1] :].tolist():
            n = next((i for i, t in enumerate(row) if t in eos), len(row))
            generated += n
    return generated


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--examples", type=int, default=64)
    parser.add_argument(
        "--one-at-a-time",
        type=int,
        default=16,
        help="examples for the slow path (its rate is per example)",
    )
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--dtype", default="auto", help="auto, float32, bfloat16 or float16")
    parser.add_argument("--task", default="gsm8k")
    args = parser.parse_args()

    task = load_task(args.task, sizes={"test": args.examples})
    # A fixed workload: up to N new tokens, no stop string.
    task.generation = GenerationSettings(max_tokens=args.new_tokens, stop=())
    examples = task.examples("test")
    prompt = task.baseline_prompt()
    llm = HFLLM(dtype=args.dtype, batch_size=args.batch)
    texts = [
        llm.render((Message("user", render_user_message(prompt, e.input)),), None) for e in examples
    ]
    bare_generate(llm, texts[:2], 2, 4)  # warm-up

    rows = []
    t = time.perf_counter()
    tokens = bare_generate(llm, texts, args.batch, args.new_tokens)
    rows.append(("bare batched loop", len(texts), tokens, time.perf_counter() - t))

    usage = Usage()
    evaluator = Evaluator(layered(llm, usage, None, None, None), task)
    t = time.perf_counter()
    evaluator.evaluate(prompt, examples)
    rows.append(
        ("promptopt evaluator", len(examples), usage.completion_tokens, time.perf_counter() - t)
    )

    few = texts[: args.one_at_a_time]
    t = time.perf_counter()
    tokens = bare_generate(llm, few, 1, args.new_tokens)
    rows.append(("one request at a time", len(few), tokens, time.perf_counter() - t))

    print(
        f"model {llm.model_id}, dtype {llm.dtype_choice.dtype} ({llm.dtype_choice.reason}), "
        f"batch {args.batch}, {args.new_tokens} new tokens max, task {args.task}, "
        f"torch threads {torch.get_num_threads()}"
    )
    print(f"{'path':<24}{'examples':>9}{'tokens':>8}{'seconds':>9}{'tok/s':>8}{'ex/s':>7}")
    rate = {}
    for name, n, tok, sec in rows:
        rate[name] = (tok / sec, n / sec)
        print(f"{name:<24}{n:>9}{tok:>8}{sec:>9.1f}{tok / sec:>8.1f}{n / sec:>7.2f}")
    ev = rate["promptopt evaluator"]
    for label, other in (
        ("bare loop", "bare batched loop"),
        ("one at a time", "one request at a time"),
    ):
        ref = rate[other]
        print(
            f"evaluator / {label}: {ev[0] / ref[0]:.2f} tokens/s, {ev[1] / ref[1]:.2f} examples/s"
        )


if __name__ == "__main__":
    main()
