"""Run one search end to end: models, caches, run store, strategy, test report.

The CLI and the library share this entry point, so `promptopt search` and
`run_search(...)` behave the same.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from promptopt import __version__
from promptopt.ensemble import EnsembleResult, evaluate_ensemble
from promptopt.evaluate import Evaluator
from promptopt.export import ensemble_export, prompt_export
from promptopt.llm.base import LLM, describe
from promptopt.llm.cache import CachedLLM, open_cache
from promptopt.llm.factory import ModelSpec, build_llm
from promptopt.llm.meter import MeteredLLM
from promptopt.paths import cache_root
from promptopt.pricing import estimate_cost, load_prices
from promptopt.registry import get_strategy
from promptopt.store import RunStore, write_json_atomic
from promptopt.strategies.base import Reporter, SearchContext, SilentReporter, build_config
from promptopt.task import Task, load_task, task_from_data_file
from promptopt.types import Budget, Ensemble, EvalResult, Prompt, Usage


@dataclass
class SearchSpec:
    task: str
    strategy: str = "ape"
    params: dict[str, str] = field(default_factory=dict)
    seed: int = 0
    target: ModelSpec = field(default_factory=lambda: ModelSpec("hf", "embedded"))
    proposer: ModelSpec = field(default_factory=lambda: ModelSpec("hf", "embedded"))
    sizes: dict[str, int] = field(default_factory=dict)
    data_seed: int = 0
    budget: Budget = field(default_factory=Budget)
    run_dir: Path | None = None
    resume: bool = False
    use_cache: bool = True
    budget_counts_cache: bool = False
    """Charge shared-cache hits to the budget like model calls (see `layered`)."""
    data_file: dict[str, str] | None = None
    """Quick custom task: path, input_field, target_field, metric."""
    out: str | None = None
    prices: str | None = None
    """Extra price table (YAML) for the cost estimate; not part of the run's identity."""

    @classmethod
    def from_run_config(cls, config: dict[str, Any], run_dir: Path) -> SearchSpec:
        """The spec an interrupted run was started with, to resume it."""
        budget = config.get("budget") or {}
        return cls(
            task=config["task"],
            strategy=config["strategy"],
            params=config.get("params", {}),
            seed=config["seed"],
            data_seed=config.get("data_seed", 0),
            target=ModelSpec(**config["target"]),
            proposer=ModelSpec(**config["proposer"]),
            sizes=config.get("sizes", {}),
            budget=Budget(budget.get("max_calls"), budget.get("max_tokens")),
            run_dir=run_dir,
            resume=True,
            use_cache=config.get("use_cache", True),
            budget_counts_cache=config.get("budget_counts_cache", False),
            data_file=config.get("data_file"),
            out=config.get("out"),
        )

    def load_task(self) -> Task:
        if self.data_file:
            return task_from_data_file(
                Path(self.data_file["path"]),
                input_field=self.data_file["input_field"],
                target_field=self.data_file["target_field"],
                scorer=self.data_file["metric"],
                sizes=self.sizes or None,
                seed=self.data_seed,
            )
        return load_task(self.task, sizes=self.sizes or None, seed=self.data_seed)

    def run_config(self, strategy_config: Any) -> dict[str, Any]:
        return {
            "task": self.task,
            "strategy": self.strategy,
            "params": dict(sorted(self.params.items())),
            "strategy_config": asdict(strategy_config),
            "seed": self.seed,
            "data_seed": self.data_seed,
            "target": self.target.to_dict(),
            "proposer": self.proposer.to_dict(),
            "sizes": dict(sorted(self.sizes.items())),
            "budget": {"max_calls": self.budget.max_calls, "max_tokens": self.budget.max_tokens},
            "use_cache": self.use_cache,
            "budget_counts_cache": self.budget_counts_cache,
            "data_file": self.data_file,
            "out": self.out,
            "promptopt_version": __version__,
        }


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


