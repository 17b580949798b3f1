"""OpenAICompatLLM: unit tests with a fake client, then the real llama.cpp server."""

from __future__ import annotations

import contextlib
import math
import pickle
import socket
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from promptopt.core.domain import GenerationRequest, LogprobRequest, Message
from promptopt.core.errors import ModelError
from promptopt.llm.base import LLM, describe
from promptopt.llm.openai_compat import OpenAICompatLLM
from promptopt.llm.openai_logprobs import first_token_scores, sum_continuation_logprobs
from tests.llm.fake_openai_server import FakeOpenAIServer


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def chatml(messages: tuple[Message, ...]) -> str:
    """SmolLM2's ChatML template, ending with the assistant turn's opening."""
    rendered = "".join(f"<|im_start|>{m.role}\n{m.content}<|im_end|>\n" for m in messages)
    return rendered + "<|im_start|>assistant\n"


# --- no server ----------------------------------------------------------------------


def test_sum_continuation_logprobs_uses_offsets_window() -> None:
    # prompt "The capital is Paris" + one generated token at offset 20
    logprobs = [None, -1.0, -2.0, -0.5, -0.25, -9.0]
    offsets = [0, 3, 11, 14, 15, 20]
    # context "The capital is" has 14 characters; tokens at 14 and 15 are the continuation
    assert sum_continuation_logprobs(logprobs, offsets, 14, 20) == pytest.approx(-0.75)
    # without an end the generated token is counted too
    assert sum_continuation_logprobs(logprobs, offsets, 14) == pytest.approx(-9.75)
    # a None first log-probability counts as zero
    assert sum_continuation_logprobs(logprobs, offsets, 0, 11) == pytest.approx(-1.0)
    # a token straddling the start (context "The capital i", token " is" at 11) counts
    assert sum_continuation_logprobs(logprobs, offsets, 12, 20) == pytest.approx(-2.75)
    assert sum_continuation_logprobs(logprobs, offsets, 20, 20) == 0.0
    with pytest.raises(ModelError):
        sum_continuation_logprobs([-1.0], [0, 1], 0)


def echo_response(text: str, tokens: list[str], offsets: list[int], logprobs: list) -> Any:
    lp = SimpleNamespace(tokens=tokens, text_offset=offsets, token_logprobs=logprobs)
    return SimpleNamespace(choices=[SimpleNamespace(text=text, logprobs=lp)], usage=None)


def with_completions(llm: OpenAICompatLLM, response: Any) -> list[dict[str, Any]]:
    calls: list[dict[str, Any]] = []

    def create(**params: Any) -> Any:
        calls.append(params)
        return response

    llm._client = SimpleNamespace(completions=SimpleNamespace(create=create))  # type: ignore[assignment]
    return calls


def test_logprobs_window_is_anchored_at_the_prompt_end() -> None:
    # llama.cpp renders special tokens as "" and strips BOS, so offsets do not
    # count "<|im_start|>" or "<|im_end|>": the window is found from the end.
    llm = OpenAICompatLLM(model="m", base_url="http://127.0.0.1:9/v1", chat_template_fn=chatml)
    context = chatml((Message("user", "Hi"),))
    prompt = context + "Hello there"
    tokens = ["user", "\n", "Hi", "", "\n", "assistant", "\n", "Hello", " there", "!"]
    offsets = [0, 4, 5, 7, 7, 8, 17, 18, 23, 29]
    logprobs = [None, -1.0, -2.0, -3.0, -0.1, -0.2, -0.3, -4.0, -0.5, -7.0]
    calls = with_completions(llm, echo_response(prompt + "!", tokens, offsets, logprobs))
    request = LogprobRequest(messages=(Message("user", "Hi"),), continuations=("Hello there",))
    assert llm.logprobs([request]) == [[pytest.approx(-4.5)]]
    sent = calls[0]
    assert sent["prompt"] == prompt and sent["echo"] is True and sent["max_tokens"] == 1


