"""`search --dry-run`: the model calls, tokens and cost a search would use, before
any model is loaded.

Most strategies are *simulated*: their real control flow runs against a stand-in
model that answers instantly, under the same meter, budget and call cache as a
real run. The stand-in writes a distinct instruction for every proposal and a
wrong answer to every question, and every completion is charged its full
`max_tokens`. So:

- calls are exact for strategies whose flow does not depend on answers (APE:
  proposals, successive halving, resampling), as long as the real proposer
  writes no duplicate instructions (duplicates are scored once: fewer calls);
- strategies that react to answers (reflexion stops early after `patience`
  trials without improvement, or when perfect; boosted picks hard questions)
  are projected along the path where the model never gets better;
- completion tokens (and so cost) are an upper bound; prompt tokens are exact
  for local hf models whose tokenizer is already on disk (rendered through their
  chat template), else estimated from characters (see promptopt.llm.tokens);
- calls and tokens are what the budget counts, whether the model or the call
  cache answers; the cost assumes an empty cache (a cache hit costs nothing).

A strategy that needs the real local model (InstructZero drives the writer's
input embeddings, RLPrompt trains a policy on the proposer) describes its own
cost instead: its `project(config, dev_n)` gives an upper bound that ignores
duplicate instructions and early stops. The dry run names no strategy. Every
projection is capped by --budget / --budget-tokens, since a real run never
crosses them.
"""

from __future__ import annotations

import hashlib
import json
import math
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from promptopt.core.domain import (
    Budget,
    Completion,
    GenerationRequest,
    LogprobRequest,
    Message,
    Usage,
)
from promptopt.core.errors import BudgetExhausted
from promptopt.core.registry import get_strategy
from promptopt.data.task import Task, require_examples
from promptopt.evaluation.context_window import (
    UNKNOWN_WINDOW_WARNING,
    answer_tokens,
    oversized_examples,
    window_on_disk,
)
from promptopt.evaluation.evaluator import Evaluator
from promptopt.evaluation.prompting import render_user_message
from promptopt.llm.base import FULL_LOGPROBS
from promptopt.llm.cache_files import open_cache
from promptopt.llm.factory import ModelSpec
from promptopt.llm.pricing import CostEstimate, PriceTable, estimate_cost, load_prices
from promptopt.llm.stack import layered
from promptopt.llm.tokens import estimate_prompt_tokens, estimate_text_tokens
from promptopt.run.choice import search_from_start
from promptopt.run.search import (
    SEARCH_SPLITS,
    SearchSpec,
    score_ensemble_on_test,
    score_on_test,
    search_context,
)
from promptopt.run.store import RunStore
from promptopt.strategies.base import CallBound, SilentReporter, build_config


class StandInLLM:
    """Answers instantly and deterministically; never loads anything.

    It carries the real model's identity (kind, model id), so requests the real
    stack would serve from its cache are served from the simulation's cache too.
    """

    supports_embeddings_input = False

    def __init__(self, spec: ModelSpec, role: str) -> None:
        self.kind = spec.backend
        self.model_id = spec.model
        self.cache_scope = spec.scope()
        self.role = role
        scope = spec.kind.logprob_scope(spec.options)
        self.supports_logprobs = scope is not None
        self.logprob_scope = scope or FULL_LOGPROBS
        self.files = spec.kind.local_files(spec.model)
        self.tokenizer = self.files.tokenizer if self.files is not None else None
        """A local model's own tokenizer when it is on disk: exact prompt tokens."""

    def render(self, messages: Sequence[Message] | None, text: str | None) -> str:
        if self.files is None:
            return text if text is not None else "\n\n".join(m.content for m in messages or ())
        return self.files.render(messages, text)

    def _digest(self, request: GenerationRequest, sample: int) -> str:
        payload = json.dumps([asdict(request), sample], sort_keys=True, default=str)
        return hashlib.sha256(payload.encode("utf-8")).hexdigest()[:10]

    def _text(self, request: GenerationRequest, sample: int) -> str:
        digest = self._digest(request, sample)
        if self.role == "proposer":
            return f"Answer each input carefully, following variant {digest}"
        return f"standin {digest}"

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        return [
            Completion(
                texts=[self._text(r, s) for s in range(r.n)],
                prompt_tokens=self._prompt_tokens(r) * r.n,
                completion_tokens=r.max_tokens * r.n,
            )
            for r in requests
        ]

    def _prompt_tokens(self, request: GenerationRequest) -> int:
        return estimate_prompt_tokens(self if self.tokenizer is not None else None, request)

    def logprobs(self, requests: Sequence[LogprobRequest]) -> list[list[float]]:
        return [[-float(i + 1) for i in range(len(r.continuations))] for r in requests]


