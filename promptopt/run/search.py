"""Run one search end to end: models, caches, run store, strategy, test report.

The CLI and the library share this entry point, so `promptopt search` and
`run_search(...)` behave the same.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from promptopt.core.domain import (
    Ensemble,
    EvalResult,
    Prompt,
    Usage,
)
from promptopt.core.errors import ConfigError
from promptopt.core.files import require_writable
from promptopt.core.paths import cache_root
from promptopt.core.registry import get_strategy
from promptopt.data.task import (
    Split,
    Task,
    require_examples,
)
from promptopt.evaluation.context_window import refuse_oversized, window_of, window_on_disk
from promptopt.evaluation.ensemble import EnsembleResult, evaluate_ensemble
from promptopt.evaluation.evaluator import Evaluator
from promptopt.llm.base import (
    LLM,
    describe,
)
from promptopt.llm.cache_files import open_cache
from promptopt.llm.factory import build_llm
from promptopt.llm.pricing import estimate_cost, load_prices
from promptopt.llm.stack import layered
from promptopt.run.choice import search_from_start
from promptopt.run.export import Export, Score, Scores, TaskRecord, recorded_task
from promptopt.run.spec import SearchSpec
from promptopt.run.spec import check_budget as check_budget  # compare imports it from here
from promptopt.run.start_guard import RULE
from promptopt.run.store import RunStore, write_json_atomic
from promptopt.strategies.base import (
    Reporter,
    SearchContext,
    SilentReporter,
    build_config,
)

SEARCH_SPLITS: tuple[Split, ...] = ("train", "dev", "test")
"""A search proposes from train, selects on dev and reports on test: none may be empty."""


def check_outputs(run_dir: Path, out: str | None, *, resume: bool = False) -> None:
    """The run directory and the export can be written: found out only when the
    result was written, after the whole search, this cost every model call of it."""
    require_writable(run_dir, "--resume" if resume else "--run-dir", directory=True)
    if out is not None:
        require_writable(Path(out), "--out")


def check_search_inputs(spec: SearchSpec, task: Task, start: Prompt) -> bool:
    """Every split holds examples, and each example fits the target's context window
    with the starting prompt, if that window can be read from disk without loading
    the model. Returns whether the window was checked (else check the loaded model)."""
    require_examples(task, SEARCH_SPLITS)
    window = window_on_disk(spec.target)
    if window is not None:
        refuse_oversized(window, task, [start], SEARCH_SPLITS)
    return window is not None


TEST_EXAMPLES_FILE = "test_examples.json"
"""Per-example test results of the best prompt and the baseline, in a run directory:
what paired significance tests and the failed-examples table of a report read."""


def per_example_rows(task: Task, result: EvalResult) -> list[dict[str, Any]]:
    examples = {e.id: e for e in task.examples("test")}
    rows = []
    for row in result.results:
        example = examples.get(row.example_id)
        rows.append(
            {
                "id": row.example_id,
                "input": example.input if example else None,
                "target": example.target if example else None,
                "output": row.output,
                "prediction": row.prediction,
                "score": row.score,
            }
        )
    return rows


def default_run_dir(task: str, strategy: str) -> Path:
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    safe_task = Path(task).stem if task.endswith((".yaml", ".yml")) else task
    return Path("runs") / f"{stamp}-{safe_task}-{strategy}"


def search_context(
    spec: SearchSpec,
    task: Task,
    store: RunStore,
    target_base: LLM,
    proposer_base: LLM,
    shared: Any | None,
    journal: Any | None,
    reporter: Reporter,
) -> tuple[SearchContext, Usage]:
    """The context a strategy searches in, over the layered model stack; also returns
    the target's share of the usage (the rest is the proposer's), for pricing."""
    usage, target_usage = Usage(), Usage()
    store.usage = usage
    target = layered(target_base, usage, spec.budget, shared, journal, target_usage)
    proposer = layered(proposer_base, usage, spec.budget, shared, journal)
    ctx = SearchContext(
        task=task,
        evaluator=Evaluator(target, task),
        proposer=proposer,
        seed=spec.seed,
        store=store,
        reporter=reporter,
        proposer_base=proposer_base,
        usage=usage,
        budget=spec.budget,
    )
    return ctx, target_usage


def run_search(spec: SearchSpec, reporter: Reporter | None = None) -> dict[str, Any]:
    """Search, then score the chosen prompt and the starting prompt on test; return the
    export. The starting prompt is scored on dev first and is what the export holds
    unless the strategy's best beats it there by more than noise (`start_guard`)."""
    reporter = reporter or SilentReporter()
    strategy = get_strategy(spec.strategy)
    config = build_config(strategy.Config, spec.params)
    spec.check()
    spec.require_credentials()
    run_dir = spec.run_dir or default_run_dir(spec.task, spec.strategy)
    check_outputs(run_dir, spec.out, resume=spec.resume)
    load_prices(spec.prices)  # a broken price table fails now, not after the search
    task = spec.load_task()
    start = spec.resolve_start(task)
    window_checked = check_search_inputs(spec, task, start)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot create --run-dir {run_dir} ({exc.strerror}): choose another --run-dir"
        ) from None
    store = RunStore(run_dir, spec.run_config(config), resume=spec.resume)
    try:
        # A corrupt cache or journal fails here, before any model is loaded.
        shared = open_cache(cache_root() / "calls") if spec.use_cache else None
        journal = store.journal()
        reporter.phase(f"Loading models ({spec.target.model}, {spec.proposer.model})")
        target_base = build_llm(spec.target)
        if not window_checked and (window := window_of(target_base)) is not None:
            refuse_oversized(window, task, [start], SEARCH_SPLITS)  # before any call
        proposer_base = build_llm(spec.proposer)

        ctx, target_usage = search_context(
            spec, task, store, target_base, proposer_base, shared, journal, reporter
        )
        ctx.start = start
        search_usage = ctx.usage
        started = time.perf_counter()
        result, choice = search_from_start(ctx, strategy, config, spec.demo_sets)
        search_seconds = time.perf_counter() - started

        eval_usage = Usage()
        test_target = layered(target_base, eval_usage, None, shared, journal)
        started = time.perf_counter()
        if choice.ensemble is not None:
            ensemble_test, baseline_test = score_ensemble_on_test(
                task, test_target, choice.ensemble, start, reporter
            )
        else:
            best_test, baseline_test = score_on_test(
                task, test_target, choice.prompt, start, reporter
            )
        test_seconds = time.perf_counter() - started
        best_result = ensemble_test.result if choice.ensemble is not None else best_test
        write_json_atomic(
            run_dir / TEST_EXAMPLES_FILE,
            {
                "best": per_example_rows(task, best_result),
                "baseline": per_example_rows(task, baseline_test),
            },
        )

        task_ref, data_file = recorded_task(spec.task, spec.data_file)
        scores = Scores(test=Score.of(best_result), baseline_test=Score.of(baseline_test))
        if choice.ensemble is not None:
            pool = result.ensemble_score
            scores.pool = Score(pool[0], pool[1]) if pool else None
            scores.members_test = [Score.of(r) for r in ensemble_test.members]
        else:
            scores.dev = Score.of(choice.dev)
        export = Export(
            task=TaskRecord(task.name, task_ref, spec.sizes, spec.data_seed, data_file),
            scores=scores,
            prompt=choice.prompt if choice.ensemble is None else None,
            ensemble=choice.ensemble,
            models={
                "target": {**describe(target_base), "spec": spec.target.to_dict()},
                "proposer": {**describe(proposer_base), "spec": spec.proposer.to_dict()},
            },
            strategy={"name": spec.strategy, "config": asdict(config), "stats": result.stats},
            seed=spec.seed,
            usage=usage_report(spec, search_usage, target_usage, eval_usage),
            timings={"search_s": round(search_seconds, 2), "test_eval_s": round(test_seconds, 2)},
            run_dir=str(run_dir),
            stopped_by_budget=result.stopped_by_budget,
            leaderboard=[
                {
                    "instruction": c.prompt.instruction,
                    "dev_score": c.dev_score,
                    "dev_n": c.dev_n,
                    "origin": c.origin,
                    "demonstrations": len(c.prompt.demonstrations),
                }
                for c in result.candidates
            ],
            improved=choice.improved,
            start={
                "source": spec.start_source,
                "prompt": start.to_dict(),
                "dev": choice.start_dev.to_dict(),
                "rule": RULE,
                "comparison": choice.paired.to_dict() if choice.paired else None,
                "reason": choice.reason,
            },
        ).to_dict()
        store.event("start_guard", improved=choice.improved, reason=choice.reason)
        store.finish(export)
        return export
    finally:
        store.close()