def test_logprobs_shifted_by_one_are_reported_not_returned() -> None:
    # llama-cpp-python without BOS: the generated "." is missing from the echo
    llm = OpenAICompatLLM(model="m", base_url="http://127.0.0.1:9/v1", api="completions")
    tokens = ["The", " sky", " is", " blue"]
    response = echo_response("The sky is blue.", tokens, [0, 3, 7, 10], [None, -9.0, -8.0, -7.0])
    calls = with_completions(llm, response)
    with pytest.raises(ModelError, match="shifted by one token.*logprob_prefix"):
        llm.logprobs([LogprobRequest(text="The sky is", continuations=(" blue",))])
    # the prefix goes in front of raw-text contexts, once
    llm.logprob_prefix = "<s>"
    with contextlib.suppress(ModelError):
        llm.logprobs([LogprobRequest(text="<s>The sky is", continuations=(" blue",))])
    with contextlib.suppress(ModelError):
        llm.logprobs([LogprobRequest(text="The sky is", continuations=(" blue",))])
    assert [c["prompt"] for c in calls[1:]] == ["<s>The sky is blue"] * 2


def test_missing_api_key_for_openai_is_a_one_line_model_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(ModelError) as info:
        OpenAICompatLLM(model="gpt-4o-mini")
    message = str(info.value)
    assert "OPENAI_API_KEY is not set" in message and "--base-url" in message
    assert "\n" not in message
    # a local server needs no key
    llm = OpenAICompatLLM(model="local", base_url="http://127.0.0.1:9/v1")
    assert isinstance(llm, LLM)