@dataclass
class Projection:
    strategy: str
    method: str
    """'simulated' (the strategy ran against a stand-in model) or 'formula'."""
    search: Usage
    test_eval: Usage
    budget: Budget
    stopped_by_budget: bool
    cost: CostEstimate
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    """What would make the real run fail or mislead (a prompt over the context window)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "strategy": self.strategy,
            "method": self.method,
            "search": self.search.to_dict(),
            "test_eval": self.test_eval.to_dict(),
            "budget": {"max_calls": self.budget.max_calls, "max_tokens": self.budget.max_tokens},
            "stopped_by_budget": self.stopped_by_budget,
            "cost": {**self.cost.to_dict(), "summary": self.cost.describe()},
            "notes": self.notes,
            "warnings": self.warnings,
        }

    def lines(self) -> list[str]:
        """What `search --dry-run` prints."""
        how = (
            "simulated against an instant stand-in model"
            if self.method == "simulated"
            else "a formula from the strategy's config"
        )
        s, t = self.search, self.test_eval
        out = [
            f"Projection for {self.strategy} ({how}); no model was loaded or called.",
            f"  search:    {s.calls} model calls, ~{s.prompt_tokens} prompt tokens + "
            f"up to {s.completion_tokens} completion tokens",
            f"  test eval: {t.calls} model calls, ~{t.prompt_tokens} prompt tokens + "
            f"up to {t.completion_tokens} completion tokens",
            f"  estimated cost (upper bound): {self.cost.describe()}",
        ]
        if self.stopped_by_budget:
            cap = _budget_text(self.budget)
            out.append(f"  the search would stop at its budget ({cap}), keeping its best so far")
        out.extend(f"  warning: {w}" for w in self.warnings)
        out.extend(f"  note: {n}" for n in self.notes)
        out.append(
            "This is a projection: the real run may use fewer calls (duplicate proposals, "
            "cache hits, early stops) and fewer tokens."
        )
        return out


def _budget_text(budget: Budget) -> str:
    parts = []
    if budget.max_calls is not None:
        parts.append(f"{budget.max_calls} calls")
    if budget.max_tokens is not None:
        parts.append(f"{budget.max_tokens} tokens")
    return ", ".join(parts) or "none"


def project_search(spec: SearchSpec, prices: PriceTable | None = None) -> Projection:
    """Project a search's model use without loading or calling any model."""
    strategy = get_strategy(spec.strategy)
    config = build_config(strategy.Config, spec.params)
    spec.check()
    table = prices or load_prices(spec.prices)
    task = spec.load_task()
    require_examples(task, SEARCH_SPLITS)
    if hasattr(strategy, "project"):
        projection = _formula(spec, strategy, config, task, table)
    else:
        projection = _simulate(spec, strategy, config, task, table)
    projection.warnings += context_warnings(spec, task)
    return projection


def context_warnings(spec: SearchSpec, task: Task) -> list[str]:
    """Warnings for prompts the target cannot read: against its context window when
    its files are on disk, else when a prompt is estimated above what many models
    read. A real run refuses the first case before any call (`context_window`)."""
    start = spec.resolve_start(task)
    window = window_on_disk(spec.target)
    if window is not None:
        found = oversized_examples(window, task, [start], SEARCH_SPLITS)
        if not found:
            return []
        worst = max(found, key=lambda o: o.tokens)
        return [
            f"{len(found)} example(s) make a prompt longer than {window.model}'s context "
            f"window ({window.tokens} tokens, less {answer_tokens(window, task)} for the "
            f"answer), the longest '{worst.example_id}' ({worst.split} split, "
            f"{worst.describe()}): the real search would refuse to start; shorten or "
            "remove them in the data, or use a model with a longer context window"
        ]
    longest = max(
        (
            (estimate_text_tokens(render_user_message(start, e.input)), split, e.id)
            for split in SEARCH_SPLITS
            for e in task.examples(split)
        ),
        default=None,
    )
    if longest is None or longest[0] <= UNKNOWN_WINDOW_WARNING:
        return []
    tokens, split, example_id = longest
    return [
        f"example '{example_id}' ({split} split) makes a prompt of ~{tokens} "
        f"tokens (estimated), more than many models' context window: check "
        f"{spec.target.model}'s before a real run, or shorten that example"
    ]


def _cost(
    spec: SearchSpec, table: PriceTable, target: Usage, proposer: Usage, test: Usage
) -> CostEstimate:
    t, p = spec.target.to_dict(), spec.proposer.to_dict()
    return estimate_cost(
        table,
        [
            (t, target.prompt_tokens, target.completion_tokens),
            (p, proposer.prompt_tokens, proposer.completion_tokens),
            (t, test.prompt_tokens, test.completion_tokens),
        ],
    )


