"""The shared fakes: a scripted stand-in model for unit tests of logic (never for
integration tests), and the same model plugged into run_search in place of the real
backends, for fast tests of search-level logic (budgets, dry-run projections, compare)."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence

import pytest

from promptopt.core.domain import Completion, GenerationRequest, LogprobRequest
from promptopt.llm.tokens import estimate_prompt_tokens


def last_user_text(request: GenerationRequest | LogprobRequest) -> str:
    if request.text is not None:
        return request.text
    return request.messages[-1].content


class ScriptedLLM:
    """Answers with `reply(request, sample_index)`; counts every call it serves."""

    kind = "fake"
    supports_embeddings_input = False

    def __init__(
        self,
        reply: Callable[[GenerationRequest, int], str],
        logprob: Callable[[LogprobRequest, str], float] | None = None,
        model_id: str = "scripted",
    ) -> None:
        self.reply = reply
        self.logprob = logprob
        self.model_id = model_id
        self.supports_logprobs = logprob is not None
        self.generate_calls = 0
        self.logprob_calls = 0
        self.batches: list[int] = []

    def generate(self, requests: Sequence[GenerationRequest]) -> list[Completion]:
        self.batches.append(len(requests))
        out = []
        for req in requests:
            self.generate_calls += req.n
            texts = [self.reply(req, i) for i in range(req.n)]
            out.append(
                Completion(
                    texts=texts,
                    prompt_tokens=len(last_user_text(req).split()) * req.n,
                    completion_tokens=sum(len(t.split()) for t in texts),
                )
            )
        return out

    def logprobs(self, requests: Sequence[LogprobRequest]) -> list[list[float]]:
        assert self.logprob is not None
        self.logprob_calls += len(requests)
        return [[self.logprob(r, c) for c in r.continuations] for r in requests]


def role_reply(request, sample: int) -> str:  # type: ignore[no-untyped-def]
    """Meta prompts (they mention 'instruction') get a distinct instruction; questions
    get a fixed wrong answer, so the search's flow is deterministic."""
    text = last_user_text(request)
    if "instruction" in text.lower():
        digest = hashlib.sha256(f"{text}|{request.seed}|{sample}".encode()).hexdigest()[:8]
        return f"Give the opposite word, style {digest}"
    return "zzz"


class TokenizingFake(ScriptedLLM):
    """Charges prompt tokens as the budget estimates them (like a model whose
    tokenizer the meter can read), so token budgets bind as on a real model."""

    def generate(self, requests):  # type: ignore[no-untyped-def]
        out = super().generate(requests)
        for request, completion in zip(requests, out, strict=True):
            completion.prompt_tokens = estimate_prompt_tokens(None, request) * request.n
        return out


def plug_fake_model(monkeypatch: pytest.MonkeyPatch) -> ScriptedLLM:
    """Every model run_search builds is this one fake (as target and proposer)."""
    fake = TokenizingFake(role_reply)
    monkeypatch.setattr("promptopt.run.search.build_llm", lambda spec: fake)
    return fake


def forbid_model_loading(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(spec):  # type: ignore[no-untyped-def]
        raise AssertionError(f"a model was loaded: {spec}")

    monkeypatch.setattr("promptopt.run.search.build_llm", refuse)
    monkeypatch.setattr("promptopt.llm.factory.build_llm", refuse)