def test_key_is_never_on_the_object_or_in_a_pickle(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "sk-test-very-secret-123"
    monkeypatch.setenv("PROMPTOPT_TEST_KEY", secret)
    llm = OpenAICompatLLM(model="gpt-4o-mini", api_key_env="PROMPTOPT_TEST_KEY")
    assert describe(llm) == {"kind": "openai", "model": "gpt-4o-mini"}
    assert secret not in repr(llm)
    public = {k: v for k, v in vars(llm).items() if k != "_client"}
    assert secret not in repr(public)
    data = pickle.dumps(llm)
    assert secret.encode() not in data
    assert pickle.loads(data).model_id == "gpt-4o-mini"


def test_logprob_flags_and_scope() -> None:
    url = "http://127.0.0.1:9/v1"
    chat = OpenAICompatLLM(model="m", base_url=url)
    assert chat.supports_logprobs and chat.logprob_scope == "first_token"
    completions = OpenAICompatLLM(model="m", base_url=url, api="completions")
    assert completions.supports_logprobs and completions.logprob_scope == "full"
    templated = OpenAICompatLLM(model="m", base_url=url, chat_template_fn=chatml)
    assert templated.logprob_scope == "full"
    assert not chat.supports_embeddings_input


def test_first_token_scores_sum_the_tokens_that_begin_each_label() -> None:
    top = [(" Positive", math.log(0.5)), ("pos", math.log(0.2)), ("Neg", math.log(0.1))]
    positive, negative, neutral = first_token_scores(top, ["positive", "negative", "neutral"])
    assert positive == pytest.approx(math.log(0.7))
    assert negative == pytest.approx(math.log(0.1))
    assert neutral == pytest.approx(math.log(0.05))  # below every listed token
    with pytest.raises(ValueError):
        first_token_scores([], ["positive"])


class TopLogprobsEndpoint:
    """A chat endpoint that answers one token with a fixed list of alternatives."""

    def __init__(self, calls: list[dict[str, Any]]) -> None:
        self.calls = calls

    def create(self, **params: Any) -> Any:
        self.calls.append(params)
        listed = [
            SimpleNamespace(token="neg", logprob=math.log(0.6)),
            SimpleNamespace(token=" positive", logprob=math.log(0.3)),
        ]
        content = [SimpleNamespace(token="neg", logprob=math.log(0.6), top_logprobs=listed)]
        choice = SimpleNamespace(logprobs=SimpleNamespace(content=content))
        return SimpleNamespace(choices=[choice], usage=None)


def test_likelihood_objective_refuses_first_token_scores(data_dir: Path) -> None:
    from promptopt.data.task import load_task
    from promptopt.evaluation.evaluator import Evaluator

    task = load_task("antonyms", sizes={"train": 2, "dev": 2, "test": 2})
    chat = OpenAICompatLLM(model="gpt-x", base_url="http://127.0.0.1:9/v1")
    evaluator = Evaluator(chat, task)
    with pytest.raises(ModelError, match="first-token"):
        evaluator.likelihood_many([task.baseline_prompt()], task.examples("dev"))


def test_chat_api_scores_labels_by_the_first_reply_token() -> None:
    llm = OpenAICompatLLM(model="gpt-x", base_url="http://127.0.0.1:9/v1", max_concurrency=1)
    calls: list[dict[str, Any]] = []
    llm._client = SimpleNamespace(  # type: ignore[assignment]
        chat=SimpleNamespace(completions=TopLogprobsEndpoint(calls))
    )
    messages = (Message("user", "Review: dull. Sentiment?"),)
    [[positive, negative]] = llm.logprobs(
        [LogprobRequest(messages=messages, continuations=("positive", "negative"))]
    )
    assert negative == pytest.approx(math.log(0.6)) and positive == pytest.approx(math.log(0.3))
    (params,) = calls
    assert params["logprobs"] is True and params["top_logprobs"] == 20
    assert params["max_tokens"] == 1 and params["temperature"] == 0.0


class FakeEndpoint:
    def __init__(self, kind: str, calls: list[dict[str, Any]]) -> None:
        self.kind, self.calls = kind, calls

    def create(self, **params: Any) -> Any:
        self.calls.append(params)
        text = f"{self.kind}:{params.get('prompt') or params['messages'][-1]['content']}"
        text += f"|seed={params['seed']}"
        if self.kind == "chat":
            choice = SimpleNamespace(message=SimpleNamespace(content=text))
        else:
            choice = SimpleNamespace(text=text + " STOP tail")
        usage = SimpleNamespace(prompt_tokens=5, completion_tokens=params["max_tokens"])
        return SimpleNamespace(choices=[choice], usage=usage)


def test_generate_sends_max_tokens_and_seeds_per_sample() -> None:
    llm = OpenAICompatLLM(model="m", base_url="http://127.0.0.1:9/v1", max_concurrency=3)
    calls: list[dict[str, Any]] = []
    llm._client = SimpleNamespace(  # type: ignore[assignment]
        chat=SimpleNamespace(completions=FakeEndpoint("chat", calls)),
        completions=FakeEndpoint("text", calls),
    )
    requests = [
        GenerationRequest.chat("a", max_tokens=7, n=3, seed=10, temperature=1.0),
        GenerationRequest(text="b", max_tokens=4, stop=(" STOP",)),
    ]
    first, second = llm.generate(requests)
    assert first.texts == ["chat:a|seed=10", "chat:a|seed=11", "chat:a|seed=12"]
    assert (first.prompt_tokens, first.completion_tokens) == (15, 21)
    assert second.texts == ["text:b|seed=0"]  # cut at the stop string client-side too
    assert (second.prompt_tokens, second.completion_tokens) == (5, 4)
    assert len(calls) == 4
    for params in calls:
        assert "max_completion_tokens" not in params and "n" not in params
        assert params["model"] == "m" and "max_tokens" in params
    assert "stop" not in calls[0] and any(c.get("stop") == [" STOP"] for c in calls)


def test_unreachable_server_is_a_one_line_model_error() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    llm = OpenAICompatLLM(model="m", base_url=url, max_retries=0, timeout=5)
    with pytest.raises(ModelError) as info:
        llm.generate([GenerationRequest.chat("hi", max_tokens=2)] * 3)
    message = str(info.value)
    assert message == f"cannot reach the model server at {url}: start it or fix --base-url"
    with pytest.raises(ModelError, match="cannot reach"):
        llm.logprobs([LogprobRequest(text="a", continuations=(" b",))])


@pytest.fixture
def fake_server() -> Iterator[FakeOpenAIServer]:
    server = FakeOpenAIServer()
    yield server
    server.stop()


def test_n_samples_use_distinct_and_repeatable_seeds(fake_server: FakeOpenAIServer) -> None:
    """What the backend promises for n samples: one request per sample, seeded
    seed, seed + 1, ..., the same seeds every time, and the texts in sample order.
    Whether a server's sampling repeats for a seed is up to the server (llama.cpp's
    does not on every machine), so a loopback server that echoes the seed answers."""
    fake_server.reply = lambda body: f"sample seeded {body['seed']}"
    llm = OpenAICompatLLM("fake", base_url=fake_server.url, max_concurrency=3)
    request = GenerationRequest.chat(
        "Write a poem about the sea.", max_tokens=8, temperature=1.0, n=3, seed=7
    )
    [first] = llm.generate([request])
    [again] = llm.generate([request])
    assert first.texts == again.texts == ["sample seeded 7", "sample seeded 8", "sample seeded 9"]
    assert (first.prompt_tokens, first.completion_tokens) == (3 * 5, 3 * 2)  # summed per sample
    sent = sorted(
        (b["seed"], b["temperature"], b["max_tokens"], "n" in b) for b in fake_server.bodies
    )
    assert sent == sorted([(7, 1.0, 8, False), (8, 1.0, 8, False), (9, 1.0, 8, False)] * 2)


# --- the real llama.cpp server -----------------------------------------------------------


@pytest.fixture(scope="module")
def llm(llama_server: str) -> OpenAICompatLLM:
    return OpenAICompatLLM(
        model="SmolLM2-135M-Instruct",
        base_url=llama_server,
        max_concurrency=4,
        timeout=60,
        max_retries=1,
        chat_template_fn=chatml,
        logprob_prefix="<|im_start|>",  # SmolLM2's BOS token
    )


@pytest.mark.server
def test_chat_generate_greedy(llm: OpenAICompatLLM) -> None:
    request = GenerationRequest.chat(
        "What is the capital of France?", system="Answer briefly.", max_tokens=16
    )
    [completion] = llm.generate([request])
    assert len(completion.texts) == 1 and completion.texts[0].strip()
    assert completion.prompt_tokens > 5 and 0 < completion.completion_tokens <= 16
    assert not completion.cached


@pytest.mark.server
def test_max_tokens_is_respected(llm: OpenAICompatLLM) -> None:
    request = GenerationRequest.chat("Write a long story about a dragon.", max_tokens=5)
    [completion] = llm.generate([request])
    assert 0 < completion.completion_tokens <= 5
    assert completion.texts[0].strip()


@pytest.mark.server
def test_raw_text_completion_and_stop_strings(llm: OpenAICompatLLM) -> None:
    prompt = "1, 2, 3, 4, 5,"
    [free] = llm.generate([GenerationRequest(text=prompt, max_tokens=12)])
    assert free.texts[0].startswith(" 6, 7, 8, 9")
    [stopped] = llm.generate([GenerationRequest(text=prompt, max_tokens=12, stop=(" 9",))])
    assert stopped.texts[0] == " 6, 7, 8,"
    assert 0 < stopped.completion_tokens < free.completion_tokens


@pytest.mark.server
def test_logprobs_prefer_the_plausible_continuation(llm: OpenAICompatLLM) -> None:
    context = "The capital of France is"
    [[paris, banana]] = llm.logprobs(
        [LogprobRequest(text=context, continuations=(" Paris", " banana"))]
    )
    for value in (paris, banana):
        assert math.isfinite(value) and value < 0
    assert paris > banana + 5
    # the window is exactly the continuation: scores chain across a split point
    [[whole], [tail]] = llm.logprobs(
        [
            LogprobRequest(text=context, continuations=(" Paris, France",)),
            LogprobRequest(text=context + " Paris", continuations=(", France",)),
        ]
    )
    assert whole == pytest.approx(paris + tail, abs=1e-3)


@pytest.mark.server
def test_logprobs_without_bos_on_llama_cpp(llama_server: str) -> None:
    llm = OpenAICompatLLM(model="m", base_url=llama_server, api="completions")
    request = LogprobRequest(text="The capital of France is", continuations=(" Paris", " banana"))
    try:
        [[paris, banana]] = llm.logprobs([request])
    except ModelError as exc:  # llama-cpp-python's echo is shifted by one without BOS
        assert "shifted by one token" in str(exc) and "\n" not in str(exc)
    else:  # a server that gets it right
        assert paris > banana


@pytest.mark.server
def test_logprobs_of_chat_contexts_need_a_template(llm: OpenAICompatLLM, llama_server: str) -> None:
    messages = (Message("user", "Is the sky blue? Answer yes or no."),)
    [[yes, purple]] = llm.logprobs(
        [LogprobRequest(messages=messages, continuations=("Yes", "Purple"))]
    )
    assert math.isfinite(yes) and math.isfinite(purple) and yes > purple
    completions_only = OpenAICompatLLM(model="m", base_url=llama_server, api="completions")
    with pytest.raises(ModelError, match="chat template"):
        completions_only.logprobs([LogprobRequest(messages=messages, continuations=("Yes",))])


@pytest.mark.server
def test_chat_api_label_scores_agree_with_the_local_model(
    llama_server: str, data_dir: Path
) -> None:
    """First-token label scoring through llama.cpp's chat endpoint against full label
    scoring by the same model in transformers: a polar pair of reviews moves both the
    same way, and the sst2 labels they pick mostly agree (measured: 23 of 24)."""
    from promptopt.core.domain import Example
    from promptopt.data.task import load_task
    from promptopt.evaluation.evaluator import Evaluator
    from promptopt.llm.hf import HFLLM

    task = load_task("sst2", sizes={"train": 4, "dev": 4, "test": 24})
    prompt = task.baseline_prompt()
    chat = Evaluator(OpenAICompatLLM(model="m", base_url=llama_server, max_concurrency=1), task)
    local = Evaluator(HFLLM(), task)
    polar = [
        Example("good", "A wonderful, moving and beautiful film.", "positive"),
        Example("bad", "A terrible, boring, awful mess.", "negative"),
    ]
    for evaluator in (chat, local):
        [[(good_neg, good_pos), (bad_neg, bad_pos)]] = evaluator.label_logprobs([prompt], polar)
        assert bad_neg - bad_pos > good_neg - good_pos
    by_chat = chat.evaluate(prompt, task.examples("test"))
    by_local = local.evaluate(prompt, task.examples("test"))
    same = sum(
        a.prediction == b.prediction for a, b in zip(by_chat.results, by_local.results, strict=True)
    )
    assert same >= 20, f"only {same} of 24 labels agree"


@pytest.mark.server
def test_many_requests_come_back_in_order(llm: OpenAICompatLLM) -> None:
    requests = [
        GenerationRequest(text=f"{k}, {k + 1}, {k + 2},", max_tokens=3, stop=(",",))
        for k in (10, 20, 30, 40, 50, 60)
    ]
    together = [c.texts[0] for c in llm.generate(requests)]
    one_by_one = [llm.generate([r])[0].texts[0] for r in requests]
    assert together == one_by_one
    assert len(set(together)) == len(requests)  # distinct answers, so order is visible
    assert together[0].strip() == "13" and together[-1].strip() == "63"


def test_a_credential_in_the_base_url_is_never_shown() -> None:
    secret = "sk-CANARY-77"
    llm = OpenAICompatLLM("m", base_url=f"http://user:{secret}@127.0.0.1:9/v1")
    assert secret not in repr(llm) and "http://127.0.0.1:9/v1" in repr(llm)
    assert llm._where == "http://127.0.0.1:9/v1"
    leaked = f"GET http://user:{secret}@127.0.0.1:9/v1/models failed; auth user:{secret}"
    assert secret not in llm._scrub(leaked) and "http://127.0.0.1:9/v1/models" in llm._scrub(leaked)