def _new_tokens(model: dict[str, Any], usage: Usage) -> tuple[dict[str, Any], int, int]:
    """What `estimate_cost` prices of a model's usage: the tokens of its new calls."""
    return model, usage.new_prompt_tokens, usage.new_completion_tokens


def usage_report(
    spec: SearchSpec, search: Usage, search_target: Usage, test_eval: Usage
) -> dict[str, Any]:
    """The export's usage: calls and tokens per phase, and their estimated cost.

    The search's usage is split into the target's share and the rest (the
    proposer, including calls a strategy charged itself), priced per model.
    Only new calls are priced: what the cache answered cost nothing.
    """
    proposer = search.minus(search_target)
    table = load_prices(spec.prices)
    target_spec, proposer_spec = spec.target.to_dict(), spec.proposer.to_dict()
    target_part = _new_tokens(target_spec, search_target)
    proposer_part = _new_tokens(proposer_spec, proposer)
    eval_part = _new_tokens(target_spec, test_eval)
    search_cost = estimate_cost(table, [target_part, proposer_part])
    eval_cost = estimate_cost(table, [eval_part])
    total = estimate_cost(table, [target_part, proposer_part, eval_part])
    return {
        "search": search.to_dict(),
        "test_eval": test_eval.to_dict(),
        "search_by_model": {"target": search_target.to_dict(), "proposer": proposer.to_dict()},
        "cost": {
            "search_usd": search_cost.usd,
            "test_eval_usd": eval_cost.usd,
            "total_usd": total.usd,
            "local": total.local,
            "unknown_models": total.unknown,
            "summary": total.describe(),
            "prices_read_on": table.read_on,
        },
    }


