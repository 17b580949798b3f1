"""Speed on the CPU this runs on: the dtype `auto` picks, decoding rates, the main job.

Issue 13's measurement, in one run on one machine:

1. the CPU facts the dtype choice reads (model, the flags that matter, torch's
   CPU capability, oneDNN's ISA cap) and the dtype `auto` chose, with its reason;
2. kept tokens/s of the evaluator and of a bare batched `model.generate` loop,
   in float32 and in bfloat16, on gsm8k test questions under the baseline prompt
   with the task's own generation settings (stop strings, max tokens), and the
   fraction of decoded rows x steps that became kept tokens;
3. the README's main job (`promptopt search --task gsm8k --strategy ape`) as a
   subprocess, cold (an empty cache directory: GGUF conversion included) and
   again on the same cache (a rerun, which should replay from the cache);
4. with --pytest, the README's test command's pytest, timed.

Targets (issue 13, on a 2-core AVX2-only CPU): auto within 10% of the faster
dtype; evaluator >= 1.0x the bare loop at that dtype; main job <= 5 min cold
and <= 15 s cached; pytest <= 8 min.

Any x86 machine can stand in for an AVX2-only CPU: --as-avx2 reruns this
script with ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2
MKL_ENABLE_INSTRUCTIONS=AVX2, which cap torch's own kernels, oneDNN and MKL (whose
SGEMM runs every float32 Linear layer, and otherwise picks AVX-512 where the CPU
has it) at AVX2. They must be set before torch loads, and every subprocess
inherits them. The CPU flags still show what the hardware has.

    PROMPTOPT_DATA_DIR=../shared/data python bench/speed.py [--as-avx2]
        [--questions 16] [--batch 16] [--skip-main-job] [--pytest]

Writes bench/results/speed[_avx2].json and .md. Times are wall seconds on a
machine that may be shared: the ratios measured in one run are the result.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
REPO = Path(__file__).resolve().parent.parent
AVX2_ENV = {
    "ATEN_CPU_CAPABILITY": "avx2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
}
FLAGS_THAT_MATTER = ("avx2", "avx512_f", "avx512_bf16", "amx_bf16")
MAIN_JOB = ["search", "--task", "gsm8k", "--strategy", "ape"]
TEST_COMMAND = [sys.executable, "-m", "pytest", "-q", "-n", "auto", "--maxprocesses", "4"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--as-avx2", action="store_true", help="cap torch at AVX2 (see above)")
    parser.add_argument("--questions", type=int, default=16, help="gsm8k test questions")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--skip-main-job", action="store_true")
    parser.add_argument("--pytest", action="store_true", help="also time the README's pytest")
    parser.add_argument("--out", type=Path, default=None, help="without suffix")
    args = parser.parse_args()
    if args.as_avx2 and any(os.environ.get(k) != v for k, v in AVX2_ENV.items()):
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **AVX2_ENV})
    capped = all(os.environ.get(k) == v for k, v in AVX2_ENV.items())
    out = args.out or RESULTS / ("speed_avx2" if capped else "speed")

    result: dict[str, Any] = {"machine": machine(), "capped_to_avx2": capped}
    print(describe_machine(result["machine"]), flush=True)
    result["decoding"] = {
        dtype: decoding_rates(dtype, args.questions, args.batch)
        for dtype in ("float32", "bfloat16")
    }
    result["auto"] = auto_summary(result["machine"]["auto"], result["decoding"])
    if not args.skip_main_job:
        result["main_job"] = main_job()
    if args.pytest:
        # A failing suite is recorded, not raised: its time still says something,
        # and the rates measured above are not lost.
        result["pytest_s"], result["pytest_exit_code"] = timed(
            TEST_COMMAND, os.environ.copy(), check=False
        )
    text = markdown(result)
    print(text)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    out.with_suffix(".md").write_text(text)


def machine() -> dict[str, Any]:
    import torch

    from promptopt.llm.dtype_choice import machine_facts, resolve_dtype
    from promptopt.llm.threads import configure_torch_threads

    facts = machine_facts("cpu")
    threads = configure_torch_threads()
    choice = resolve_dtype("auto")
    flags = facts.cpu_flags or frozenset()
    return {
        "cpu": facts.cpu_name or _proc_cpu_name(),
        # torch names AVX-512 Foundation avx512_f, /proc/cpuinfo avx512f.
        "flags": {
            flag: flag in flags or flag.replace("_f", "f") in flags for flag in FLAGS_THAT_MATTER
        },
        "torch": torch.__version__,
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_bf16": facts.onednn_bf16,
        "env": {k: os.environ.get(k, "") for k in (*AVX2_ENV, "OMP_NUM_THREADS")},
        "threads": threads.describe(),
        "auto": {"dtype": choice.dtype, "reason": choice.reason},
    }


def _proc_cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
        if line.startswith("model name"):
            return line.partition(":")[2].strip()
    return ""


def describe_machine(m: dict[str, Any]) -> str:
    flags = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in m["flags"].items())
    return (
        f"CPU {m['cpu']}; {flags}; torch {m['torch']} kernels {m['torch_cpu_capability']}, "
        f"oneDNN bfloat16 {m['onednn_bf16']}; {m['threads']}\n"
        f"auto picks {m['auto']['dtype']} ({m['auto']['reason']})"
    )


def decoding_rates(dtype: str, questions: int, batch: int) -> dict[str, Any]:
    """Kept tokens/s of the bare loop and the evaluator in one dtype, same questions."""
    import torch
    from evaluator_throughput import bare_generate  # bench/, beside this file

    from promptopt.core.domain import Usage
    from promptopt.data.task import load_task
    from promptopt.evaluation.evaluator import Evaluator
    from promptopt.evaluation.prompting import render_messages
    from promptopt.llm.hf import HFLLM
    from promptopt.llm.meter import MeteredLLM

    task = load_task("gsm8k", sizes={"test": questions})
    examples = task.examples("test")
    prompt = task.baseline_prompt()
    llm = HFLLM(dtype=dtype, batch_size=batch)
    texts = [llm.render(render_messages(prompt, e.input), None) for e in examples]
    gen = task.generation
    bare_generate(llm, texts[:2], 2, 4)  # warm-up

    started = time.perf_counter()
    bare_tokens = bare_generate(llm, texts, batch, gen.max_tokens, tuple(gen.stop))
    bare_s = time.perf_counter() - started

    usage = Usage()
    evaluator = Evaluator(MeteredLLM(llm, usage), task)
    steps: list[int] = []
    handle = llm.model.register_forward_pre_hook(
        lambda _m, _a, kw: (
            steps.append(int(kw["input_ids"].shape[0])) if kw["input_ids"].shape[1] == 1 else None
        ),
        with_kwargs=True,
    )
    try:
        started = time.perf_counter()
        evaluator.evaluate(prompt, examples)
        evaluator_s = time.perf_counter() - started
    finally:
        handle.remove()
    row = {
        "dtype": dtype,
        "questions": len(examples),
        "batch": batch,
        "max_tokens": gen.max_tokens,
        "torch_threads": torch.get_num_threads(),
        "bare": {"tokens": bare_tokens, "seconds": round(bare_s, 2)},
        "evaluator": {"tokens": usage.completion_tokens, "seconds": round(evaluator_s, 2)},
        "evaluator_kept_fraction": round(usage.completion_tokens / max(1, sum(steps)), 3),
    }
    for path in ("bare", "evaluator"):
        row[path]["tokens_per_s"] = round(row[path]["tokens"] / row[path]["seconds"], 1)
    row["evaluator_vs_bare"] = round(
        row["evaluator"]["tokens_per_s"] / row["bare"]["tokens_per_s"], 2
    )
    print(
        f"{dtype}: bare loop {row['bare']['tokens_per_s']} tok/s, evaluator "
        f"{row['evaluator']['tokens_per_s']} tok/s ({row['evaluator_vs_bare']}x), "
        f"kept {row['evaluator_kept_fraction']} of decoded rows x steps",
        flush=True,
    )
    return row


def auto_summary(auto: dict[str, Any], decoding: dict[str, Any]) -> dict[str, Any]:
    rates = {d: r["evaluator"]["tokens_per_s"] for d, r in decoding.items()}
    fastest = max(rates, key=lambda d: rates[d])
    return {
        "dtype": auto["dtype"],
        "fastest": fastest,
        "auto_vs_fastest": round(rates[auto["dtype"]] / rates[fastest], 2),
        "evaluator_vs_bare_at_auto": decoding[auto["dtype"]]["evaluator_vs_bare"],
    }


def main_job() -> dict[str, Any]:
    """The README's main job, cold on an empty cache directory, then rerun on it."""
    work = Path(tempfile.mkdtemp(prefix="promptopt-speed-"))
    env = {**os.environ, "PROMPTOPT_CACHE_DIR": str(work / "cache")}
    env.setdefault("PROMPTOPT_DATA_DIR", str(REPO.parent / "shared" / "data"))
    promptopt = shutil.which("promptopt") or "promptopt"
    try:
        times = {}
        for label in ("cold", "cached"):
            command = [
                promptopt,
                *MAIN_JOB,
                "--out",
                str(work / f"{label}.json"),
                "--run-dir",
                str(work / f"run-{label}"),
            ]
            times[f"{label}_s"], _ = timed(command, env, cwd=work)
            export = json.loads((work / f"{label}.json").read_text())
            times[f"{label}_usage"] = export.get("usage")
        return times
    finally:
        shutil.rmtree(work, ignore_errors=True)


