"""Decoding without waste: promptopt's decoding loop against plain `generate`, in one run.

The same workloads, the same model, batches and seeds, decoded twice per dtype:
- old: one `model.generate` call per batch with `num_return_sequences=n`, as
  promptopt did before: finished rows keep being decoded (as padding) until the
  batch's longest row ends, and each sample prefills its own copy of the prompt;
- new: `HFLLM.generate` as it is (`promptopt.llm.decoding`): continuous
  batching (a finished row leaves the batch and the next prompt takes its place)
  and a request's samples share one prefill.

Workloads: gsm8k test questions under the baseline prompt with the task's own
generation settings (192 tokens max, stop at a blank line or "Question:"),
greedy as the evaluator asks them; the same questions sampled as boosted asks
them (n=3, temperature 0.5, seed 0); and APE's forward proposals for gsm8k with
its default knobs (4 subsets of 5 train demonstrations, 4 samples each at
temperature 0.9, 48 tokens max, the chat proposer's stop at a newline).

Prints, per dtype and workload, wall time and kept tokens/s for each path, the
ratios new/old, how many outputs are identical (greedy ones should all be; samples
are drawn from other generators, per row, so sampled outputs differ), and the rows
the model computed per kept token. Writes bench/results/decoding.json and .md.

    PROMPTOPT_DATA_DIR=../shared/data python bench/decoding.py \
        [--questions 32] [--sampled-questions 16] [--dtypes float32,bfloat16] [--batch 16]
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from promptopt.core.domain import Completion, GenerationRequest
from promptopt.core.paths import read_prompt_template
from promptopt.data.task import load_task
from promptopt.evaluation.prompting import render_demonstration, render_messages
from promptopt.llm.hf import HFLLM, _strip_after_eos, truncate_at_stop
from promptopt.strategies.ape import APEConfig

RESULTS = Path(__file__).resolve().parent / "results"


def plain_generate_group(
    llm: HFLLM,
    prompts: list[str],
    seeds: list[int],
    max_tokens: int,
    temperature: float,
    top_p: float,
    stop: tuple[str, ...],
    n: int,
    progress: object,
) -> list[Completion]:
    """The old path (as in tests/llm/test_hf_decoding.py): static batches of
    `batch_size // n` prompts, one `model.generate` call each."""
    tok = llm.tokenizer
    tok.padding_side = "left"
    params: dict[str, Any] = {"num_return_sequences": n, "pad_token_id": tok.pad_token_id}
    if temperature > 0:
        params.update(do_sample=True, temperature=temperature, top_p=top_p, top_k=0)
    else:
        params.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    if stop:
        params.update(stop_strings=list(stop), tokenizer=tok)
    per_batch = max(1, llm.batch_size // n)
    out: list[Completion] = []
    for start in range(0, len(prompts), per_batch):
        chunk = prompts[start : start + per_batch]
        enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        torch.manual_seed(seeds[start])
        with torch.inference_mode():
            ids = llm.model.generate(**enc, max_new_tokens=max_tokens, **params)
        rows = ids[:, enc["input_ids"].shape[1] :].tolist()
        lengths = enc["attention_mask"].sum(dim=1).tolist()
        for p, length in enumerate(lengths):
            kept = [_strip_after_eos(rows[p * n + j], llm._eos_ids()) for j in range(n)]
            texts = [truncate_at_stop(tok.decode(k, skip_special_tokens=True), stop) for k in kept]
            out.append(Completion(texts, int(length) * n, sum(len(k) for k in kept)))
    return out


@contextmanager
def count_positions(llm: HFLLM) -> Iterator[list[tuple[int, int]]]:
    """(rows, tokens per row) of every forward pass while active: what the model computed."""
    shapes: list[tuple[int, int]] = []

    def hook(_module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        rows, length = kwargs["input_ids"].shape[:2]
        shapes.append((int(rows), int(length)))

    handle = llm.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield shapes
    finally:
        handle.remove()


def run(llm: HFLLM, requests: list[GenerationRequest], path: str) -> dict[str, Any]:
    """Decode the workload on one path; time, kept tokens and computed rows."""
    if path == "old":
        llm._generate_group = lambda *args: plain_generate_group(llm, *args)  # type: ignore[method-assign]
    try:
        with count_positions(llm) as shapes:
            start = time.perf_counter()
            completions = llm.generate(requests)
            seconds = time.perf_counter() - start
    finally:
        if path == "old":
            del llm._generate_group
    kept = sum(c.completion_tokens for c in completions)
    return {
        "seconds": seconds,
        "kept_tokens": kept,
        "tokens_per_s": kept / seconds,
        # Prompt tokens prefilled, and rows x decoding steps: what each path paid for.
        "prefill_positions": sum(r * n for r, n in shapes if n > 1),
        "row_steps": sum(r for r, n in shapes if n == 1),
        "completions": completions,
    }


def same(a: list[Completion], b: list[Completion]) -> int:
    return sum(
        x.texts == y.texts and x.completion_tokens == y.completion_tokens
        for x, y in zip(a, b, strict=True)
    )


def workloads(questions: int, sampled: int) -> dict[str, list[GenerationRequest]]:
    task = load_task("gsm8k", sizes={"test": max(questions, sampled)})
    prompt = task.baseline_prompt()
    examples = task.examples("test")
    gen = task.generation

    def request(example: Any, **params: Any) -> GenerationRequest:
        return GenerationRequest(
            messages=render_messages(prompt, example.input),
            max_tokens=gen.max_tokens,
            stop=tuple(gen.stop),
            **params,
        )

    return {
        "greedy": [request(e, temperature=0.0, seed=0) for e in examples[:questions]],
        "sampled n=3": [request(e, temperature=0.5, n=3, seed=0) for e in examples[:sampled]],
        "APE proposals": proposals(task),
    }


def proposals(task: Any) -> list[GenerationRequest]:
    """APE's forward proposal requests for the task, as its chat proposer sends them
    (built here from the same meta-prompt and knobs; the strategy's own helper
    needs a whole search context)."""
    config = APEConfig()
    meta = read_prompt_template("ape_forward_chat.txt")
    train = task.examples("train")
    rng = random.Random(0)
    requests = []
    for s in range(config.num_subsamples):
        demos = rng.sample(train, config.demos_per_subsample)
        text = meta.replace(
            "{demonstrations}", "\n\n".join(render_demonstration(task.template, d) for d in demos)
        )
        requests.append(
            GenerationRequest.chat(
                text.strip(),
                stop=("\n",),
                max_tokens=config.proposal_max_tokens,
                temperature=config.proposal_temperature,
                n=config.proposals_per_subsample,
                seed=s,
            )
        )
    return requests


def measure(llm: HFLLM, name: str, requests: list[GenerationRequest]) -> dict[str, Any]:
    """old, new, new, old: both paths see the same share of the machine's other load."""
    runs: dict[str, list[dict[str, Any]]] = {"old": [], "new": []}
    for path in ("old", "new", "new", "old"):
        runs[path].append(run(llm, requests, path))
    row: dict[str, Any] = {"dtype": llm.dtype_choice.dtype, "workload": name}
    for path, done in runs.items():
        seconds = sum(r["seconds"] for r in done)
        kept = sum(r["kept_tokens"] for r in done)
        row[path] = {
            "seconds": round(seconds / len(done), 2),
            "tokens_per_s": round(kept / seconds, 1),
            "kept_tokens": done[0]["kept_tokens"],
            "prefill_positions": done[0]["prefill_positions"],
            "row_steps": done[0]["row_steps"],
            "kept_per_row_step": round(done[0]["kept_tokens"] / done[0]["row_steps"], 3),
        }
    row["requests"] = len(requests)
    row["rows"] = sum(r.n for r in requests)
    row["identical"] = min(
        same(a["completions"], b["completions"]) for a in runs["new"] for b in runs["old"]
    )
    row["tokens_per_s_ratio"] = round(row["new"]["tokens_per_s"] / row["old"]["tokens_per_s"], 2)
    row["wall_time_ratio"] = round(row["new"]["seconds"] / row["old"]["seconds"], 2)
    row["row_steps_ratio"] = round(row["new"]["row_steps"] / row["old"]["row_steps"], 2)
    row["prefill_ratio"] = round(
        row["new"]["prefill_positions"] / row["old"]["prefill_positions"], 2
    )
    return row


