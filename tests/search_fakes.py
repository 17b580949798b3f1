"""A scripted model plugged into run_search in place of the real backends, for fast
tests of search-level logic (budgets, dry-run projections, compare)."""

from __future__ import annotations

import hashlib

import pytest

from promptopt.llm.tokens import estimate_prompt_tokens
from tests.fakes import ScriptedLLM, last_user_text


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
