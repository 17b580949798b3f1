"""The openai backend under load, against a loopback server with latency and injected
429s and 500s (tests/llm/fake_openai_server.py, real HTTP through the SDK): requests
in flight reach `--concurrency`, answers that finish out of order reach the right
prompts and cache entries, and the budget holds with every request charged once."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from promptopt.core.domain import Budget, GenerationRequest, Usage
from promptopt.core.errors import BudgetExhausted, ConfigError
from promptopt.llm.base import LOCAL_SERVER_CONCURRENCY, REMOTE_CONCURRENCY, default_concurrency
from promptopt.llm.cache_files import open_cache
from promptopt.llm.factory import build_llm, parse_model_spec, with_model_options
from promptopt.llm.openai_compat import OpenAICompatLLM
from promptopt.llm.rate_limits import RateLimits, projected
from promptopt.llm.stack import layered
from tests.llm.fake_openai_server import FakeOpenAIServer

LOCAL = "http://127.0.0.1:9/v1"


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAIServer]:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    fake = FakeOpenAIServer(latency=0.05)
    fake.reply = lambda body: "echo " + body["messages"][-1]["content"]
    yield fake
    fake.stop()


def asks(count: int, prefix: str = "q") -> list[GenerationRequest]:
    return [GenerationRequest.chat(f"{prefix}{i}", max_tokens=4) for i in range(count)]


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (None, REMOTE_CONCURRENCY),  # the OpenAI API
        ("https://vllm.internal.example:8000/v1", REMOTE_CONCURRENCY),
        ("http://127.0.0.1:8080/v1", LOCAL_SERVER_CONCURRENCY),
        ("http://localhost:11434/v1", LOCAL_SERVER_CONCURRENCY),
        ("http://user:sk-secret@127.0.0.2:9/v1", LOCAL_SERVER_CONCURRENCY),
        ("http://[::1]:8000/v1", LOCAL_SERVER_CONCURRENCY),
    ],
)
def test_the_default_concurrency_is_low_for_this_machine_and_high_for_remote(
    url: str | None, expected: int
) -> None:
    assert default_concurrency(url) == expected


@pytest.mark.parametrize("concurrency", [1, 8, 24])
def test_requests_in_flight_reach_the_concurrency(
    server: FakeOpenAIServer, concurrency: int
) -> None:
    server.latency = 0.6  # long enough for every thread to start, even on a loaded machine
    llm = OpenAICompatLLM("fake", base_url=server.url, max_concurrency=concurrency)
    answers = llm.generate(asks(2 * concurrency))
    assert server.max_in_flight == concurrency
    assert [a.texts[0] for a in answers] == [f"echo q{i}" for i in range(len(answers))]


def test_answers_finishing_out_of_order_reach_their_prompts_and_cache_entries(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.latency = 0.0

    def late_for_early_prompts(body: dict[str, Any]) -> str:
        text = body["messages"][-1]["content"]
        time.sleep(0.02 * (16 - int(text[1:])))  # q0 answers last, q15 first
        return "echo " + text

    server.reply = late_for_early_prompts
    base = OpenAICompatLLM("fake", base_url=server.url, max_concurrency=16)
    cache = open_cache(tmp_path / "cache")
    first = layered(base, Usage(), None, cache, None).generate(asks(16))
    assert [a.texts[0] for a in first] == [f"echo q{i}" for i in range(16)]
    sent = server.requests
    usage = Usage()
    again = layered(base, usage, None, cache, None).generate(list(reversed(asks(16))))
    assert [a.texts[0] for a in again] == [f"echo q{i}" for i in reversed(range(16))]
    assert server.requests == sent and usage.cache_hits == 16  # all from the cache


def test_429s_and_500s_are_retried_each_request_charged_once_and_the_budget_holds(
    server: FakeOpenAIServer, tmp_path: Path
) -> None:
    server.fault_rates = {429: 0.2, 500: 0.1}
    server.retry_after = "0"
    base = OpenAICompatLLM("fake", base_url=server.url, max_concurrency=16, max_retries=8)
    usage = Usage()
    llm = layered(base, usage, Budget(max_calls=40), open_cache(tmp_path / "cache"), None)
    answered: list[str] = []
    with pytest.raises(BudgetExhausted):
        for batch in range(10):  # 160 requests wanted, 40 allowed
            answered += [a.texts[0] for a in llm.generate(asks(16, prefix=f"b{batch}-"))]
    assert usage.calls == len(answered) == 32  # two whole batches; the third would cross
    assert server.requests > len(answered)  # faults were injected and retried
    assert sorted(server.answered.values()) == [1] * 32  # each answered once, none twice
    assert answered == [f"echo b{b}-{i}" for b in range(2) for i in range(16)]


def test_a_requests_per_window_limit_spaces_the_requests(server: FakeOpenAIServer) -> None:
    llm = OpenAICompatLLM("fake", base_url=server.url, max_concurrency=8)
    llm.limits = RateLimits(rpm=4, window_ms=500)  # 4 per half second, for the test
    started = time.monotonic()
    llm.generate(asks(12))
    arrivals = sorted(server.times)
    assert len(arrivals) == 12
    # Requests 5-8 wait for a second window and 9-12 for a third (bounds measured
    # from the start, which no slow thread can shorten).
    assert arrivals[4] - started >= 0.49 and arrivals[8] - started >= 0.98  # ms clock


def test_a_tokens_per_window_limit_counts_prompt_and_max_tokens(server: FakeOpenAIServer) -> None:
    limits = RateLimits(tpm=100, window_ms=500)
    params = {"messages": [{"role": "user", "content": "x" * 30}], "max_tokens": 40}
    assert projected(params) == 10 + 40
    llm = OpenAICompatLLM("fake", base_url=server.url, max_concurrency=4)
    llm.limits = limits
    started = time.monotonic()
    llm.generate([GenerationRequest.chat("x" * 30, max_tokens=40) for _ in range(4)])
    arrivals = sorted(server.times)
    assert arrivals[2] - started >= 0.49  # two requests' 100 tokens fill the first window


@pytest.mark.parametrize("option", ["rpm=0", "tpm=-5"])
def test_a_limit_below_one_is_refused(option: str) -> None:
    with pytest.raises(ConfigError, match=r"must be at least 1 per minute"):
        build_llm(with_model_options(parse_model_spec("openai:m", base_url=LOCAL), [option]))
