"""Charges every request of a run, and enforces the budget.

It sits above the shared call cache and below the run journal (see
`promptopt.llm.stack.layered`), so a request is charged alike whether the cache or
the model answers it: a rerun with the same seed and budget walks the same
search, answered from the cache (which counts its hits as the free part of the
work, `Usage.cache_hits`). A request repeated within one run is answered by the
journal, free. A call counts one per generated sample and one per log-probability
request. Both caps are hard and checked *before* a batch is sent; a batch that
would cross either is refused whole (the strategy then keeps its best so far):

- calls: the batch's samples are counted exactly;
- tokens: the batch's projected tokens are (prompt tokens + max_tokens) x n per
  request, with prompt tokens counted exactly for local hf models and estimated
  from characters for others (see promptopt.llm.tokens). Completions never
  exceed max_tokens, so the cap holds whenever the prompt estimate does.
  Log-probability requests are charged the tokens they make a model read
  (promptopt.llm.tokens.logprob_tokens; backends do not report them), so a
  label task on an API model has a cost estimate too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from promptopt.core.domain import Budget, Completion, GenerationRequest, LogprobRequest, Usage
from promptopt.core.errors import BudgetExhausted
from promptopt.llm.base import (
    LLM,
    cache_scope,
    generate_with_progress,
    logprob_scope,
    soft_prompt_generate,
)
from promptopt.llm.tokens import logprob_tokens, projected_tokens

if TYPE_CHECKING:
    import torch


def check_budget(usage: Usage, budget: Budget, calls: int, tokens: int = 0) -> None:
    """Raise BudgetExhausted if `calls` more, projected to use `tokens`, would cross it.

    With no token projection (tokens=0) the token cap refuses only once it is used up.
    """
    if (
        budget.max_calls is not None
        and usage.calls + usage.held_back_calls + calls > budget.max_calls
    ):
        held = f", {usage.held_back_calls} kept for a later phase" if usage.held_back_calls else ""
        raise BudgetExhausted(
            f"call budget of {budget.max_calls} reached ({usage.calls} used{held}, "
            f"{calls} more needed): raise --budget to continue"
        )
    if budget.max_tokens is None:
        return
    if usage.tokens >= budget.max_tokens or usage.tokens + tokens > budget.max_tokens:
        raise BudgetExhausted(
            f"token budget of {budget.max_tokens} reached ({usage.tokens} used, "
            f"up to {tokens} more needed): raise --budget-tokens to continue"
        )


class MeteredLLM:
    """Charges `usage` (the search's) and `also` (e.g. one model's share, for pricing)."""

    def __init__(
        self,
        inner: LLM,
        usage: Usage,
        budget: Budget | None = None,
        also: Usage | None = None,
    ) -> None:
        self.inner = inner
        self.usage = usage
        self.budget = budget or Budget()
        self.also = also
        self.kind = inner.kind
        self.model_id = inner.model_id
        self.cache_scope = cache_scope(inner)
        self.supports_logprobs = inner.supports_logprobs
        self.supports_embeddings_input = inner.supports_embeddings_input
        self.logprob_scope = logprob_scope(inner)

    def _charge(self, calls: int, prompt_tokens: int = 0, completion_tokens: int = 0) -> None:
        for usage in (self.usage, self.also):
            if usage is not None:
                usage.add(calls, prompt_tokens, completion_tokens)

    def generate(
        self, requests: Sequence[GenerationRequest], progress: Callable[[int], None] | None = None
    ) -> list[Completion]:
        tokens = projected_tokens(self.inner, requests) if self.budget.max_tokens is not None else 0
        check_budget(self.usage, self.budget, sum(r.n for r in requests), tokens)
        out = generate_with_progress(self.inner, requests, progress)
        for completion in out:
            self._charge(
                len(completion.texts), completion.prompt_tokens, completion.completion_tokens
            )
        return out

    def logprobs(self, requests: Sequence[LogprobRequest]) -> list[list[float]]:
        tokens = logprob_tokens(self.inner, requests, self.logprob_scope)
        check_budget(self.usage, self.budget, len(requests), tokens)
        out = self.inner.logprobs(requests)
        self._charge(len(requests), prompt_tokens=tokens)
        return out

    def soft_prompt_generate(
        self, soft_prompts: torch.Tensor, text: str, max_tokens: int
    ) -> list[Completion]:
        """InstructZero's writer: a call per soft prompt, checked and charged like a
        sample. Its prompt tokens are not projected (the soft tokens are vectors, not
        text), so the token cap refuses these only once it is used up."""
        check_budget(self.usage, self.budget, len(soft_prompts))
        out = soft_prompt_generate(self.inner, soft_prompts, text, max_tokens)
        for completion in out:
            self._charge(
                len(completion.texts), completion.prompt_tokens, completion.completion_tokens
            )
        return out
