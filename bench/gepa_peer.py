"""GEPA as a peer in the strategy table (issue 12, item 6).

GEPA (Agrawal et al. 2025, arXiv 2507.19457; the `gepa` package) evolves an
instruction by reflection: it runs the current candidate on a minibatch of
train examples, shows the inputs, outputs and feedback to a reflection model
that writes a new instruction, keeps the child if it beats its parent on that
minibatch, and scores kept children on the whole validation set, whose
per-example scores form the Pareto front that parents are sampled from.

This file runs the installed package's public API (`gepa.optimize` with a
`GEPAAdapter`) under the same conditions as promptopt's strategies, so its row
can sit in the same table:

- task and splits: `promptopt.data.task.load_task` (train is GEPA's trainset, dev
  its valset, test is held out and scored only at the end);
- metric: `promptopt.evaluation.evaluator.Evaluator`, so GEPA is scored exactly as every
  promptopt strategy (greedy generation and the task's scorer, or label
  log-probabilities for classification tasks);
- target and reflection model: the embedded model (`ModelSpec("hf",
  "embedded")`), the reflection model being promptopt's proposer, called
  through the LLM protocol's `generate`;
- budget: promptopt model calls, not GEPA's metric calls. Both models sit in
  the layered stack every promptopt search uses (run journal <- meter <- shared
  cache <- backend, cache hits charged), so target evaluations and reflection calls
  are charged alike and a hard `Budget(max_calls=...)` stops the run. When the
  meter refuses a batch, a stopper ends GEPA at its next iteration check and
  GEPA's best candidate so far is kept.

`gepa` is a bench-only extra (`pip install gepa==0.1.4`), never a dependency of
promptopt: if it is missing, or GEPA cannot run on a task, the row says why in
its `note` instead of failing the benchmark that imports `run_gepa`.

    python bench/gepa_peer.py --tasks antonyms,sst2 --seeds 0,1,2 --budget 200
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from promptopt.core.domain import Example, GenerationRequest, Prompt
from promptopt.core.errors import BudgetExhausted
from promptopt.data.task import Task
from promptopt.evaluation.evaluator import Evaluator
from promptopt.evaluation.prompting import fill_template
from promptopt.llm.base import LLM

GEPA_VERSION = "0.1.4"
COMPONENT = "instruction"
"""The one component GEPA evolves: the instruction of a promptopt Prompt (the
task's input template stays fixed, as in every promptopt strategy)."""
REFLECTION_MAX_TOKENS = 160
"""Room for a short preamble plus an instruction in a ``` block: GEPA's default
reflection prompt asks for the block, and a 135M model rarely stops early."""
REFLECTION_TEMPERATURE = 0.7
"""Sampled like promptopt's own reflector (Reflexion's default), so that
reflections on similar minibatches still differ; seeded, so reruns repeat."""
PROPOSAL_CHARS = 200
"""How much of each proposed instruction a row keeps, to show what GEPA tried."""
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class RunLog:
    """GEPA's logger and callback: keeps its log and counts what it proposed.

    The counts explain a flat row (no proposal, only empty ones, none accepted),
    which is the likely outcome with a 135M reflection model.
    """

    echo: bool = False
    lines: list[str] = field(default_factory=list)
    proposals: int = 0
    empty: int = 0
    unchanged: int = 0
    accepted: int = 0
    rejected: int = 0
    fenced: int = 0
    """Reflections that put the instruction in a ``` block, as GEPA's prompt asks;
    GEPA takes the whole reply as the instruction otherwise."""
    proposed: dict[int, dict[str, Any]] = field(default_factory=dict)
    _parent: str = ""

    def log(self, message: str) -> None:
        self.lines.append(message)
        if self.echo:
            print(f"  gepa| {message}", flush=True)

    def on_proposal_start(self, event: dict[str, Any]) -> None:
        self._parent = str(event["parent_candidate"].get(COMPONENT, ""))

    def on_proposal_end(self, event: dict[str, Any]) -> None:
        self.proposals += 1
        text = str(event["new_instructions"].get(COMPONENT, "")).strip()
        raw = str(event["raw_lm_outputs"].get(COMPONENT, ""))
        if not text:
            self.empty += 1
        elif text == self._parent.strip():
            self.unchanged += 1
        if "```" in raw:
            self.fenced += 1
        self.proposed[event["iteration"]] = {
            "iteration": event["iteration"],
            "instruction": text[:PROPOSAL_CHARS],
            "fenced": "```" in raw,
        }

    def on_candidate_accepted(self, event: dict[str, Any]) -> None:
        self.accepted += 1
        if event["iteration"] in self.proposed:
            self.proposed[event["iteration"]]["accepted"] = True

    def on_candidate_rejected(self, event: dict[str, Any]) -> None:
        self.rejected += 1
        if event["iteration"] in self.proposed:
            entry = self.proposed[event["iteration"]]
            entry["accepted"] = False
            entry["minibatch"] = [event["old_score"], event["new_score"]]


@dataclass
class BudgetStop:
    """GEPA stopper over promptopt's meter.

    GEPA's own `max_metric_calls` counts only metric evaluations, not reflection
    calls, and is checked between iterations; promptopt's meter counts both and
    refuses the batch that would cross the budget. The adapter and the reflection
    model record that refusal (or any other failure) here, GEPA's engine (with
    `raise_on_exception=False`) abandons the iteration, and this stopper ends the
    run, so `gepa.optimize` returns its state with every candidate scored so far.
    """

    reason: str | None = None
    failure: str | None = None

    def __call__(self, gepa_state: Any) -> bool:
        return self.reason is not None or self.failure is not None

    def on_error(self, event: dict[str, Any]) -> None:
        """A failure inside GEPA itself ends the run too, rather than looping on it."""
        exc = event["exception"]
        if not isinstance(exc, BudgetExhausted) and self.failure is None:
            self.failure = f"{type(exc).__name__}: {exc}"


class PromptoptAdapter:
    """`gepa.GEPAAdapter` that scores instructions with promptopt's Evaluator.

    Data instances are promptopt `Example`s; a candidate is
    `{"instruction": text}`, rendered with the task's template.
    """

    propose_new_texts = None  # GEPA's default reflective proposer, with our reflection model

    def __init__(self, task: Task, evaluator: Evaluator, stop: BudgetStop) -> None:
        self.task = task
        self.evaluator = evaluator
        self.stop = stop

    def evaluate(
        self, batch: list[Example], candidate: dict[str, str], capture_traces: bool = False
    ) -> Any:
        from gepa import EvaluationBatch

        prompt = self.task.prompt(candidate[COMPONENT])
        try:
            result = self.evaluator.evaluate(prompt, batch)
        except BudgetExhausted as stop:
            self.stop.reason = str(stop)
            raise
        except Exception as exc:
            self.stop.failure = f"{type(exc).__name__}: {exc}"
            raise
        outputs = [r.output for r in result.results]
        scores = [r.score for r in result.results]
        trajectories = None
        if capture_traces:
            trajectories = [
                {
                    "input": ex.input,
                    "output": r.output,
                    "prediction": r.prediction,
                    "expected": ex.target,
                    "score": r.score,
                }
                for ex, r in zip(batch, result.results, strict=True)
            ]
        return EvaluationBatch(outputs=outputs, scores=scores, trajectories=trajectories)

    def make_reflective_dataset(
        self, candidate: dict[str, str], eval_batch: Any, components_to_update: list[str]
    ) -> dict[str, list[dict[str, Any]]]:
        """What the reflection model reads: each input, the model's output, the expected
        answer and the score, in the record keys GEPA's default prompt describes."""
        records = []
        for trace in eval_batch.trajectories or []:
            right = trace["score"] >= 1.0
            feedback = (
                "Correct." if right else f"Incorrect. The expected output is: {trace['expected']}"
            )
            records.append(
                {
                    "Inputs": fill_template(self.task.template, trace["input"]),
                    "Generated Outputs": trace["output"].strip() or "(empty)",
                    "Expected Output": trace["expected"],
                    "Score": f"{trace['score']:.2f} (1.00 is best)",
                    "Feedback": feedback,
                }
            )
        return {name: records for name in components_to_update}


class ReflectionModel:
    """GEPA's `reflection_lm` (a prompt -> text callable) over promptopt's proposer.

    Each call is one sampled generation through the metered stack, so it is
    charged to the same budget as the target's evaluations.
    """

    def __init__(self, llm: LLM, seed: int, stop: BudgetStop) -> None:
        self.llm = llm
        self.seed = seed
        self.stop = stop
        self.calls = 0

    def __call__(self, prompt: str | list[dict[str, Any]]) -> str:
        if not isinstance(prompt, str):  # chat messages: GEPA sends these only with images
            prompt = "\n\n".join(_message_text(m) for m in prompt)
        request = GenerationRequest.chat(
            prompt,
            max_tokens=REFLECTION_MAX_TOKENS,
            temperature=REFLECTION_TEMPERATURE,
            seed=self.seed * 10_000 + self.calls,
        )
        self.calls += 1
        try:
            return self.llm.generate([request])[0].texts[0]
        except BudgetExhausted as stop:
            self.stop.reason = str(stop)
            raise
        except Exception as exc:
            self.stop.failure = f"{type(exc).__name__}: {exc}"
            raise


def _message_text(message: dict[str, Any]) -> str:
    content = message.get("content", "")
    if isinstance(content, str):
        return content
    return "\n".join(str(p.get("text", "")) for p in content if isinstance(p, dict))


def _row(task_name: str, seed: int, budget_calls: int, note: str, **values: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "task": task_name,
        "strategy": "gepa",
        "seed": seed,
        "budget": budget_calls,
        "n_test": None,
        "baseline_test": None,
        "test": None,
        "calls": 0,
        "note": note,
    }
    row.update(values)
    return row


def run_gepa(
    task_name: str, seed: int, budget_calls: int, test_size: int | None = None
) -> dict[str, Any]:
    """Run GEPA on one task at one seed under a promptopt call budget; score on test.

    Returns `{"task", "strategy": "gepa", "seed", "budget", "n_test",
    "baseline_test", "test", "calls", "note"}` plus details (GEPA's best
    instruction, dev scores, timings, proposal counts). `calls` counts every
    charged model call of the search: target evaluations and reflections.
    `test` and `baseline_test` are None only when GEPA could not run at all,
    and `note` then says why.
    """
    try:
        import gepa
    except ImportError:
        return _row(
            task_name,
            seed,
            budget_calls,
            f"gepa is not installed: pip install gepa=={GEPA_VERSION} (bench-only)",
        )
    from promptopt.core.domain import Budget, Usage
    from promptopt.core.paths import cache_root
    from promptopt.data.task import load_task
    from promptopt.llm.cache_files import open_cache
    from promptopt.llm.factory import ModelSpec, build_llm
    from promptopt.llm.stack import layered
    from promptopt.run.search import score_on_test
    from promptopt.strategies.base import SilentReporter

    task = load_task(task_name, sizes={"test": test_size} if test_size is not None else None)
    baseline = task.baseline_prompt()
    target_base = build_llm(ModelSpec("hf", "embedded"))
    proposer_base = build_llm(ModelSpec("hf", "embedded"))
    shared = open_cache(cache_root() / "calls")
    budget = Budget(max_calls=budget_calls)
    usage, target_usage = Usage(), Usage()
    stop = BudgetStop()
    log = RunLog(echo=bool(os.environ.get("GEPA_PEER_VERBOSE")))
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="gepa-journal-") as journal_dir:
        # The run journal: a request repeated within this run is free, as in a
        # promptopt run; the shared cache is charged (as in every promptopt
        # search), so the run does the same work however warm the cache is.
        journal = open_cache(Path(journal_dir))
        target = layered(target_base, usage, budget, shared, journal, target_usage)
        proposer = layered(proposer_base, usage, budget, shared, journal)
        try:
            evaluator = Evaluator(target, task)
        except Exception as exc:  # e.g. a label task on a model without log-probabilities
            journal.close()
            shared.close()
            return _row(task_name, seed, budget_calls, f"GEPA cannot run: {exc}")
        adapter = PromptoptAdapter(task, evaluator, stop)
        reflection = ReflectionModel(proposer, seed, stop)
        result = None
        try:
            result = gepa.optimize(
                seed_candidate={COMPONENT: baseline.instruction},
                trainset=task.examples("train"),
                valset=task.examples("dev"),
                adapter=adapter,
                reflection_lm=reflection,
                stop_callbacks=[stop],
                max_metric_calls=budget_calls,  # never binds first: metric calls <= model calls
                logger=log,
                callbacks=[log, stop],
                seed=seed,
                raise_on_exception=False,
                display_progress_bar=False,
            )
        except BudgetExhausted as exc:  # while scoring the seed on dev, before GEPA's loop
            stop.reason = str(exc)
        except Exception as exc:
            stop.failure = f"{type(exc).__name__}: {exc}"
            log.log(traceback.format_exc())
        finally:
            journal.close()
    search_s = time.perf_counter() - started

    best_instruction = baseline.instruction
    dev = baseline_dev = None
    candidates = 1
    if result is not None:
        best = result.best_candidate
        best_instruction = best[COMPONENT] if isinstance(best, dict) else str(best)
        dev = result.val_aggregate_scores[result.best_idx]
        baseline_dev = result.val_aggregate_scores[0]
        candidates = result.num_candidates
    best_prompt: Prompt = task.prompt(best_instruction)

    started = time.perf_counter()
    eval_usage = Usage()
    test_llm = layered(target_base, eval_usage, None, shared, None)
    best_test, baseline_test = score_on_test(
        task, test_llm, best_prompt, baseline, SilentReporter()
    )
    test_s = time.perf_counter() - started
    shared.close()

    note = _note(
        result is not None, stop, log, reflection.calls, best_instruction == baseline.instruction
    )
    return _row(
        task_name,
        seed,
        budget_calls,
        note,
        n_test=best_test.n,
        baseline_test=round(baseline_test.score, 4),
        test=round(best_test.score, 4),
        # Per test example, in the test split's order: the paired test against the start.
        test_scores=[r.score for r in best_test.results],
        baseline_scores=[r.score for r in baseline_test.results],
        calls=usage.calls,
        reflection_calls=usage.calls - target_usage.calls,
        instruction=best_instruction,
        dev=None if dev is None else round(dev, 4),
        baseline_dev=None if baseline_dev is None else round(baseline_dev, 4),
        n_dev=len(task.examples("dev")),
        candidates=candidates,
        proposals=log.proposals,
        accepted=log.accepted,
        proposed=list(log.proposed.values()),
        stopped_by_budget=stop.reason is not None,
        search_s=round(search_s, 1),
        test_s=round(test_s, 1),
        gepa_version=getattr(gepa, "__version__", GEPA_VERSION),
    )


