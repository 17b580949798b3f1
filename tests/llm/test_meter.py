from __future__ import annotations

import pytest

from promptopt.errors import BudgetExhausted
from promptopt.llm.meter import MeteredLLM
from promptopt.types import Budget, GenerationRequest, Usage
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


def test_token_budget_stops_the_next_batch() -> None:
    usage = Usage()
    llm = MeteredLLM(ScriptedLLM(lambda r, i: "a b c d"), usage, Budget(max_tokens=5))
    llm.generate([GenerationRequest.chat("x y")])
    with pytest.raises(BudgetExhausted, match="token budget"):
        llm.generate([GenerationRequest.chat("x")])
