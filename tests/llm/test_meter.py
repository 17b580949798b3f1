from __future__ import annotations

from pathlib import Path

import pytest

from promptopt.core.domain import Budget, GenerationRequest, Usage
from promptopt.core.errors import BudgetExhausted
from promptopt.llm.cache_files import open_cache
from promptopt.llm.meter import MeteredLLM
from promptopt.llm.stack import layered
from promptopt.llm.tokens import estimate_prompt_tokens, projected_tokens
from tests.fakes import ScriptedLLM


def test_charges_samples_and_tokens() -> None:
    usage = Usage()
    llm = MeteredLLM(ScriptedLLM(lambda r, i: "one two"), usage)
    llm.generate([GenerationRequest.chat("a b c", n=2, temperature=1.0)])
    assert usage.calls == 2
    assert usage.prompt_tokens == 6 and usage.completion_tokens == 4


def test_call_budget_is_a_hard_cap_checked_before_sending() -> None:
    usage = Usage()
    fake = ScriptedLLM(lambda r, i: "x")
    llm = MeteredLLM(fake, usage, Budget(max_calls=5))
    llm.generate([GenerationRequest.chat(str(i)) for i in range(4)])
    with pytest.raises(BudgetExhausted, match="call budget of 5"):
        llm.generate([GenerationRequest.chat(str(i)) for i in range(2)])
    assert fake.generate_calls == 4 and usage.calls == 4
    llm.generate([GenerationRequest.chat("last")])
    assert usage.calls == 5


def test_token_budget_refuses_a_batch_that_could_cross_it() -> None:
    """Projected tokens = (estimated prompt + max_tokens) x n; a batch whose projection
    would cross the cap is not sent, so the cap is never crossed."""
    usage = Usage()
    fake = ScriptedLLM(lambda r, i: "a b c d")
    llm = MeteredLLM(fake, usage, Budget(max_tokens=30))
    one = GenerationRequest.chat("x y", max_tokens=4)  # ceil(3/3) + 4 overhead + 4 = 9
    assert projected_tokens(fake, [one]) == 9
    llm.generate([one, one])  # 18 projected, 12 charged (2 prompt + 4 completion each)
    llm.generate([one, one])  # 12 + 18 = 30: exactly at the cap, still sent
    assert usage.tokens == 24
    with pytest.raises(BudgetExhausted, match="token budget of 30 reached"):
        llm.generate([one])  # 24 + 9 > 30
    assert fake.generate_calls == 4 and usage.tokens <= 30


def test_token_budget_refuses_even_the_first_batch_when_it_cannot_fit() -> None:
    usage = Usage()
    fake = ScriptedLLM(lambda r, i: "x")
    llm = MeteredLLM(fake, usage, Budget(max_tokens=5))
    with pytest.raises(BudgetExhausted, match="raise --budget-tokens"):
        llm.generate([GenerationRequest.chat("x y")])  # max_tokens 64 alone crosses it
    assert fake.generate_calls == 0


class _Tokenizer:
    """Counts characters as tokens: stands in for a real hf tokenizer."""

    def __call__(self, text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": list(range(len(text)))}


def test_local_models_are_counted_with_their_own_tokenizer() -> None:
    fake = ScriptedLLM(lambda r, i: "x")
    fake.tokenizer = _Tokenizer()  # type: ignore[attr-defined]
    fake.render = lambda messages, text: "<s>" + (text or messages[-1].content)  # type: ignore[attr-defined]
    request = GenerationRequest.chat("hello", max_tokens=3, n=2, temperature=1.0)
    assert estimate_prompt_tokens(fake, request) == 8
    assert projected_tokens(fake, [request]) == (8 + 3) * 2


def test_also_gets_a_share_of_the_charges() -> None:
    usage, share = Usage(), Usage()
    llm = MeteredLLM(ScriptedLLM(lambda r, i: "one two"), usage, also=share)
    llm.generate([GenerationRequest.chat("a b c")])
    assert share.to_dict() == usage.to_dict() and share.calls == 1


def answering() -> ScriptedLLM:
    return ScriptedLLM(lambda request, sample: "an answer")


def test_shared_cache_hits_are_charged_to_the_budget_but_not_new(tmp_path: Path) -> None:
    """A warm cache does not buy extra work under a budget: its hits are charged like
    model calls, and counted apart as the free part (with their tokens)."""
    shared = open_cache(tmp_path / "shared")
    requests = [GenerationRequest.chat(f"question {i}") for i in range(4)]
    warm = Usage()
    layered(answering(), warm, None, shared, None).generate(requests)
    assert (warm.calls, warm.new_calls, warm.cache_hits) == (4, 4, 0)

    with pytest.raises(BudgetExhausted):
        layered(answering(), Usage(), Budget(max_calls=2), shared, None).generate(requests)

    charged, share = Usage(), Usage()
    model = answering()
    llm = layered(model, charged, Budget(max_calls=6), shared, None, share)
    llm.generate(requests)
    assert model.generate_calls == 0
    assert (charged.calls, charged.new_calls, charged.cache_hits) == (4, 0, 4)
    assert charged.tokens == warm.tokens and charged.new_prompt_tokens == 0
    assert share.to_dict() == charged.to_dict()
    with pytest.raises(BudgetExhausted):
        llm.generate(requests)


def test_logprob_cache_hits_are_charged_their_tokens(tmp_path: Path) -> None:
    from promptopt.core.domain import LogprobRequest

    shared = open_cache(tmp_path / "shared")
    requests = [LogprobRequest(text=f"q{i} " * 9, continuations=("a", "b")) for i in range(3)]
    first = Usage()
    fake = ScriptedLLM(lambda r, s: "", logprob=lambda r, c: -1.0)
    layered(fake, first, None, shared, None).logprobs(requests[:2])
    again = Usage()
    layered(fake, again, None, shared, None).logprobs(requests)
    assert fake.logprob_calls == 3
    assert (again.calls, again.new_calls, again.cache_hits) == (3, 1, 2)
    assert again.cached_prompt_tokens == first.prompt_tokens
    assert again.new_prompt_tokens == again.prompt_tokens - first.prompt_tokens > 0


def test_logprob_requests_are_charged_the_tokens_they_read() -> None:
    """Backends report no usage for scoring, so the meter counts what was read: the
    context once per continuation (full), or once plus the reply token (first token)."""
    from promptopt.core.domain import LogprobRequest

    request = LogprobRequest(text="a" * 30, continuations=("yes", "nope!"))  # 10 + 1 + 2
    for scope, expected in (("full", (10 + 1) + (10 + 2)), ("first_token", 10 + 1)):
        fake = ScriptedLLM(lambda r, s: "", logprob=lambda r, c: -1.0)
        fake.logprob_scope = scope  # type: ignore[attr-defined]
        usage = Usage()
        MeteredLLM(fake, usage).logprobs([request])
        assert (usage.calls, usage.prompt_tokens) == (1, expected)
    with pytest.raises(BudgetExhausted, match="token budget"):
        MeteredLLM(fake, Usage(), Budget(max_tokens=10)).logprobs([request])