def _simulate(
    spec: SearchSpec, strategy: Any, config: Any, task: Task, table: PriceTable
) -> Projection:
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="promptopt-dry-run-") as tmp:
        root = Path(tmp)
        (root / "run").mkdir()
        store = RunStore(root / "run", spec.run_config(config))
        try:
            journal = open_cache(root / "calls")  # repeats within the run are free
            target_base = StandInLLM(spec.target, "target")
            proposer_base = StandInLLM(spec.proposer, "proposer")
            ctx, target_usage = search_context(
                spec, task, store, target_base, proposer_base, None, journal, SilentReporter()
            )
            usage, eval_usage = ctx.usage, Usage()
            ctx.start = spec.resolve_start(task)
            try:
                result, choice = search_from_start(ctx, strategy, config, spec.demo_sets)
            except BudgetExhausted as stop:  # the start did not fit: the run's own exit
                notes.append(f"{stop}; the real search would exit 5")
                result = None
            if result is not None:
                test_target = layered(target_base, eval_usage, None, None, journal)
                if choice.ensemble is not None:
                    score_ensemble_on_test(
                        task, test_target, choice.ensemble, ctx.start_prompt, SilentReporter()
                    )
                else:
                    score_on_test(
                        task, test_target, choice.prompt, ctx.start_prompt, SilentReporter()
                    )
            journal.close()
        finally:
            store.close()
    if note := getattr(strategy, "dry_run_note", None):
        notes.append(note)
    proposer_usage = usage.minus(target_usage)
    return Projection(
        strategy=spec.strategy,
        method="simulated",
        search=usage,
        test_eval=eval_usage,
        budget=spec.budget,
        stopped_by_budget=result is None or result.stopped_by_budget,
        cost=_cost(spec, table, target_usage, proposer_usage, eval_usage),
        notes=notes,
    )


def _per_eval_call(spec: SearchSpec, task: Task) -> tuple[int, int]:
    """(prompt tokens, completion tokens at most) of one target call, from a dev example."""
    examples = task.examples("dev") or task.examples("test")
    if not examples:
        return 0, task.generation.max_tokens
    usage = Usage()
    target = layered(StandInLLM(spec.target, "target"), usage, None, None, None)
    Evaluator(target, task).evaluate(task.baseline_prompt(), examples[:1])
    return usage.prompt_tokens, usage.completion_tokens


def formula_calls(strategy: str, config: Any, dev_n: int) -> tuple[int, int]:
    """(target calls, writer calls) at most: the strategy's own bound (`project`) and
    the starting prompt on dev, then the best on all of dev."""
    bound = _with_start_check(get_strategy(strategy).project(config, dev_n), dev_n)
    return bound.target_calls, bound.writer_calls


def _with_start_check(bound: CallBound, dev_n: int) -> CallBound:
    """A strategy's bound plus what every search adds: the starting prompt on dev,
    then the best candidate on all of dev."""
    return replace(bound, target_calls=bound.target_calls + 2 * dev_n)


def _formula(
    spec: SearchSpec, strategy: Any, config: Any, task: Task, table: PriceTable
) -> Projection:
    dev_n = len(task.examples("dev"))
    bound = _with_start_check(strategy.project(config, dev_n), dev_n)
    target_calls, writer_calls = bound.target_calls, bound.writer_calls
    per_prompt, per_completion = _per_eval_call(spec, task)
    notes = [f"an upper bound: {target_calls} target calls + {writer_calls} writer calls"]
    notes += bound.notes
    calls = target_calls + writer_calls
    scale, stopped = 1.0, False
    budget = spec.budget
    if budget.max_calls is not None and calls > budget.max_calls:
        scale, stopped = budget.max_calls / calls, True
    tokens = target_calls * (per_prompt + per_completion)
    if budget.max_tokens is not None and tokens * scale > budget.max_tokens:
        scale, stopped = budget.max_tokens / max(tokens, 1), True
    t_calls = math.floor(target_calls * scale)
    target = Usage(
        calls=t_calls,
        prompt_tokens=t_calls * per_prompt,
        completion_tokens=t_calls * per_completion,
    )
    writer = Usage(calls=math.floor(writer_calls * scale))
    search = Usage(
        calls=target.calls + writer.calls,
        prompt_tokens=target.prompt_tokens,
        completion_tokens=target.completion_tokens,
    )
    test_calls = 2 * len(task.examples("test"))
    test = Usage(
        calls=test_calls,
        prompt_tokens=test_calls * per_prompt,
        completion_tokens=test_calls * per_completion,
    )
    return Projection(
        strategy=spec.strategy,
        method="formula",
        search=search,
        test_eval=test,
        budget=budget,
        stopped_by_budget=stopped,
        cost=_cost(spec, table, target, writer, test),
        notes=notes,
    )