def score_on_test(
    task: Task, llm: LLM, best: Prompt, baseline: Prompt, reporter: Reporter
) -> tuple[EvalResult, EvalResult]:
    """The held-out report: the chosen prompt and the starting prompt, in one batch."""
    test = task.examples("test")
    prompts = [best] if best == baseline else [best, baseline]
    reporter.phase(
        f"Scoring on test ({len(prompts)} prompts x {len(test)})", total=len(prompts) * len(test)
    )
    results = Evaluator(llm, task).evaluate_many(prompts, test, progress=reporter.advance)
    return results[0], results[-1]


def score_ensemble_on_test(
    task: Task, llm: LLM, ensemble: Ensemble, start: Prompt, reporter: Reporter
) -> tuple[EnsembleResult, EvalResult]:
    """The held-out report of an ensemble (and of each member) against the baseline."""
    test = task.examples("test")
    evaluator = Evaluator(llm, task)
    reporter.phase(
        f"Scoring the ensemble on test ({len(ensemble.members)} prompts x "
        f"{ensemble.samples} samples x {len(test)})",
        total=len(ensemble.members) * len(test),
    )
    result = evaluate_ensemble(evaluator, ensemble, test, progress=reporter.advance)
    reporter.phase(f"Scoring the baseline on test ({len(test)})", total=len(test))
    baseline = evaluator.evaluate(start, test, progress=reporter.advance)
    return result, baseline