def markdown(rows: list[dict[str, Any]], header: str) -> str:
    lines = [
        header,
        "",
        "| dtype | workload | rows | old s | new s | old tok/s | new tok/s "
        "| tok/s new/old | wall new/old | prefilled tokens new/old | decoded rows new/old "
        "| kept/decoded old, new | identical |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['dtype']} | {r['workload']} | {r['rows']} | {r['old']['seconds']} "
            f"| {r['new']['seconds']} | {r['old']['tokens_per_s']} | {r['new']['tokens_per_s']} "
            f"| {r['tokens_per_s_ratio']} | {r['wall_time_ratio']} | {r['prefill_ratio']} "
            f"| {r['row_steps_ratio']} "
            f"| {r['old']['kept_per_row_step']}, {r['new']['kept_per_row_step']} "
            f"| {r['identical']}/{r['requests']} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--questions", type=int, default=32, help="greedy gsm8k questions")
    parser.add_argument("--sampled-questions", type=int, default=16, help="questions x 3 samples")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--batch", type=int, default=16, help="promptopt's default --batch-size")
    parser.add_argument("--out", type=Path, default=RESULTS / "decoding.json")
    args = parser.parse_args()

    loads = workloads(args.questions, args.sampled_questions)
    rows = []
    for dtype in args.dtypes.split(","):
        llm = HFLLM(dtype=dtype, batch_size=args.batch)
        llm.generate([GenerationRequest.chat("Hi", max_tokens=2)])  # warm-up
        for name, requests in loads.items():
            row = measure(llm, name, requests)
            rows.append(row)
            print(
                f"{dtype:<9} {name:<12} old {row['old']['seconds']:7.1f}s "
                f"{row['old']['tokens_per_s']:6.1f} tok/s | new {row['new']['seconds']:7.1f}s "
                f"{row['new']['tokens_per_s']:6.1f} tok/s | tok/s new/old "
                f"{row['tokens_per_s_ratio']:.2f}, wall new/old {row['wall_time_ratio']:.2f}, "
                f"prefill new/old {row['prefill_ratio']:.2f}, "
                f"decoded rows new/old {row['row_steps_ratio']:.2f}, "
                f"identical {row['identical']}/{row['requests']}",
                flush=True,
            )
    machine = {
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "batch": args.batch,
        "torch": torch.__version__,
    }
    header = (
        "Decoding: promptopt's loop (new) against plain transformers generate (old), "
        f"embedded model, gsm8k test under the baseline prompt, batch {args.batch}, "
        f"torch {machine['torch']} on {machine['cpu_capability']} with "
        f"{machine['torch_threads']} torch threads; each path timed twice (old, new, new, "
        "old), seconds are per run. 'prefilled tokens' counts prompt positions the model "
        "computed, 'decoded rows' rows x decoding steps; 'kept/decoded' is how many decoded "
        "rows became output tokens. Measured on a shared machine: ratios, not absolute "
        "rates, are the result."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(rows, header))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