def _note(ran: bool, stop: BudgetStop, log: RunLog, reflections: int, best_is_seed: bool) -> str:
    """One sentence on how the run ended and what GEPA's reflections produced."""
    if not ran:
        why = stop.failure or stop.reason or "unknown failure"
        if stop.reason and not stop.failure:
            why = f"the budget does not cover scoring the seed instruction on dev ({why})"
        return f"GEPA did not run: {why}; the row reports the baseline instruction"
    parts = [
        f"{reflections} reflections, {log.proposals} proposals ({log.fenced} in a code block "
        f"as asked, {log.empty} empty, {log.unchanged} unchanged), {log.accepted} accepted "
        f"onto the Pareto pool"
    ]
    if stop.failure:
        parts.append(f"stopped by an error: {stop.failure}")
    elif stop.reason:
        parts.append("stopped at the call budget")
    if log.proposals and log.empty + log.unchanged == log.proposals:
        parts.append("the reflection model never wrote a new instruction")
    if best_is_seed:
        parts.append("GEPA's best is the seed (baseline) instruction")
    return "; ".join(parts)


def rescore(path: Path) -> None:
    """Add per-example test scores to rows written before they were kept: GEPA's best
    instruction and the baseline are scored again on the row's test sample, through
    the shared cache (which the run filled, so nothing is generated again)."""
    from promptopt.core.domain import Usage
    from promptopt.core.paths import cache_root
    from promptopt.data.task import load_task
    from promptopt.llm.cache_files import open_cache
    from promptopt.llm.factory import ModelSpec, build_llm
    from promptopt.llm.stack import layered
    from promptopt.run.search import score_on_test
    from promptopt.strategies.base import SilentReporter

    rows = json.loads(path.read_text())
    target = build_llm(ModelSpec("hf", "embedded"))
    shared = open_cache(cache_root() / "calls")
    try:
        for row in rows:
            if row.get("test") is None or "test_scores" in row:
                continue
            task = load_task(row["task"], sizes={"test": row["n_test"]})
            usage = Usage()
            best, baseline = score_on_test(
                task,
                layered(target, usage, None, shared, None),
                task.prompt(row["instruction"]),
                task.baseline_prompt(),
                SilentReporter(),
            )
            if (
                round(best.score, 4) != row["test"]
                or round(baseline.score, 4) != row["baseline_test"]
            ):
                raise SystemExit(f"{path}: {row['task']} seed {row['seed']} did not reproduce")
            row["test_scores"] = [r.score for r in best.results]
            row["baseline_scores"] = [r.score for r in baseline.results]
            print(f"{row['task']} seed {row['seed']}: rescored, {usage.new_calls} new calls")
    finally:
        shared.close()
    path.write_text(json.dumps(rows, indent=2) + "\n")


