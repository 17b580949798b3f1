"""Charges every request that reaches a real model, and enforces the budget.

It sits directly above the backend, below every cache, so only real model work
is charged. A call counts one per generated sample and one per log-probability
request. The call budget is a hard cap checked *before* a batch is sent (a
batch that would cross it is refused whole); the token budget is checked before
each batch, so it can be exceeded by at most one batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from promptopt.errors import BudgetExhausted
from promptopt.llm.base import LLM, generate_with_progress
from promptopt.types import Budget, Completion, GenerationRequest, LogprobRequest, Usage


def check_budget(usage: Usage, budget: Budget, calls: int) -> None:
    """Raise BudgetExhausted if `calls` more would cross the budget."""
    if budget.max_calls is not None and usage.calls + calls > budget.max_calls:
        raise BudgetExhausted(
            f"call budget of {budget.max_calls} reached ({usage.calls} used, "
            f"{calls} more needed): raise --budget to continue"
        )
    if budget.max_tokens is not None and usage.tokens >= budget.max_tokens:
        raise BudgetExhausted(
            f"token budget of {budget.max_tokens} reached ({usage.tokens} used): "
            "raise --budget-tokens to continue"
        )


class MeteredLLM:
    def __init__(self, inner: LLM, usage: Usage, budget: Budget | None = None) -> None:
        self.inner = inner
        self.usage = usage
        self.budget = budget or Budget()
        self.kind = inner.kind
        self.model_id = inner.model_id
        self.supports_logprobs = inner.supports_logprobs
        self.supports_embeddings_input = inner.supports_embeddings_input

    def _check(self, calls: int) -> None:
        check_budget(self.usage, self.budget, calls)

    def generate(
        self, requests: Sequence[GenerationRequest], progress: Callable[[int], None] | None = None
    ) -> list[Completion]:
        self._check(sum(r.n for r in requests))
        out = generate_with_progress(self.inner, requests, progress)
        for completion in out:
            self.usage.calls += len(completion.texts)
            self.usage.prompt_tokens += completion.prompt_tokens
            self.usage.completion_tokens += completion.completion_tokens
        return out

    def logprobs(self, requests: Sequence[LogprobRequest]) -> list[list[float]]:
        self._check(len(requests))
        out = self.inner.logprobs(requests)
        self.usage.calls += len(requests)
        return out