def layered(
    base: LLM,
    usage: Usage,
    budget: Budget | None,
    shared: Any | None,
    journal: Any | None,
    also: Usage | None = None,
    *,
    charge_cache_hits: bool = False,
) -> LLM:
    """backend <- meter (charges, budget) <- shared cache <- run journal.

    `also` is charged too, to know one model's share of a shared usage (for pricing).
    With `charge_cache_hits` the meter sits above the shared cache instead, so a
    request the cache serves is charged and budgeted like one the model answers:
    `compare` uses it so that every strategy gets the same amount of work under
    one budget, however much of it earlier runs left in the cache.
    """
    if shared is not None and charge_cache_hits:
        llm: LLM = MeteredLLM(CachedLLM(base, shared, usage), usage, budget, also)
    else:
        llm = MeteredLLM(base, usage, budget, also)
        if shared is not None:
            llm = CachedLLM(llm, shared, usage)
    if journal is not None:
        llm = CachedLLM(llm, journal, usage, replay_charges=True)
    return llm


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
    charge = spec.budget_counts_cache
    target = layered(
        target_base, usage, spec.budget, shared, journal, target_usage, charge_cache_hits=charge
    )
    proposer = layered(proposer_base, usage, spec.budget, shared, journal, charge_cache_hits=charge)
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
    """Search, then score the best prompt and the baseline on test; return the export."""
    reporter = reporter or SilentReporter()
    strategy = get_strategy(spec.strategy)
    config = build_config(strategy.Config, spec.params)
    load_prices(spec.prices)  # a broken price table fails now, not after the search
    task = spec.load_task()
    run_dir = spec.run_dir or default_run_dir(spec.task, spec.strategy)
    run_dir.mkdir(parents=True, exist_ok=True)
    store = RunStore(run_dir, spec.run_config(config), resume=spec.resume)
    try:
        reporter.phase(f"Loading models ({spec.target.model}, {spec.proposer.model})")
        target_base = build_llm(spec.target)
        proposer_base = build_llm(spec.proposer)
        shared = open_cache(cache_root() / "calls") if spec.use_cache else None
        journal = store.journal()

        ctx, target_usage = search_context(
            spec, task, store, target_base, proposer_base, shared, journal, reporter
        )
        search_usage = ctx.usage
        started = time.perf_counter()
        result = strategy.search(ctx, config)
        search_seconds = time.perf_counter() - started

        eval_usage = Usage()
        test_target = layered(target_base, eval_usage, None, shared, journal)
        started = time.perf_counter()
        if result.ensemble is not None:
            ensemble_test, baseline_test = score_ensemble_on_test(
                task, test_target, result.ensemble, reporter
            )
        else:
            best_test, baseline_test = score_on_test(
                task, test_target, result.best.prompt, reporter
            )
        test_seconds = time.perf_counter() - started
        best_result = ensemble_test.result if result.ensemble is not None else best_test
        write_json_atomic(
            run_dir / TEST_EXAMPLES_FILE,
            {
                "best": per_example_rows(task, best_result),
                "baseline": per_example_rows(task, baseline_test),
            },
        )

        fields: dict[str, Any] = dict(
            task=task,
            task_ref=spec.task,
            sizes=spec.sizes,
            data_seed=spec.data_seed,
            data_file=spec.data_file,
            baseline_test=baseline_test,
            models={
                "target": {**describe(target_base), "spec": spec.target.to_dict()},
                "proposer": {**describe(proposer_base), "spec": spec.proposer.to_dict()},
            },
            strategy={"name": spec.strategy, "config": asdict(config)},
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
                }
                for c in result.candidates
            ],
        )
        if result.ensemble is not None:
            export = ensemble_export(
                ensemble=result.ensemble,
                pool=result.ensemble_score,
                test=ensemble_test.result,
                member_tests=ensemble_test.members,
                **fields,
            )
        else:
            export = prompt_export(
                prompt=result.best.prompt,
                dev=(result.best.dev_score, result.best.dev_n),
                test=best_test,
                **fields,
            )
        store.finish(export)
        return export
    finally:
        store.close()


def usage_report(
    spec: SearchSpec, search: Usage, search_target: Usage, test_eval: Usage
) -> dict[str, Any]:
    """The export's usage: calls and tokens per phase, and their estimated cost.

    The search's usage is split into the target's share and the rest (the
    proposer, including calls a strategy charged itself), priced per model.
    """
    proposer = Usage(
        calls=search.calls - search_target.calls,
        prompt_tokens=search.prompt_tokens - search_target.prompt_tokens,
        completion_tokens=search.completion_tokens - search_target.completion_tokens,
    )
    table = load_prices(spec.prices)
    target_spec, proposer_spec = spec.target.to_dict(), spec.proposer.to_dict()
    search_cost = estimate_cost(
        table,
        [
            (target_spec, search_target.prompt_tokens, search_target.completion_tokens),
            (proposer_spec, proposer.prompt_tokens, proposer.completion_tokens),
        ],
    )
    eval_cost = estimate_cost(
        table, [(target_spec, test_eval.prompt_tokens, test_eval.completion_tokens)]
    )
    total = estimate_cost(
        table,
        [
            (target_spec, search_target.prompt_tokens, search_target.completion_tokens),
            (proposer_spec, proposer.prompt_tokens, proposer.completion_tokens),
            (target_spec, test_eval.prompt_tokens, test_eval.completion_tokens),
        ],
    )
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
    task: Task, llm: LLM, best: Prompt, reporter: Reporter
) -> tuple[EvalResult, EvalResult]:
    """The held-out report: best prompt and the task's baseline, in one batch."""
    test = task.examples("test")
    baseline = task.baseline_prompt()
    prompts = [best] if best == baseline else [best, baseline]
    reporter.phase(
        f"Scoring on test ({len(prompts)} prompts x {len(test)})", total=len(prompts) * len(test)
    )
    results = Evaluator(llm, task).evaluate_many(prompts, test, progress=reporter.advance)
    return results[0], results[-1]


def score_ensemble_on_test(
    task: Task, llm: LLM, ensemble: Ensemble, reporter: Reporter
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
    baseline = evaluator.evaluate(task.baseline_prompt(), test, progress=reporter.advance)
    return result, baseline
