"""The transformers backend on the real embedded model, at small sizes."""

from __future__ import annotations

import math

import pytest
import torch

from promptopt.core.domain import GenerationRequest, LogprobRequest, Message
from promptopt.llm.gguf_convert import converted_copy_dir
from promptopt.llm.hf import HFLLM, truncate_at_stop
from promptopt.llm.models import embedded_gguf_path

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def llm() -> HFLLM:
    return HFLLM(batch_size=8)


def test_truncate_at_stop_takes_the_earliest() -> None:
    assert truncate_at_stop("a\nb. c", ["\n", "."]) == "a"
    assert truncate_at_stop("abc", []) == "abc"
    assert truncate_at_stop("abc", ["x"]) == "abc"


def test_converted_copy_is_saved_and_reused(llm: HFLLM) -> None:
    copy = converted_copy_dir(embedded_gguf_path())
    assert (copy / "config.json").is_file()
    assert llm.model_id == "SmolLM2-135M-Instruct"


def test_loaded_in_the_dtype_auto_chose_and_exports_say_so(llm: HFLLM) -> None:
    from promptopt.llm.base import describe
    from promptopt.llm.dtype_choice import resolve_dtype

    choice = resolve_dtype("auto", "cpu")
    assert llm.dtype_choice == choice
    assert {p.dtype for p in llm.model.parameters()} == {llm.dtype}
    assert str(llm.dtype) == f"torch.{choice.dtype}"
    assert describe(llm) == {
        "kind": "hf",
        "model": "SmolLM2-135M-Instruct",
        "dtype": choice.dtype,
        "dtype_reason": choice.reason,
    }
    assert choice.reason in llm.describe_runtime() and "torch threads" in llm.describe_runtime()


def test_greedy_batch_matches_one_at_a_time(llm: HFLLM) -> None:
    questions = ["What is 2 plus 2?", "Name a fruit.", "Say hello in French, in one word."]
    requests = [GenerationRequest.chat(q, max_tokens=12) for q in questions]
    batched = llm.generate(requests)
    single = [llm.generate([r])[0] for r in requests]
    assert all(b.texts[0].strip() for b in batched)
    # Left padding must not change greedy answers (beyond rare low-precision ties).
    same = sum(b.texts == s.texts for b, s in zip(batched, single, strict=True))
    assert same >= 2
    assert all(b.prompt_tokens > 10 and 0 < b.completion_tokens <= 12 for b in batched)


def test_stop_strings_and_max_tokens(llm: HFLLM) -> None:
    question = "Name five colours, one after another."
    full = llm.generate([GenerationRequest.chat(question, max_tokens=30)])[0].texts[0]
    words = full.split()
    assert len(words) >= 3, full
    stop = next(" " + w for w in words[1:] if " " + w in full)  # occurs in the answer
    cut = llm.generate([GenerationRequest.chat(question, max_tokens=30, stop=(stop,))])[0]
    assert cut.texts[0] == full[: full.find(stop)]
    short = llm.generate([GenerationRequest.chat("Tell me a long story.", max_tokens=5)])[0]
    assert short.completion_tokens <= 5


def test_seeded_samples_are_distinct_and_reproducible(llm: HFLLM) -> None:
    request = GenerationRequest.chat(
        "Write a random word.", max_tokens=8, temperature=1.0, n=4, seed=11
    )
    first = llm.generate([request])[0].texts
    again = llm.generate([request])[0].texts
    other = llm.generate(
        [
            GenerationRequest.chat(
                "Write a random word.", max_tokens=8, temperature=1.0, n=4, seed=12
            )
        ]
    )[0].texts
    assert len(first) == 4 and len(set(first)) > 1
    assert first == again
    assert first != other


def test_logprobs_rank_plausible_continuations(llm: HFLLM) -> None:
    (raw,) = llm.logprobs(
        [LogprobRequest(continuations=(" Paris", " banana"), text="The capital of France is")]
    )
    assert raw[0] > raw[1] and all(v < 0 and math.isfinite(v) for v in raw)
    (chat,) = llm.logprobs(
        [
            LogprobRequest(
                continuations=("positive", "negative"),
                messages=(
                    Message(
                        "user",
                        "Review: a wonderful, moving film. Is this review "
                        "positive or negative? Answer with one word.",
                    ),
                ),
            )
        ]
    )
    assert chat[0] > chat[1]


def test_dry_run_counts_prompt_tokens_like_the_model(llm: HFLLM) -> None:
    """The dry run's stand-in reads the local tokenizer (no weights) and counts prompt
    tokens exactly as the real model charges them."""
    from promptopt.llm.factory import ModelSpec
    from promptopt.llm.hf import local_tokenizer
    from promptopt.llm.tokens import estimate_prompt_tokens
    from promptopt.run.dry_run import StandInLLM

    stand_in = StandInLLM(ModelSpec("hf", "embedded"), "target")
    assert stand_in.tokenizer is not None
    request = GenerationRequest.chat("Write the opposite of: hot", max_tokens=4)
    (completion,) = llm.generate([request])
    assert estimate_prompt_tokens(stand_in, request) == completion.prompt_tokens
    assert stand_in.generate([request])[0].prompt_tokens == completion.prompt_tokens
    assert local_tokenizer("/nonexistent/model.gguf") is None


def test_logprobs_equal_scoring_each_continuation_as_its_own_sequence() -> None:
    """Contexts run once and continuations are read off their cache (one token)
    or a second pass over it (longer ones): the sums equal those of running
    context + continuation as one sequence, whatever shares the batch."""
    llm32 = HFLLM(dtype="float32", batch_size=3)  # chunks mix context lengths
    requests = [
        LogprobRequest(
            text="Classify the review. " * (1 + i % 4) + f"Review: {review}\nSentiment:",
            continuations=(" positive", " negative", " very positive indeed", ""),
        )
        for i, review in enumerate(["witty and warm", "dull", "long, thin plot", "fine"] * 2)
    ]
    scores = llm32.logprobs(requests)

    def one_sequence(context: str, continuation: str) -> float:
        tokenize = llm32.tokenizer
        ctx = tokenize(context, add_special_tokens=False)["input_ids"]
        ids = ctx + tokenize(continuation, add_special_tokens=False)["input_ids"]
        with torch.inference_mode():
            logits = llm32.model(input_ids=torch.tensor([ids])).logits.float()
        logp = torch.log_softmax(logits, dim=-1)[0]
        return float(sum(logp[p - 1, ids[p]] for p in range(len(ctx), len(ids))))

    for request, values in zip(requests, scores, strict=True):
        assert request.text is not None
        expected = [one_sequence(request.text, c) for c in request.continuations]
        assert values == pytest.approx(expected, abs=1e-4)
        assert values[-1] == 0.0 and values[2] < values[0]
