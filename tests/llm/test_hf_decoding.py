"""Decoding without waste changes no output: finished rows leave the batch and a
request's samples share one prefill, yet greedy and sampled texts and token
counts are those of transformers' plain `generate`, the path promptopt used
before (kept here only, as the reference), so cached outputs stay valid."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from promptopt.llm.hf import HFLLM
from promptopt.types import Completion, GenerationRequest

pytestmark = pytest.mark.integration

QUESTIONS = [
    "Tom has 3 apples and buys 5 more. How many apples does he have? Think step by step.",
    "Name a colour.",
    "Write two short sentences about the sea.",
    "Say hello.",
    "List three fruits, one per line.",
    "What is 12 times 7? Explain briefly.",
    "Give one word that rhymes with cat.",
]


@pytest.fixture(scope="module")
def llm() -> HFLLM:
    return HFLLM(batch_size=8)


def plain_generate_decode(
    llm: HFLLM, enc: Any, kwargs: dict[str, Any], stop: tuple[str, ...], n: int
) -> list[list[int]]:
    """The decoding promptopt did before: one `model.generate` call per batch,
    `num_return_sequences=n`, finished rows padded until the longest row ends."""
    extra: dict[str, Any] = {"num_return_sequences": n}
    if stop:
        extra.update(stop_strings=list(stop), tokenizer=llm.tokenizer)
    out = llm.model.generate(**enc, **kwargs, **extra)
    return out[:, enc["input_ids"].shape[1] :].tolist()


def run_both(
    llm: HFLLM, requests: list[GenerationRequest], monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Completion], list[Completion], list[int], list[int]]:
    """(new completions, old completions, rows per forward call new, old)."""
    with count_rows(llm) as new_rows:
        new = llm.generate(requests)
    with monkeypatch.context() as patch:
        patch.setattr(llm, "_decode", lambda *args: plain_generate_decode(llm, *args))
        with count_rows(llm) as old_rows:
            old = llm.generate(requests)
    return new, old, new_rows, old_rows


@contextmanager
def count_rows(llm: HFLLM) -> Iterator[list[int]]:
    """Rows in every forward pass of the model while active: what decoding computed."""
    rows: list[int] = []

    def hook(_module: Any, _args: Any, kwargs: dict[str, Any]) -> None:
        rows.append(int(kwargs["input_ids"].shape[0]))

    handle = llm.model.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield rows
    finally:
        handle.remove()


def same_outputs(new: list[Completion], old: list[Completion]) -> None:
    for a, b in zip(new, old, strict=True):
        assert a.texts == b.texts
        assert (a.prompt_tokens, a.completion_tokens) == (b.prompt_tokens, b.completion_tokens)


def test_greedy_outputs_are_unchanged_and_finished_rows_stop_costing(
    llm: HFLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = [
        GenerationRequest.chat(q, max_tokens=24, stop=("\n\n", "Question:")) for q in QUESTIONS
    ]
    requests += [
        GenerationRequest.chat("Count from one to ten in words.", max_tokens=16, stop=(",",)),
        GenerationRequest.chat("Describe a cat.", max_tokens=16, stop=(",",)),
        GenerationRequest.chat("Tell me a story.", max_tokens=16),
        GenerationRequest(text="The capital of France is", max_tokens=12, stop=(".",)),
    ]
    new, old, new_rows, old_rows = run_both(llm, requests, monkeypatch)
    same_outputs(new, old)
    tokens = [c.completion_tokens for c in new]
    # The workload has rows that end early next to rows that run to max_tokens...
    assert min(tokens) < 8 and any(t == r.max_tokens for t, r in zip(tokens, requests, strict=True))
    # ...and those rows were no longer computed once done.
    assert sum(new_rows) < sum(old_rows)
    assert len(new_rows) == len(old_rows)  # each batch still runs to its longest row


def test_sampled_outputs_are_unchanged_and_samples_share_the_prefill(
    llm: HFLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests = [
        GenerationRequest.chat(q, max_tokens=16, temperature=0.8, n=3, seed=s, stop=("\n",))
        for s, q in enumerate(QUESTIONS[:3])
    ]
    requests.append(
        GenerationRequest.chat(QUESTIONS[3], max_tokens=16, temperature=1.0, top_p=0.9, n=2)
    )
    new, old, new_rows, old_rows = run_both(llm, requests, monkeypatch)
    same_outputs(new, old)
    assert any(len(set(c.texts)) > 1 for c in new)  # really sampled
    # batch_size 8 // n=3: two requests per batch, each prefilled once rather than 3 times.
    assert new_rows[0] == 2 and old_rows[0] == 6


def test_reproducible_from_seed_whatever_else_is_decoded(llm: HFLLM) -> None:
    request = GenerationRequest.chat(QUESTIONS[2], max_tokens=12, temperature=1.0, n=2, seed=7)
    alone = llm.generate([request])[0].texts
    assert llm.generate([request])[0].texts == alone
    # Greedy requests in the same call form other batches and leave it alone.
    greedy = [GenerationRequest.chat(q, max_tokens=6) for q in QUESTIONS[:3]]
    assert llm.generate([*greedy, request])[-1].texts == alone