def write_results(rows: list[dict[str, Any]], out: Path) -> None:
    """`out`.json (every row) and `out`.md (the table, mean over seeds per task)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")
    lines = [
        f"GEPA {GEPA_VERSION} (`bench/gepa_peer.py`): target and reflection model are the "
        "embedded SmolLM2-135M-Instruct; budget = promptopt model calls (target evaluations "
        "and reflections, cache hits charged); dev is GEPA's valset, test is held out.",
        "",
        "| task | seed | budget | n test | baseline test | GEPA test | GEPA dev (seed dev) "
        "| calls (reflections) | search s | note |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['seed']} | {r['budget']} | {r['n_test']} "
            f"| {_fmt(r['baseline_test'])} | {_fmt(r['test'])} "
            f"| {_fmt(r.get('dev'))} ({_fmt(r.get('baseline_dev'))}) "
            f"| {r['calls']} ({r.get('reflection_calls', '-')}) | {r.get('search_s', '-')} "
            f"| {r['note'].replace('|', '/')} |"
        )
    tasks = list(dict.fromkeys(r["task"] for r in rows))
    scored = [r for r in rows if r["test"] is not None]
    if len(scored) > len(tasks):
        lines += [
            "",
            "| task | seeds | baseline test | GEPA test (mean ± sd) |",
            "| --- | --- | --- | --- |",
        ]
        for task in tasks:
            mine = [r for r in scored if r["task"] == task]
            if not mine:
                continue
            tests = [r["test"] for r in mine]
            sd = statistics.stdev(tests) if len(tests) > 1 else 0.0
            lines.append(
                f"| {task} | {len(mine)} | {statistics.mean(r['baseline_test'] for r in mine):.3f} "
                f"| {statistics.mean(tests):.3f} ± {sd:.3f} |"
            )
    lines += ["", "Best instructions:", ""]
    lines += [f"- {r['task']} seed {r['seed']}: {r.get('instruction')!r}" for r in rows]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description="GEPA as a peer in the strategy table")
    parser.add_argument("--tasks", default="antonyms,sst2")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--budget", type=int, default=200, help="model calls per run")
    parser.add_argument("--test-size", type=int, default=None, help="default: the task's")
    parser.add_argument("--out", type=Path, default=RESULTS / "gepa_peer", help="without suffix")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    parser.add_argument("--verbose", action="store_true", help="echo GEPA's log")
    parser.add_argument(
        "--rescore",
        type=Path,
        nargs="*",
        default=[],
        help="only add per-example test scores to these result files (from the cache)",
    )
    args = parser.parse_args()

    import torch

    # One thread: on the shared 2-core machine two OpenMP threads per process were
    # measured 40x slower (bench/reflexion_quality.py).
    torch.set_num_threads(args.threads)
    default_data = Path(__file__).resolve().parents[2] / "shared" / "data"
    if default_data.is_dir():
        os.environ.setdefault("PROMPTOPT_DATA_DIR", str(default_data))
    if args.verbose:
        os.environ["GEPA_PEER_VERBOSE"] = "1"
    if args.rescore:
        for path in args.rescore:
            rescore(path)
        return
    rows = []
    for task in args.tasks.split(","):
        for seed in (int(s) for s in args.seeds.split(",")):
            started = time.perf_counter()
            row = run_gepa(task, seed, args.budget, args.test_size)
            row["seconds"] = round(time.perf_counter() - started, 1)
            rows.append(row)
            print(
                f"{task:<18} seed {seed}: baseline {_fmt(row['baseline_test'])}  "
                f"gepa {_fmt(row['test'])}  (n={row['n_test']}, {row['calls']} calls, "
                f"{row['seconds']:.0f}s)  {row.get('instruction', '')!r:.80}\n    {row['note']}",
                flush=True,
            )
            write_results(rows, args.out)


if __name__ == "__main__":
    main()
