"""Decoding without waste keeps greedy outputs: finished rows leave the batch and
waiting prompts take their place (continuous batching), and a request's samples
share one prefill, yet greedy texts and token counts are those of transformers'
plain `generate` in static batches, the path promptopt used before (kept here
only, as the reference), so cached outputs stay valid."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from typing import Any

import pytest
import torch

from promptopt.core.domain import Completion, GenerationRequest, Message
from promptopt.llm import decoding, hf, prefill
from promptopt.llm.hf import HFLLM, _strip_after_eos, truncate_at_stop

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


def plain_generate_group(
    llm: HFLLM,
    prompts: list[str],
    seeds: list[int],
    max_tokens: int,
    temperature: float,
    top_p: float,
    stop: tuple[str, ...],
    n: int,
    progress: object,
) -> list[Completion]:
    """The decoding promptopt did before, for greedy requests: one `model.generate`
    call per static batch of `batch_size` prompts, finished rows padded until the
    longest row ends."""
    assert temperature == 0 and n == 1
    tok = llm.tokenizer
    tok.padding_side = "left"
    out: list[Completion] = []
    for start in range(0, len(prompts), llm.batch_size):
        chunk = prompts[start : start + llm.batch_size]
        enc = tok(chunk, return_tensors="pt", padding=True, add_special_tokens=False)
        extra: dict[str, Any] = {"stop_strings": list(stop), "tokenizer": tok} if stop else {}
        with torch.inference_mode():
            ids = llm.model.generate(
                **enc,
                max_new_tokens=max_tokens,
                do_sample=False,
                temperature=None,
                top_p=None,
                top_k=None,
                pad_token_id=tok.pad_token_id,
                **extra,
            )
        lengths = enc["attention_mask"].sum(dim=1).tolist()
        for row, length in zip(ids[:, enc["input_ids"].shape[1] :].tolist(), lengths, strict=True):
            kept = _strip_after_eos(row, llm._eos_ids())
            text = truncate_at_stop(tok.decode(kept, skip_special_tokens=True), stop)
            out.append(Completion([text], int(length), len(kept)))
    return out


def run_both(
    llm: HFLLM, requests: list[GenerationRequest], monkeypatch: pytest.MonkeyPatch
) -> tuple[list[Completion], list[Completion], list[int], list[int]]:
    """(new completions, old completions, rows per forward call new, old)."""
    with count_rows(llm) as new_rows:
        new = llm.generate(requests)
    with monkeypatch.context() as patch:
        patch.setattr(llm, "_generate_group", lambda *args: plain_generate_group(llm, *args))
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


def test_greedy_outputs_are_unchanged_and_finished_rows_make_room(
    llm: HFLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    questions = [
        *QUESTIONS,
        "Count from one to ten in words.",
        "Describe a cat.",
        "Tell me a story.",
        "What is the capital of France?",
    ]
    # One sampling setting, so one queue: 11 prompts for 8 rows.
    requests = [GenerationRequest.chat(q, max_tokens=24, stop=("\n\n", ",")) for q in questions]
    new, old, new_rows, old_rows = run_both(llm, requests, monkeypatch)
    same_outputs(new, old)
    tokens = [c.completion_tokens for c in new]
    # The workload has rows that end early next to rows that run to max_tokens...
    assert min(tokens) < 8 and any(t == r.max_tokens for t, r in zip(tokens, requests, strict=True))
    # ...so the 11 prompts, 8 rows at a time, took fewer steps than two static batches:
    # the last 3 prompts joined the first batch as its early rows finished.
    assert len(new_rows) < len(old_rows)
    assert sum(new_rows) < sum(old_rows)
    assert max(new_rows) <= 8 + 3  # a joining prefill, never more than the batch holds


def test_samples_share_the_prefill_and_are_reproducible(llm: HFLLM) -> None:
    requests = [
        GenerationRequest.chat(q, max_tokens=16, temperature=0.8, n=3, seed=s, stop=("\n",))
        for s, q in enumerate(QUESTIONS[:3])
    ]
    requests.append(
        GenerationRequest.chat(QUESTIONS[3], max_tokens=16, temperature=1.0, top_p=0.9, n=2)
    )
    with count_rows(llm) as rows:
        first = llm.generate(requests)
    assert [c.texts for c in llm.generate(requests)] == [c.texts for c in first]
    assert any(len(set(c.texts)) > 1 for c in first)  # really sampled
    # 8 rows // n=3: two requests in the first batch, each prefilled once rather than 3 times.
    assert rows[0] == 2


def test_reproducible_from_seed_whatever_else_is_decoded(llm: HFLLM) -> None:
    request = GenerationRequest.chat(QUESTIONS[2], max_tokens=12, temperature=1.0, n=2, seed=7)
    alone = llm.generate([request])[0].texts
    assert llm.generate([request])[0].texts == alone
    # Greedy requests in the same call form other batches and leave it alone.
    greedy = [GenerationRequest.chat(q, max_tokens=6) for q in QUESTIONS[:3]]
    assert llm.generate([*greedy, request])[-1].texts == alone


@pytest.fixture(scope="module")
def llm64() -> HFLLM:
    """The model in float64: rounding then cannot flip a token, so any difference
    between a row decoded in a changing batch and in a static one is a bug of the
    batching (static batches are checked against plain `generate` above)."""
    model = HFLLM(batch_size=8)
    model.model.to(torch.float64)
    return model


def varied_prompts(count: int) -> list[str]:
    """Prompts from 3 to 120 words, so joining rows are padded and columns trimmed."""
    words = ("the", "cat", "sat", "on", "a", "mat", "and", "went", "to", "market", "for")
    rng = random.Random(1)
    return [
        " ".join(rng.choice(words) for _ in range([3, 12, 40, 120][i % 4]))
        + f" Question {i}: what next?"
        for i in range(count)
    ]


@contextmanager
def count_joins_and_trims() -> Iterator[dict[str, int]]:
    counts = {"join": 0, "trim": 0}
    join, trim = decoding.join, decoding._trim_left

    def counted_join(*args: Any) -> Any:
        counts["join"] += 1
        return join(*args)

    def counted_trim(state: Any) -> None:
        width = state.input_ids.shape[1]
        trim(state)
        counts["trim"] += state.input_ids.shape[1] < width

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(decoding, "join", counted_join)  # rows joining a running batch
        patch.setattr(prefill, "join", counted_join)  # prefill groups joined into one
        patch.setattr(decoding, "_trim_left", counted_trim)
        yield counts


@pytest.mark.parametrize("sampled", [False, True], ids=["greedy", "sampled"])
def test_a_row_decodes_as_in_a_static_batch_whatever_joins_its_batch(
    llm64: HFLLM, sampled: bool
) -> None:
    params: dict[str, Any] = {"temperature": 0.9, "n": 2, "seed": 5} if sampled else {}
    requests = [
        GenerationRequest.chat(text, max_tokens=16, stop=("\n\n", "."), **params)
        for text in varied_prompts(16)
    ]
    with count_joins_and_trims() as counts:
        together = llm64.generate(requests)
    assert counts["join"] >= 2 and counts["trim"] >= 1  # the batch really changed shape
    with pytest.MonkeyPatch.context() as patch:  # static batches: rows never join
        patch.setattr(
            hf, "decode_continuously", partial(decoding.decode_continuously, refill=False)
        )
        static = llm64.generate(requests)
    assert [c.texts for c in together] == [c.texts for c in static]
    assert [c.completion_tokens for c in together] == [c.completion_tokens for c in static]


def test_prompts_sharing_demonstrations_prefill_them_once_and_decode_the_same(
    llm64: HFLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    words = varied_prompts(3)
    requests = [
        GenerationRequest(
            messages=(
                Message("system", f"Candidate {c}: answer like the examples. " + words[2]),
                Message("user", "Question: " + words[1]),
                Message("assistant", "Answer: the cat."),
                Message("user", f"Question {q}: what is " + "the cat " * q + "on?"),
            ),
            max_tokens=12,
            stop=("\n\n", "."),
        )
        for c in range(3)
        for q in range(5)
    ]
    prefixes: list[int] = []
    compute_prefix = prefill.prefix_cache

    def counted(model: Any, prefix: list[int], rows: int) -> Any:
        prefixes.append(rows)
        return compute_prefix(model, prefix, rows)

    with monkeypatch.context() as patch:
        patch.setattr(prefill, "prefix_cache", counted)
        shared = llm64.generate(requests)
    # Each candidate's prefix was computed once for the rows let in together.
    assert prefixes and sum(prefixes) == len(requests) and len(prefixes) < len(requests)
    with monkeypatch.context() as patch:
        patch.setattr(prefill, "MIN_SHARED_PREFIX", 10**9)  # every prompt prefilled whole
        whole = llm64.generate(requests)
    assert [c.texts for c in shared] == [c.texts for c in whole]
    assert [c.prompt_tokens for c in shared] == [c.prompt_tokens for c in whole]