def timed(
    command: list[str], env: dict[str, str], cwd: Path = REPO, check: bool = True
) -> tuple[float, int]:
    """Wall seconds and exit code of `command`."""
    print("$", " ".join(command), flush=True)
    started = time.perf_counter()
    done = subprocess.run(command, env=env, cwd=cwd, check=check, stdin=subprocess.DEVNULL)
    seconds = round(time.perf_counter() - started, 1)
    print(f"  {seconds} s (exit code {done.returncode})", flush=True)
    return seconds, done.returncode


def markdown(result: dict[str, Any]) -> str:
    m, auto = result["machine"], result["auto"]
    lines = [
        "Speed (bench/speed.py): " + describe_machine(m).replace("\n", "; ") + ".",
        "",
        "Capped to AVX2 (" + " ".join(f"{k}={v}" for k, v in AVX2_ENV.items()) + "): "
        f"{'yes' if result['capped_to_avx2'] else 'no'}.",
        "",
        "| dtype | questions | bare loop tok/s | evaluator tok/s | evaluator / bare "
        "| kept / decoded rows x steps |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for d, r in result["decoding"].items():
        lines.append(
            f"| {d} | {r['questions']} | {r['bare']['tokens_per_s']} "
            f"| {r['evaluator']['tokens_per_s']} | {r['evaluator_vs_bare']} "
            f"| {r['evaluator_kept_fraction']} |"
        )
    lines += [
        "",
        f"- auto picked {auto['dtype']}; the faster dtype here was {auto['fastest']}: "
        f"auto runs at {auto['auto_vs_fastest']}x the faster one's evaluator rate "
        "(target >= 0.9).",
        f"- evaluator / bare loop at auto's dtype: {auto['evaluator_vs_bare_at_auto']} "
        "(target >= 1.0).",
    ]
    job = result.get("main_job")
    if job:
        lines.append(
            f"- main job (`promptopt {' '.join(MAIN_JOB)}`): cold {job['cold_s']} s "
            f"(target <= 300, GGUF conversion included), cached rerun {job['cached_s']} s "
            "(target <= 15)."
        )
    if "pytest_s" in result:
        failed = result.get("pytest_exit_code", 0)
        status = f", FAILED with exit code {failed}" if failed else ""
        lines.append(
            f"- README test command's pytest: {result['pytest_s']} s (target <= 480){status}."
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
